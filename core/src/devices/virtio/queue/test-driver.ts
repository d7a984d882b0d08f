// Test support: the driver side of a split virtqueue, laying out rings in a GuestMemory and
// adding buffers the way a guest's virtio driver does. Used by the queue's and devices' tests;
// also able to write raw, rule-breaking descriptors for hostile-driver tests.

import type { GuestMemory } from '../../../memory/guest-memory.js';
import { GuestU16 } from './guest-u16.js';
import type { Queue } from './queue.js';
import {
  AVAIL_FLAGS_OFFSET,
  AVAIL_IDX_OFFSET,
  AVAIL_RING_OFFSET,
  availEventOffset,
  availRingBytes,
  DESCRIPTOR_SIZE,
  descriptorTableBytes,
  USED_FLAGS_OFFSET,
  USED_IDX_OFFSET,
  USED_RING_OFFSET,
  usedEventOffset,
  usedRingBytes,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_USED_F_NO_NOTIFY,
  vringNeedEvent,
} from './ring-layout.js';

export interface RingLayout {
  readonly size: number;
  readonly descTable: number;
  readonly availRing: number;
  readonly usedRing: number;
  /** First byte after the rings. */
  readonly end: number;
}

function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

/** Descriptor table at `base` (16-aligned), then the avail ring, then the used ring (4-aligned). */
export function layoutRings(base: number, size: number): RingLayout {
  const descTable = alignUp(base, 16);
  const availRing = descTable + descriptorTableBytes(size);
  const usedRing = alignUp(availRing + availRingBytes(size), 4);
  return { size, descTable, availRing, usedRing, end: usedRing + usedRingBytes(size) };
}

export interface RawDescriptor {
  addr: number;
  len: number;
  flags: number;
  next: number;
}

export interface BufferRef {
  readonly addr: number;
  readonly len: number;
}

export interface AddedChain {
  readonly head: number;
  readonly readable: readonly BufferRef[];
  readonly writable: readonly BufferRef[];
}

export interface UsedElement {
  readonly id: number;
  readonly len: number;
}

export class TestDriver {
  private readonly free: number[] = [];
  private readonly chains = new Map<number, number[]>();
  private availIdx = 0;
  private lastUsed = 0;
  private bufferNext: number;
  // The indices a real driver accesses with barriers: atomics here, so the helper can drive a
  // queue from another thread.
  private readonly availIdxCell: GuestU16;
  private readonly availFlagsCell: GuestU16;
  private readonly usedEventCell: GuestU16;
  private readonly usedIdxCell: GuestU16;
  private readonly usedFlagsCell: GuestU16;
  private readonly availEventCell: GuestU16;

  /**
   * `bufferBase..bufferEnd` is where data buffers and indirect tables are allocated (bump, wrapping
   * to the start when full: callers keep few requests in flight).
   */
  constructor(
    readonly memory: GuestMemory,
    readonly layout: RingLayout,
    private readonly bufferBase: number,
    private readonly bufferEnd: number,
  ) {
    this.bufferNext = bufferBase;
    memory.fill(layout.descTable, layout.end - layout.descTable, 0);
    const cell = (gpa: number) => new GuestU16(memory.view(gpa, 2));
    this.availIdxCell = cell(layout.availRing + AVAIL_IDX_OFFSET);
    this.availFlagsCell = cell(layout.availRing + AVAIL_FLAGS_OFFSET);
    this.usedEventCell = cell(layout.availRing + usedEventOffset(layout.size));
    this.usedIdxCell = cell(layout.usedRing + USED_IDX_OFFSET);
    this.usedFlagsCell = cell(layout.usedRing + USED_FLAGS_OFFSET);
    this.availEventCell = cell(layout.usedRing + availEventOffset(layout.size));
    for (let i = layout.size - 1; i >= 0; i--) this.free.push(i);
  }

  /** Points `queue` at these rings, sets its features and enables it; returns enable()'s answer. */
  configure(queue: Queue, features: { eventIdx?: boolean; indirect?: boolean } = {}): string | undefined {
    queue.size = this.layout.size;
    queue.descTableAddress = this.layout.descTable;
    queue.availRingAddress = this.layout.availRing;
    queue.usedRingAddress = this.layout.usedRing;
    queue.eventIdx = features.eventIdx ?? false;
    queue.indirectDescriptors = features.indirect ?? false;
    return queue.enable();
  }

  /** Reserves `len` bytes (16-aligned) in the buffer area. */
  allocate(len: number): number {
    const size = alignUp(Math.max(len, 1), 16);
    if (this.bufferNext + size > this.bufferEnd) this.bufferNext = this.bufferBase;
    if (this.bufferNext + size > this.bufferEnd) throw new Error(`test driver: no room for ${len} bytes`);
    const addr = this.bufferNext;
    this.bufferNext += size;
    return addr;
  }

  writeDescriptor(index: number, d: RawDescriptor, tableAddress = this.layout.descTable): void {
    const at = tableAddress + index * DESCRIPTOR_SIZE;
    this.memory.writeU64(at, BigInt(d.addr));
    this.memory.writeU32(at + 8, d.len >>> 0);
    this.memory.writeU16(at + 12, d.flags);
    this.memory.writeU16(at + 14, d.next);
  }

