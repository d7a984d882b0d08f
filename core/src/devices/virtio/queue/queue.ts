// The device side of one split virtqueue (virtio 1.x, section 2.7). Pure TypeScript over
// GuestMemory: the transport fills in size, addresses and negotiated features and calls
// enable(); the device pops chains, completes them with addUsed() and asks needsNotification()
// before interrupting.
//
// Ordering: the driver runs on other CPUs while this code runs. The fields that carry ordering
// (avail.idx, used.idx, the event fields and the flags) are accessed with Atomics, which are
// sequentially consistent: loading avail.idx is an acquire before reading the ring entries and
// descriptors it publishes, storing used.idx is a release after the used element, and a store
// followed by a load (event field, then avail.idx or used_event) gets the full barrier the
// notification-suppression handshake needs.
//
// A device's run loop, so that no kick is lost:
//   do {
//     queue.disableNotification();
//     for (let c = queue.pop(); c !== undefined; c = queue.pop()) { ...handle c, addUsed... }
//   } while (queue.enableNotification());
//   if (queue.needsNotification()) interrupt();

import type { GuestMemory } from '../../../memory/guest-memory.js';
import { type ChainWalkOptions, type DescriptorChain, walkChain } from './chain.js';
import { GuestU16 } from './guest-u16.js';
import { QueueError } from './queue-error.js';
import {
  AVAIL_FLAGS_OFFSET,
  AVAIL_IDX_OFFSET,
  AVAIL_RING_ALIGN,
  AVAIL_RING_OFFSET,
  availEventOffset,
  availRingBytes,
  DESC_TABLE_ALIGN,
  descriptorTableBytes,
  isPowerOfTwo,
  MAX_QUEUE_SIZE,
  USED_FLAGS_OFFSET,
  USED_IDX_OFFSET,
  USED_RING_ALIGN,
  USED_RING_OFFSET,
  usedEventOffset,
  usedRingBytes,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_USED_F_NO_NOTIFY,
  vringNeedEvent,
} from './ring-layout.js';
import { checkQueueState, QueueMetrics, type QueueState } from './state.js';

/** A bound on one indirect table (QEMU's too); a Linux driver's table holds one request's segments and headers. */
export const DEFAULT_MAX_INDIRECT_DESCRIPTORS = 1024;

export interface QueueOptions {
  /** The size the device offers (queue_size before the driver shrinks it): a power of 2, ≤ 32768. */
  readonly maxSize: number;
  readonly maxIndirectDescriptors?: number;
}

/** Views over the rings, made once when the queue is enabled (their ranges were checked then). */
interface Rings {
  readonly size: number;
  readonly descTable: DataView;
  readonly availRing: DataView;
  readonly usedRing: DataView;
  readonly availFlags: GuestU16;
  readonly availIdx: GuestU16;
  readonly usedEvent: GuestU16;
  readonly usedFlags: GuestU16;
  readonly usedIdx: GuestU16;
  readonly availEvent: GuestU16;
  readonly walk: ChainWalkOptions;
}

interface QueueConfig {
  size: number;
  descTableAddress: number;
  availRingAddress: number;
  usedRingAddress: number;
  eventIdx: boolean;
  indirectDescriptors: boolean;
}

function defaultConfig(maxSize: number): QueueConfig {
  return {
    size: maxSize,
    descTableAddress: 0,
    availRingAddress: 0,
    usedRingAddress: 0,
    eventIdx: false,
    indirectDescriptors: false,
  };
}

function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

export class Queue {
  readonly maxSize: number;
  readonly maxIndirectDescriptors: number;
  readonly metrics = new QueueMetrics();

  private config: QueueConfig;

  private _nextAvail = 0;
  private _nextUsed = 0;
  private rings: Rings | undefined;
  /** avail.idx as last loaded; reloaded only once the device has caught up with it. */
  private knownAvailIdx = 0;
  private signalledUsed = 0;
  private usedSinceSignal = 0;
  private broken: QueueError | undefined;
  /** The chain undoPop() would put back. */
  private lastPopped: DescriptorChain | undefined;

