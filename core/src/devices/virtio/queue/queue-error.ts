// What pop() hands back when the driver broke the rules. It is returned, never thrown: a device
// fails the one request (or, when `fatal`, stops the queue and asks for a reset) and carries on.

export type QueueErrorKind =
  /** avail.idx moved more than the queue size past what the device consumed (or backwards). */
  | 'avail-index-jump'
  /** An avail ring entry names a descriptor past the end of the table. */
  | 'head-out-of-range'
  /** A descriptor's next index is past the end of its table. */
  | 'next-out-of-range'
  /** More descriptors than the table can hold: a loop, or a chain over the cap. */
  | 'chain-too-long'
  /** The chain's lengths add up past 2^32 - 1. */
  | 'chain-too-large'
  /** A descriptor's buffer is not wholly inside guest RAM. */
  | 'buffer-outside-ram'
  /** A device-readable descriptor after a device-writable one. */
  | 'readable-after-writable'
  /** INDIRECT set though VIRTIO_F_INDIRECT_DESC was not negotiated. */
  | 'indirect-not-negotiated'
  /** INDIRECT inside an indirect table. */
  | 'nested-indirect'
  /** INDIRECT and NEXT in the same descriptor. */
  | 'indirect-with-next'
  /** An indirect table whose length is zero or not a multiple of 16. */
  | 'indirect-bad-length'
  /** An indirect table with more entries than the cap. */
  | 'indirect-too-long'
  /** An indirect table not wholly inside guest RAM. */
  | 'indirect-outside-ram';

export class QueueError {
  constructor(
    readonly kind: QueueErrorKind,
    readonly message: string,
    /**
     * True when the queue itself is unusable (the driver lost track of the rings): the queue
     * stops and keeps returning this error; the device should set DEVICE_NEEDS_RESET.
     * False when only one request is bad: its head is in `headIndex`, already consumed; the
     * device completes it with `addUsed(headIndex, 0)` (or its own error status) and goes on.
     */
    readonly fatal: boolean,
    readonly headIndex?: number,
  ) {}

  toString(): string {
    const head = this.headIndex === undefined ? '' : ` (chain head ${this.headIndex})`;
    return `virtqueue ${this.fatal ? 'broken' : 'bad chain'}: ${this.kind}: ${this.message}${head}`;
  }
}