  /** Puts `head` in the next avail slot and publishes it (avail.idx += 1). */
  publish(head: number): void {
    const slot = this.availIdx % this.layout.size;
    this.memory.writeU16(this.layout.availRing + AVAIL_RING_OFFSET + 2 * slot, head);
    this.setAvailIdx(this.availIdx + 1);
  }

  /** Writes avail.idx directly (a hostile driver can write anything). */
  setAvailIdx(idx: number): void {
    this.availIdx = idx & 0xffff;
    this.availIdxCell.store(this.availIdx);
  }

  /**
   * Moves both free-running indices to `idx` as if that many requests had come and gone (with
   * a queue restored to nextAvail = nextUsed = idx): for wraparound tests.
   */
  startAt(idx: number): void {
    this.setAvailIdx(idx);
    this.lastUsed = idx & 0xffff;
    this.usedIdxCell.store(idx & 0xffff);
  }

  /** The next used index the driver will reap. */
  get lastUsedIdx(): number {
    return this.lastUsed;
  }

  get freeDescriptors(): number {
    return this.free.length;
  }

  get availIndex(): number {
    return this.availIdx;
  }

  /**
   * Adds a request: `readable` buffers (copied into guest RAM) then `writableLengths` zeroed
   * writable buffers, as one direct chain or through an indirect table. Returns where they are.
   */
  addChain(
    readable: readonly Uint8Array[],
    writableLengths: readonly number[],
    options: { indirect?: boolean; publish?: boolean } = {},
  ): AddedChain {
    const readableRefs = readable.map((bytes) => {
      const addr = this.allocate(bytes.length);
      this.memory.write(addr, bytes);
      return { addr, len: bytes.length };
    });
    const writableRefs = writableLengths.map((len) => {
      const addr = this.allocate(len);
      this.memory.fill(addr, len, 0);
      return { addr, len };
    });
    const parts = [
      ...readableRefs.map((r) => ({ ...r, flags: 0 })),
      ...writableRefs.map((r) => ({ ...r, flags: VIRTQ_DESC_F_WRITE })),
    ];
    let head: number;
    if (options.indirect) {
      const table = this.allocate(parts.length * DESCRIPTOR_SIZE);
      parts.forEach((p, i) => {
        const last = i === parts.length - 1;
        this.writeDescriptor(
          i,
          {
            addr: p.addr,
            len: p.len,
            flags: p.flags | (last ? 0 : VIRTQ_DESC_F_NEXT),
            next: last ? 0 : i + 1,
          },
          table,
        );
      });
      head = this.takeDescriptors(1)[0]!;
      this.writeDescriptor(head, {
        addr: table,
        len: parts.length * DESCRIPTOR_SIZE,
        flags: VIRTQ_DESC_F_INDIRECT,
        next: 0,
      });
      this.chains.set(head, [head]);
    } else {
      const indices = this.takeDescriptors(parts.length);
      parts.forEach((p, i) => {
        const next = indices[i + 1];
        this.writeDescriptor(indices[i]!, {
          addr: p.addr,
          len: p.len,
          flags: p.flags | (next === undefined ? 0 : VIRTQ_DESC_F_NEXT),
          next: next ?? 0,
        });
      });
      head = indices[0]!;
      this.chains.set(head, indices);
    }
    if (options.publish ?? true) this.publish(head);
    return { head, readable: readableRefs, writable: writableRefs };
  }

  /** The next used element the device published, freeing its descriptors; undefined if none. */
  takeUsed(): UsedElement | undefined {
    const usedIdx = this.usedIdxCell.load();
    if (usedIdx === this.lastUsed) return undefined;
    const at = this.layout.usedRing + USED_RING_OFFSET + 8 * (this.lastUsed % this.layout.size);
    const element = { id: this.memory.readU32(at), len: this.memory.readU32(at + 4) };
    this.lastUsed = (this.lastUsed + 1) & 0xffff;
    const indices = this.chains.get(element.id);
    if (indices) {
      this.chains.delete(element.id);
      this.free.push(...indices);
    }
    return element;
  }

  get usedIdx(): number {
    return this.usedIdxCell.load();
  }

  get usedFlags(): number {
    return this.usedFlagsCell.load();
  }

  /** avail_event, written by the device under EVENT_IDX. */
  get availEvent(): number {
    return this.availEventCell.load();
  }

  setAvailFlags(flags: number): void {
    this.availFlagsCell.store(flags);
  }

  /** used_event: the driver wants an interrupt once the device publishes past this index. */
  setUsedEvent(idx: number): void {
    this.usedEventCell.store(idx & 0xffff);
  }

  /** The driver's kick decision after moving avail.idx from `oldAvailIdx` to the current one. */
  kickNeeded(oldAvailIdx: number, eventIdx: boolean): boolean {
    if (eventIdx) return vringNeedEvent(this.availEvent, this.availIdx, oldAvailIdx);
    return (this.usedFlags & VIRTQ_USED_F_NO_NOTIFY) === 0;
  }

  private takeDescriptors(count: number): number[] {
    if (count > this.free.length)
      throw new Error(`test driver: ${count} descriptors wanted, ${this.free.length} free`);
    return this.free.splice(this.free.length - count, count).reverse();
  }
}