  constructor(
    private readonly memory: GuestMemory,
    options: QueueOptions,
  ) {
    if (!isPowerOfTwo(options.maxSize) || options.maxSize > MAX_QUEUE_SIZE) {
      throw new RangeError(
        `virtqueue max size ${options.maxSize} is not a power of 2 up to ${MAX_QUEUE_SIZE}`,
      );
    }
    this.maxSize = options.maxSize;
    this.config = defaultConfig(options.maxSize);
    this.maxIndirectDescriptors = options.maxIndirectDescriptors ?? DEFAULT_MAX_INDIRECT_DESCRIPTORS;
  }

  // The driver writes these while the queue is disabled; enable() reads them. The spec forbids
  // changing them while the queue is enabled, so such writes are ignored (the rings the device
  // checked stay the ones it uses).
  get size(): number {
    return this.config.size;
  }
  set size(value: number) {
    if (!this.rings) this.config.size = value;
  }
  get descTableAddress(): number {
    return this.config.descTableAddress;
  }
  set descTableAddress(value: number) {
    if (!this.rings) this.config.descTableAddress = value;
  }
  get availRingAddress(): number {
    return this.config.availRingAddress;
  }
  set availRingAddress(value: number) {
    if (!this.rings) this.config.availRingAddress = value;
  }
  get usedRingAddress(): number {
    return this.config.usedRingAddress;
  }
  set usedRingAddress(value: number) {
    if (!this.rings) this.config.usedRingAddress = value;
  }
  /** VIRTIO_F_EVENT_IDX negotiated. */
  get eventIdx(): boolean {
    return this.config.eventIdx;
  }
  set eventIdx(value: boolean) {
    if (!this.rings) this.config.eventIdx = value;
  }
  /** VIRTIO_F_INDIRECT_DESC negotiated. */
  get indirectDescriptors(): boolean {
    return this.config.indirectDescriptors;
  }
  set indirectDescriptors(value: boolean) {
    if (!this.rings) this.config.indirectDescriptors = value;
  }

  get ready(): boolean {
    return this.rings !== undefined;
  }

  /** The next avail ring slot (free-running 16-bit) the device will read. */
  get nextAvail(): number {
    return this._nextAvail;
  }

  /** The next used ring slot (free-running 16-bit) the device will write; equals used.idx. */
  get nextUsed(): number {
    return this._nextUsed;
  }

  /** The error that stopped the queue, if any. */
  get error(): QueueError | undefined {
    return this.broken;
  }

  /** Checks the configuration the driver wrote. Returns why it is unusable, or undefined when fine. */
  validate(): string | undefined {
    const size = this.size;
    if (!isPowerOfTwo(size) || size > this.maxSize) {
      return `queue size ${size} is not a power of 2 up to ${this.maxSize}`;
    }
    const parts: [string, number, number, number][] = [
      ['descriptor table', this.descTableAddress, DESC_TABLE_ALIGN, descriptorTableBytes(size)],
      ['available ring', this.availRingAddress, AVAIL_RING_ALIGN, availRingBytes(size)],
      ['used ring', this.usedRingAddress, USED_RING_ALIGN, usedRingBytes(size)],
    ];
    for (const [name, address, align, length] of parts) {
      if (!Number.isSafeInteger(address) || address < 0) return `${name} address ${address} is out of range`;
      if (address % align !== 0) return `${name} at ${hex(address)} is not ${align}-byte aligned`;
      if (!this.memory.contains(address, length)) {
        return `${name} ${hex(address)}+${length} is not inside guest RAM`;
      }
    }
    return undefined;
  }

  /**
   * The driver set queue_enable: validate and start. Returns why the queue cannot start (the
   * transport should then set DEVICE_NEEDS_RESET), or undefined. The indices keep their values
   * (0 after reset, or what restore() set).
   */
  enable(): string | undefined {
    const problem = this.validate();
    if (problem !== undefined) return problem;
    const size = this.size;
    const m = this.memory;
    const avail = this.availRingAddress;
    const used = this.usedRingAddress;
    this.rings = {
      size,
      descTable: dataView(m.view(this.descTableAddress, descriptorTableBytes(size))),
      availRing: dataView(m.view(avail, availRingBytes(size))),
      usedRing: dataView(m.view(used, usedRingBytes(size))),
      availFlags: new GuestU16(m.view(avail + AVAIL_FLAGS_OFFSET, 2)),
      availIdx: new GuestU16(m.view(avail + AVAIL_IDX_OFFSET, 2)),
      usedEvent: new GuestU16(m.view(avail + usedEventOffset(size), 2)),
      usedFlags: new GuestU16(m.view(used + USED_FLAGS_OFFSET, 2)),
      usedIdx: new GuestU16(m.view(used + USED_IDX_OFFSET, 2)),
      availEvent: new GuestU16(m.view(used + availEventOffset(size), 2)),
      walk: {
        indirectAllowed: this.indirectDescriptors,
        maxIndirectDescriptors: this.maxIndirectDescriptors,
      },
    };
    this.knownAvailIdx = this._nextAvail;
    this.broken = undefined;
    return undefined;
  }

