// MSI-X (PCI 3.0 §6.8.2): the capability in config space, the vector table and the pending-bit
// array in a BAR. A device signals a vector; the table decides whether it is delivered now
// (enabled, neither the function nor the vector masked) or remembered as pending until unmasked.
// Delivery goes through an MsiSink, which on KVM is an irqfd bound to an MSI route.

import { type BusDevice, fillValue, readValue } from '../bus.js';
import type { PciConfigSpace } from './config-space.js';

export const PCI_CAP_ID_MSIX = 0x11;
const ENTRY_SIZE = 16;
const CONTROL_ENABLE = 0x8000;
const CONTROL_FUNCTION_MASK = 0x4000;
const VECTOR_MASKED = 1;
/** The architectural maximum of the table size field. */
export const MAX_MSIX_VECTORS = 2048;

export interface MsiMessage {
  readonly addressLo: number;
  readonly addressHi: number;
  readonly data: number;
}

/** Where vectors go: set up a route for a vector's message, fire it. */
export interface MsiSink {
  /** The guest (re)programmed `vector`; `message` undefined when it is not deliverable (masked/disabled). */
  route(vector: number, message: MsiMessage | undefined): void;
  trigger(vector: number): void;
}

export interface MsixPlacement {
  readonly bar: number;
  /** Offsets in that BAR, 8-byte aligned. */
  readonly tableOffset: number;
  readonly pbaOffset: number;
}

/** Bytes of the vector table for `vectors` entries. */
export function msixTableBytes(vectors: number): number {
  return vectors * ENTRY_SIZE;
}

/** Bytes of the pending-bit array (64-bit words). */
export function msixPbaBytes(vectors: number): number {
  return Math.ceil(vectors / 64) * 8;
}

export class Msix {
  private readonly table: Uint8Array;
  private readonly tableView: DataView;
  private readonly pending: Uint8Array;
  private readonly capOffset: number;
  /** Vectors whose route was last given to the sink as deliverable, by message. */
  private readonly routed: (MsiMessage | undefined)[];

  constructor(
    private readonly config: PciConfigSpace,
    readonly vectors: number,
    placement: MsixPlacement,
    private readonly sink: MsiSink,
  ) {
    if (!Number.isInteger(vectors) || vectors < 1 || vectors > MAX_MSIX_VECTORS) {
      throw new RangeError(`MSI-X: ${vectors} vectors is outside 1..${MAX_MSIX_VECTORS}`);
    }
    if (placement.tableOffset % 8 !== 0 || placement.pbaOffset % 8 !== 0) {
      throw new RangeError('MSI-X table and PBA offsets must be 8-byte aligned');
    }
    this.table = new Uint8Array(msixTableBytes(vectors));
    this.tableView = new DataView(this.table.buffer);
    this.pending = new Uint8Array(msixPbaBytes(vectors));
    this.routed = new Array(vectors).fill(undefined);
    for (let v = 0; v < vectors; v++) this.tableView.setUint32(v * ENTRY_SIZE + 12, VECTOR_MASKED, true);

    const body = new Uint8Array(10);
    const bodyView = new DataView(body.buffer);
    bodyView.setUint16(0, vectors - 1, true);
    bodyView.setUint32(2, (placement.tableOffset | placement.bar) >>> 0, true);
    bodyView.setUint32(6, (placement.pbaOffset | placement.bar) >>> 0, true);
    const writeMask = new Uint8Array(10);
    writeMask[1] = (CONTROL_ENABLE | CONTROL_FUNCTION_MASK) >>> 8;
    this.capOffset = config.addCapability(PCI_CAP_ID_MSIX, body, {
      writeMask,
      onWrite: () => this.controlChanged(),
    });
  }

  private get control(): number {
    return this.config.configRead(this.capOffset + 2, 2);
  }

  /** MSI-X enable bit: interrupts go through the table, not INTx. */
  get enabled(): boolean {
    return (this.control & CONTROL_ENABLE) !== 0;
  }

  get functionMasked(): boolean {
    return (this.control & CONTROL_FUNCTION_MASK) !== 0;
  }

  message(vector: number): MsiMessage {
    const o = vector * ENTRY_SIZE;
    const v = this.tableView;
    return {
      addressLo: v.getUint32(o, true),
      addressHi: v.getUint32(o + 4, true),
      data: v.getUint32(o + 8, true),
    };
  }

