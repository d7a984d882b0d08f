// What a queue saves in a snapshot, and the counters it keeps. Both are plain data.

/** Per-queue state: plain JSON (numbers and booleans only). */
export interface QueueState {
  readonly maxSize: number;
  readonly size: number;
  readonly ready: boolean;
  readonly descTableAddress: number;
  readonly availRingAddress: number;
  readonly usedRingAddress: number;
  readonly nextAvail: number;
  readonly nextUsed: number;
  readonly eventIdx: boolean;
  readonly indirectDescriptors: boolean;
  /** used.idx when the device last decided whether to interrupt (for EVENT_IDX). */
  readonly signalledUsed: number;
}

export class QueueMetrics {
  chainsPopped = 0;
  /** Sum of readable descriptor lengths over popped chains. */
  readableBytes = 0;
  /** Sum of writable descriptor lengths over popped chains. */
  writableBytes = 0;
  usedElements = 0;
  /** Sum of the lengths the device reported written in the used ring. */
  usedBytes = 0;
  /** Bad chains (one request failed). */
  chainErrors = 0;
  /** Errors that stopped the queue. */
  fatalErrors = 0;
  notificationsSent = 0;
  notificationsSuppressed = 0;
}

function isU16(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 0xffff;
}

function isAddress(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** Checks that `value` has the shape of a QueueState (a snapshot file is data, not trusted). */
export function checkQueueState(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return 'queue state is not an object';
  const s = value as Record<string, unknown>;
  if (!Number.isInteger(s.maxSize) || (s.maxSize as number) < 1) return 'queue state: bad maxSize';
  if (!Number.isInteger(s.size) || (s.size as number) < 0) return 'queue state: bad size';
  for (const key of ['ready', 'eventIdx', 'indirectDescriptors'] as const) {
    if (typeof s[key] !== 'boolean') return `queue state: ${key} is not a boolean`;
  }
  for (const key of ['descTableAddress', 'availRingAddress', 'usedRingAddress'] as const) {
    if (!isAddress(s[key])) return `queue state: ${key} is not an address`;
  }
  for (const key of ['nextAvail', 'nextUsed', 'signalledUsed'] as const) {
    if (!isU16(s[key])) return `queue state: ${key} is not a 16-bit index`;
  }
  return undefined;
}