  /** Device reset: back to the state before the driver configured the queue. */
  reset(): void {
    this.rings = undefined;
    this.config = defaultConfig(this.maxSize);
    this._nextAvail = 0;
    this._nextUsed = 0;
    this.knownAvailIdx = 0;
    this.signalledUsed = 0;
    this.usedSinceSignal = 0;
    this.broken = undefined;
    this.lastPopped = undefined;
  }

  /** How many chains the driver has made available that the device has not popped. */
  pending(): number {
    const rings = this.rings;
    if (!rings || this.broken) return 0;
    const count = (rings.availIdx.load() - this._nextAvail) & 0xffff;
    return count > rings.size ? 0 : count;
  }

  /**
   * The next available chain, walked and checked; undefined when the ring is empty or the queue
   * is not enabled; a QueueError when the driver broke a rule (see QueueError.fatal). Never throws
   * for anything the guest did.
   */
  pop(): DescriptorChain | QueueError | undefined {
    const rings = this.rings;
    if (!rings) return undefined;
    this.lastPopped = undefined;
    if (this.broken) return this.broken;
    if (this._nextAvail === this.knownAvailIdx) {
      const availIdx = rings.availIdx.load();
      const count = (availIdx - this._nextAvail) & 0xffff;
      if (count === 0) return undefined;
      if (count > rings.size) {
        return this.stop(
          new QueueError(
            'avail-index-jump',
            `avail.idx ${availIdx} is ${count} entries past the device's ${this._nextAvail} (queue size ${rings.size})`,
            true,
          ),
        );
      }
      this.knownAvailIdx = availIdx;
    }
    const slot = this._nextAvail & (rings.size - 1);
    const head = rings.availRing.getUint16(AVAIL_RING_OFFSET + 2 * slot, true);
    this._nextAvail = (this._nextAvail + 1) & 0xffff;
    if (head >= rings.size) {
      return this.stop(
        new QueueError('head-out-of-range', `avail ring slot ${slot} names descriptor ${head}`, true),
      );
    }
    const chain = walkChain(this.memory, rings.descTable, rings.size, head, rings.walk);
    if (chain instanceof QueueError) {
      this.metrics.chainErrors++;
      return chain;
    }
    this.metrics.chainsPopped++;
    this.metrics.readableBytes += chain.readableLength;
    this.metrics.writableBytes += chain.writableLength;
    this.lastPopped = chain;
    return chain;
  }

  /**
   * Puts back the last popped chain so the next pop() returns it again (a device that could not
   * start it yet, e.g. too many requests in flight). Does nothing unless the last pop() returned
   * a chain that was not put back already.
   */
  undoPop(): void {
    const chain = this.lastPopped;
    if (!this.rings || chain === undefined) return;
    this.lastPopped = undefined;
    this._nextAvail = (this._nextAvail - 1) & 0xffff;
    this.metrics.chainsPopped--;
    this.metrics.readableBytes -= chain.readableLength;
    this.metrics.writableBytes -= chain.writableLength;
  }