  vectorMasked(vector: number): boolean {
    return (this.tableView.getUint32(vector * ENTRY_SIZE + 12, true) & VECTOR_MASKED) !== 0;
  }

  isPending(vector: number): boolean {
    return (this.pending[vector >> 3]! & (1 << (vector & 7))) !== 0;
  }

  /**
   * The device signals `vector`. Returns false when the vector does not exist (the device
   * asked for NO_VECTOR or a number past the table): nothing is sent.
   */
  notify(vector: number): boolean {
    if (!Number.isInteger(vector) || vector < 0 || vector >= this.vectors) return false;
    if (!this.enabled) return false;
    if (this.functionMasked || this.vectorMasked(vector)) {
      this.setPending(vector, true);
      return true;
    }
    this.sink.trigger(vector);
    return true;
  }

  /** The table, at `tableOffset` in the BAR. Only aligned dword and qword accesses take effect. */
  readonly tableDevice: BusDevice = {
    read: (offset, data) => {
      if (!this.tableAccessOk(offset, data.length)) {
        data.fill(0xff);
        return;
      }
      data.set(this.table.subarray(offset, offset + data.length));
    },
    write: (offset, data) => {
      if (!this.tableAccessOk(offset, data.length)) return;
      const first = Math.floor(offset / ENTRY_SIZE);
      this.table.set(data, offset);
      this.entryChanged(first);
    },
  };

  /** The pending-bit array, at `pbaOffset` in the BAR: read-only. */
  readonly pbaDevice: BusDevice = {
    read: (offset, data) => {
      if (offset + data.length > this.pending.length || offset % data.length !== 0) {
        data.fill(0);
        return;
      }
      data.set(this.pending.subarray(offset, offset + data.length));
    },
    write: () => {},
  };

  /** Back to power-on: every vector masked, nothing pending (the capability's enable bits are config space's). */
  reset(): void {
    this.table.fill(0);
    for (let v = 0; v < this.vectors; v++) this.tableView.setUint32(v * ENTRY_SIZE + 12, VECTOR_MASKED, true);
    this.pending.fill(0);
    this.syncRoutes();
  }

  private tableAccessOk(offset: number, size: number): boolean {
    return (size === 4 || size === 8) && offset % size === 0 && offset + size <= this.table.length;
  }

  private setPending(vector: number, on: boolean): void {
    const bit = 1 << (vector & 7);
    if (on) this.pending[vector >> 3]! |= bit;
    else this.pending[vector >> 3]! &= ~bit;
  }

  private controlChanged(): void {
    this.syncRoutes();
    this.deliverPending();
  }

  private entryChanged(vector: number): void {
    this.syncRoute(vector);
    this.deliverPending();
  }

  private syncRoutes(): void {
    for (let v = 0; v < this.vectors; v++) this.syncRoute(v);
  }

  /** Tells the sink when a vector's deliverable message changed (routes cost an ioctl: only on change). */
  private syncRoute(vector: number): void {
    const deliverable = this.enabled && !this.vectorMasked(vector);
    const message = deliverable ? this.message(vector) : undefined;
    const before = this.routed[vector];
    if (
      before?.addressLo === message?.addressLo &&
      before?.addressHi === message?.addressHi &&
      before?.data === message?.data
    ) {
      return;
    }
    this.routed[vector] = message;
    this.sink.route(vector, message);
  }

  private deliverPending(): void {
    if (!this.enabled || this.functionMasked) return;
    for (let v = 0; v < this.vectors; v++) {
      if (this.isPending(v) && !this.vectorMasked(v)) {
        this.setPending(v, false);
        this.sink.trigger(v);
      }
    }
  }

  /** For snapshots: the table and pending bits. */
  state(): { table: number[]; pending: number[] } {
    return { table: Array.from(this.table), pending: Array.from(this.pending) };
  }

  restore(state: { table: number[]; pending: number[] }): void {
    if (state.table.length !== this.table.length || state.pending.length !== this.pending.length) {
      throw new Error('MSI-X state is for a different table size');
    }
    this.table.set(state.table);
    this.pending.set(state.pending);
    this.syncRoutes();
  }
}

/** Reads a little-endian value of `size` bytes from `bytes` at `offset` (helper for tests and transports). */
export function readLe(bytes: Uint8Array, offset: number, size: number): number {
  return readValue(bytes.subarray(offset, offset + size));
}

export function writeLe(bytes: Uint8Array, offset: number, size: number, value: number): void {
  fillValue(bytes.subarray(offset, offset + size), value);
}
