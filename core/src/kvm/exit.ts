// The exit buffer: native run() copies each KVM exit here (kvm_run itself never reaches JS), and
// copies the data area back into kvm_run before the next KVM_RUN when the exit was a read.
// Layout mirrored from native/src/vcpu.c.
import { ExitReason, InternalError, SystemEvent } from './constants.js';

export const EXIT_REASON = 0;
export const EXIT_DIRECTION = 4;
export const EXIT_SIZE = 8;
export const EXIT_PORT = 12;
export const EXIT_COUNT = 16;
export const EXIT_ADDRESS = 24;
export const EXIT_UNION = 32;
export const EXIT_UNION_SIZE = 224;
export const EXIT_DATA = 256;
export const EXIT_DATA_MAX = 4096;
export const EXIT_BUFFER_SIZE = EXIT_DATA + EXIT_DATA_MAX;

export const IO_DIRECTION_IN = 0;
export const IO_DIRECTION_OUT = 1;

/** A SharedArrayBuffer-backed exit buffer with the views the runner needs. */
export class ExitBuffer {
  readonly bytes: Uint8Array;
  readonly view: DataView;

  constructor(bytes: Uint8Array = new Uint8Array(new SharedArrayBuffer(EXIT_BUFFER_SIZE))) {
    if (bytes.length < EXIT_BUFFER_SIZE) throw new RangeError('exit buffer too short');
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get reason(): number {
    return this.view.getUint32(EXIT_REASON, true);
  }
  /** io: 1 = out (guest writes); mmio: 1 = write. */
  get isWrite(): boolean {
    return this.view.getUint32(EXIT_DIRECTION, true) !== 0;
  }
  /** io: access size in bytes; mmio: length. */
  get size(): number {
    return this.view.getUint32(EXIT_SIZE, true);
  }
  get port(): number {
    return this.view.getUint32(EXIT_PORT, true);
  }
  /** io: repeat count of a string instruction (size bytes each). */
  get count(): number {
    return this.view.getUint32(EXIT_COUNT, true);
  }
  get mmioAddress(): bigint {
    return this.view.getBigUint64(EXIT_ADDRESS, true);
  }
  /** The `index`-th data element of an io/mmio exit (a live view: fill it to answer a read). */
  data(index = 0): Uint8Array {
    const size = this.size;
    return this.bytes.subarray(EXIT_DATA + index * size, EXIT_DATA + (index + 1) * size);
  }
  /** The raw kvm_run exit union for exits other than io/mmio. */
  union(): DataView {
    return new DataView(this.bytes.buffer, this.bytes.byteOffset + EXIT_UNION, EXIT_UNION_SIZE);
  }
}

export interface InternalErrorInfo {
  suberror: number;
  /** data[0..ndata) as 64-bit words. */
  data: bigint[];
}

export function decodeInternalError(union: DataView): InternalErrorInfo {
  const suberror = union.getUint32(0, true);
  const ndata = Math.min(union.getUint32(4, true), 16);
  const data: bigint[] = [];
  for (let i = 0; i < ndata; i++) data.push(union.getBigUint64(8 + i * 8, true));
  return { suberror, data };
}

export interface SystemEventInfo {
  type: number;
  data: bigint[];
}

export function decodeSystemEvent(union: DataView): SystemEventInfo {
  const type = union.getUint32(0, true);
  const ndata = Math.min(union.getUint32(4, true), 16);
  const data: bigint[] = [];
  for (let i = 0; i < ndata; i++) data.push(union.getBigUint64(8 + i * 8, true));
  return { type, data };
}

export function systemEventName(type: number): string {
  const entry = Object.entries(SystemEvent).find(([, value]) => value === type);
  return entry ? entry[0].toLowerCase() : `event ${type}`;
}

/** KVM_EXIT_IOAPIC_EOI: the vector whose EOI the user-space IOAPIC must see (kvm_run.eoi.vector). */
export function decodeIoapicEoi(union: DataView): number {
  return union.getUint8(0);
}

export function decodeFailEntry(union: DataView): { hardwareReason: bigint; cpu: number } {
  return { hardwareReason: union.getBigUint64(0, true), cpu: union.getUint32(8, true) };
}

export function internalErrorName(suberror: number): string {
  switch (suberror) {
    case InternalError.EMULATION:
      return 'emulation failure';
    case InternalError.SIMUL_EX:
      return 'exception while delivering an exception';
    case InternalError.DELIVERY_EV:
      return 'event delivery failed';
    case InternalError.UNEXPECTED_EXIT_REASON:
      return 'unexpected exit reason';
    default:
      return `suberror ${suberror}`;
  }
}

export { ExitReason };
