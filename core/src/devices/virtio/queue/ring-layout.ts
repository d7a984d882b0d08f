// The split virtqueue's memory layout (virtio 1.x, section 2.7) and the small pure rules over it.

/** Descriptor flags. */
export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;

/** avail.flags: the driver asks the device not to interrupt (only meaningful without EVENT_IDX). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** used.flags: the device asks the driver not to kick (only meaningful without EVENT_IDX). */
export const VIRTQ_USED_F_NO_NOTIFY = 1;

/** Feature bits a queue cares about. */
export const VIRTIO_F_INDIRECT_DESC = 28;
export const VIRTIO_F_EVENT_IDX = 29;

/** The largest split queue the spec allows. */
export const MAX_QUEUE_SIZE = 32768;

export const DESCRIPTOR_SIZE = 16;
export const USED_ELEMENT_SIZE = 8;

export const DESC_TABLE_ALIGN = 16;
export const AVAIL_RING_ALIGN = 2;
export const USED_RING_ALIGN = 4;

/** Byte offsets inside the rings. */
export const AVAIL_FLAGS_OFFSET = 0;
export const AVAIL_IDX_OFFSET = 2;
export const AVAIL_RING_OFFSET = 4;
export const USED_FLAGS_OFFSET = 0;
export const USED_IDX_OFFSET = 2;
export const USED_RING_OFFSET = 4;

export function descriptorTableBytes(size: number): number {
  return DESCRIPTOR_SIZE * size;
}

/** flags, idx, ring[size], used_event: the trailing event field is counted whether or not EVENT_IDX is on. */
export function availRingBytes(size: number): number {
  return 6 + 2 * size;
}

/** flags, idx, ring[size] of {id, len}, avail_event. */
export function usedRingBytes(size: number): number {
  return 6 + USED_ELEMENT_SIZE * size;
}

/** Offset of used_event (written by the driver) in the avail ring. */
export function usedEventOffset(size: number): number {
  return AVAIL_RING_OFFSET + 2 * size;
}

/** Offset of avail_event (written by the device) in the used ring. */
export function availEventOffset(size: number): number {
  return USED_RING_OFFSET + USED_ELEMENT_SIZE * size;
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/**
 * vring_need_event: true when moving the index from `oldIdx` to `newIdx` steps past `eventIdx`,
 * i.e. the other side asked to be told once entry `eventIdx` was published. All arithmetic is
 * modulo 2^16, so it is right across the wrap at 0xffff.
 */
export function vringNeedEvent(eventIdx: number, newIdx: number, oldIdx: number): boolean {
  return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
}