  /**
   * Completes the chain whose head is `headIndex`, reporting `writtenLength` bytes written into
   * its writable buffers, and publishes used.idx. A head the device never popped is a device bug,
   * so that throws.
   */
  addUsed(headIndex: number, writtenLength: number): void {
    const rings = this.rings;
    if (!rings) return;
    if (!Number.isInteger(headIndex) || headIndex < 0 || headIndex >= rings.size) {
      throw new RangeError(`addUsed: head ${headIndex} is not a descriptor of a queue of ${rings.size}`);
    }
    const offset = USED_RING_OFFSET + 8 * (this._nextUsed & (rings.size - 1));
    rings.usedRing.setUint32(offset, headIndex, true);
    rings.usedRing.setUint32(offset + 4, writtenLength >>> 0, true);
    this._nextUsed = (this._nextUsed + 1) & 0xffff;
    rings.usedIdx.store(this._nextUsed);
    this.usedSinceSignal++;
    this.metrics.usedElements++;
    this.metrics.usedBytes += writtenLength >>> 0;
  }

  /**
   * After adding used elements: should the device interrupt the driver? With EVENT_IDX, only
   * when used.idx stepped past the driver's used_event; without, unless the driver set
   * VIRTQ_AVAIL_F_NO_INTERRUPT. False when nothing was added since the last call.
   */
  needsNotification(): boolean {
    const rings = this.rings;
    if (!rings) return false;
    const added = this.usedSinceSignal;
    const oldUsed = this.signalledUsed;
    this.usedSinceSignal = 0;
    this.signalledUsed = this._nextUsed;
    if (added === 0) return false;
    let notify: boolean;
    if (this.eventIdx) {
      // 2^16 or more completions since the last check: the 16-bit window cannot tell, so notify.
      notify = added >= 0x10000 || vringNeedEvent(rings.usedEvent.load(), this._nextUsed, oldUsed);
    } else {
      notify = (rings.availFlags.load() & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
    }
    if (notify) this.metrics.notificationsSent++;
    else this.metrics.notificationsSuppressed++;
    return notify;
  }

  /**
   * Ask the driver to kick for new buffers (before the device goes idle). Returns true when the
   * driver made buffers available meanwhile, which it may not kick for: pop again.
   */
  enableNotification(): boolean {
    const rings = this.rings;
    if (!rings || this.broken) return false;
    if (this.eventIdx) rings.availEvent.store(this._nextAvail);
    else rings.usedFlags.store(0);
    return rings.availIdx.load() !== this._nextAvail;
  }

  /**
   * Tell the driver kicks are not needed (the device is busy popping). With EVENT_IDX this is a
   * no-op: avail_event stays where it was, so the driver kicks at most once until the next
   * enableNotification().
   */
  disableNotification(): void {
    const rings = this.rings;
    if (!rings || this.eventIdx) return;
    rings.usedFlags.store(VIRTQ_USED_F_NO_NOTIFY);
  }

  state(): QueueState {
    return {
      maxSize: this.maxSize,
      size: this.size,
      ready: this.ready,
      descTableAddress: this.descTableAddress,
      availRingAddress: this.availRingAddress,
      usedRingAddress: this.usedRingAddress,
      nextAvail: this._nextAvail,
      nextUsed: this._nextUsed,
      eventIdx: this.eventIdx,
      indirectDescriptors: this.indirectDescriptors,
      signalledUsed: this.signalledUsed,
    };
  }

  /** Loads a snapshot's state. Returns why it cannot be used (the queue is then reset), or undefined. */
  restore(state: QueueState): string | undefined {
    const shape = checkQueueState(state);
    if (shape !== undefined) {
      this.reset();
      return shape;
    }
    if (state.maxSize !== this.maxSize) {
      this.reset();
      return `queue state is for a queue of max size ${state.maxSize}, this one has ${this.maxSize}`;
    }
    this.reset();
    this.size = state.size;
    this.descTableAddress = state.descTableAddress;
    this.availRingAddress = state.availRingAddress;
    this.usedRingAddress = state.usedRingAddress;
    this.eventIdx = state.eventIdx;
    this.indirectDescriptors = state.indirectDescriptors;
    this._nextAvail = state.nextAvail;
    this._nextUsed = state.nextUsed;
    this.signalledUsed = state.signalledUsed;
    this.usedSinceSignal = (state.nextUsed - state.signalledUsed) & 0xffff;
    if (!state.ready) return undefined;
    const problem = this.enable();
    if (problem !== undefined) {
      this.reset();
      return problem;
    }
    return undefined;
  }

  private stop(error: QueueError): QueueError {
    this.broken = error;
    this.metrics.fatalErrors++;
    return error;
  }
}
