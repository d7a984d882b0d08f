// Reading a descriptor chain's device-readable buffers as one byte stream, and writing its
// device-writable buffers as another. Both also hand out the remaining bytes as live views of
// guest memory, for zero-copy I/O (a block device reads a file straight into guest RAM).
//
// The views alias guest RAM the driver can change at any time: anything the device validates
// must be copied first (readBytes/readU32 copy; views do not).

import { type GuestMemory, GuestMemoryError } from '../../memory/guest-memory.js';
import type { DescriptorChain } from './queue/chain.js';

export type ChainErrorKind =
  /** The readable buffers ended before the request did. */
  | 'short-read'
  /** The writable buffers ended before the response did. */
  | 'short-write'
  /** A buffer of the chain is not inside guest RAM (a chain not from Queue.pop()). */
  | 'outside-ram'
  /** A length or offset that is not a non-negative integer. */
  | 'bad-length';

/** A request does not fit its chain. The device catches it and fails that one request. */
export class ChainError extends Error {
  constructor(
    readonly kind: ChainErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'ChainError';
  }
}

function checkLength(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new ChainError('bad-length', `${what} ${n} is not a byte count`);
}

function guestViews(memory: GuestMemory, chain: DescriptorChain, writable: boolean): Uint8Array[] {
  const views: Uint8Array[] = [];
  for (const d of chain.descriptors) {
    if (d.writable !== writable || d.len === 0) continue;
    try {
      views.push(memory.view(d.addr, d.len));
    } catch (e) {
      if (e instanceof GuestMemoryError) {
        throw new ChainError(
          'outside-ram',
          `chain buffer 0x${d.addr.toString(16)}+${d.len} is outside guest RAM`,
        );
      }
      throw e;
    }
  }
  return views;
}

// Scratch space for numbers that straddle two buffers. Device code is single-threaded per
// isolate and nothing here re-enters, so one set per module is enough.
const scratch = new Uint8Array(8);
const scratchView = new DataView(scratch.buffer);
/** scratchOf[n]: the first n scratch bytes. */
const scratchOf = Array.from({ length: 9 }, (_, n) => scratch.subarray(0, n));

/** Copies below this size go byte by byte: cheaper than making subarrays. */
const SMALL_COPY = 32;

/** A position in a list of byte views, treated as one stream. */
abstract class ChainCursor {
  private readonly buffers: Uint8Array[];
  /** The current buffer and the offset in it. */
  private index = 0;
  private offset = 0;
  protected consumed = 0;
  private limit: number;

  protected constructor(buffers: Uint8Array[]) {
    let total = 0;
    for (const b of buffers) total += b.length;
    this.buffers = buffers;
    this.limit = total;
    this.skipEmpty();
  }

  /** Bytes left in the stream. */
  get remaining(): number {
    return this.limit - this.consumed;
  }

  /**
   * The next `maxBytes` (default: all remaining) bytes as live guest views, without consuming
   * them; call consume() with what the I/O actually moved.
   */
  views(maxBytes = this.remaining): Uint8Array[] {
    checkLength(maxBytes, 'view length');
    let left = Math.min(maxBytes, this.remaining);
    const out: Uint8Array[] = [];
    let offset = this.offset;
    for (let i = this.index; left > 0 && i < this.buffers.length; i++) {
      const b = this.buffers[i]!;
      const n = Math.min(b.length - offset, left);
      if (n > 0) out.push(offset === 0 && n === b.length ? b : b.subarray(offset, offset + n));
      left -= n;
      offset = 0;
    }
    return out;
  }

  /** Moves past `n` bytes (after zero-copy I/O through views(), or to skip). */
  consume(n: number): void {
    this.need(n);
    this.move(n, undefined, true);
  }

  protected abstract short(wanted: number): never;

  /** Throws unless `n` is a byte count the stream still holds. */
  protected need(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) checkLength(n, 'length');
    if (n > this.remaining) this.short(n);
  }

  /**
   * Cuts the stream `offset` bytes past the current position: this cursor keeps the bytes
   * before, the views of the rest are returned.
   */
  protected cut(offset: number): Uint8Array[] {
    this.need(offset);
    let skip = offset;
    const tail: Uint8Array[] = [];
    for (const v of this.views()) {
      if (skip >= v.length) {
        skip -= v.length;
        continue;
      }
      tail.push(v.subarray(skip));
      skip = 0;
    }
    this.limit = this.consumed + offset;
    return tail;
  }

  /**
   * The current buffer when it holds `n` more bytes before the limit (the fast path for
   * numbers), else undefined; `this.position` is where they start.
   */
  protected contiguous(n: number): Uint8Array | undefined {
    if (n > this.remaining) return undefined;
    const b = this.buffers[this.index];
    return b !== undefined && b.length - this.offset >= n ? b : undefined;
  }

  protected get position(): number {
    return this.offset;
  }

  /** Moves the position by `n` bytes inside the current buffer (after a contiguous() access). */
  protected advanceWithin(n: number): void {
    this.offset += n;
    this.consumed += n;
    this.skipEmpty();
  }

  /** Moves `n` (≤ remaining) bytes from the stream into `other`, or from `other` into it. */
  protected move(n: number, other: Uint8Array | undefined, fromStream: boolean): void {
    let done = 0;
    while (done < n) {
      const b = this.buffers[this.index]!;
      const chunk = Math.min(b.length - this.offset, n - done);
      if (other !== undefined) {
        if (chunk <= SMALL_COPY) {
          const o = this.offset;
          if (fromStream) for (let i = 0; i < chunk; i++) other[done + i] = b[o + i]!;
          else for (let i = 0; i < chunk; i++) b[o + i] = other[done + i]!;
        } else if (fromStream) {
          other.set(b.subarray(this.offset, this.offset + chunk), done);
        } else {
          b.set(other.subarray(done, done + chunk), this.offset);
        }
      }
      done += chunk;
      this.offset += chunk;
      this.skipEmpty();
    }
    this.consumed += n;
  }

  private skipEmpty(): void {
    const buffers = this.buffers;
    while (this.index < buffers.length && this.offset === buffers[this.index]!.length) {
      this.index++;
      this.offset = 0;
    }
  }
}

/** The device-readable part of a chain as a stream. */
export class Reader extends ChainCursor {
  /** Throws ChainError('outside-ram') only for a chain that did not come from Queue.pop(). */
  static fromChain(memory: GuestMemory, chain: DescriptorChain): Reader {
    return new Reader(guestViews(memory, chain, false));
  }

  constructor(buffers: Uint8Array[]) {
    super(buffers);
  }

  protected short(wanted: number): never {
    throw new ChainError('short-read', `request needs ${wanted} bytes, the chain has ${this.remaining} left`);
  }

  get bytesRead(): number {
    return this.consumed;
  }

  /** A copy of the next `n` bytes. */
  readBytes(n: number): Uint8Array {
    this.need(n);
    const out = new Uint8Array(n);
    this.move(n, out, true);
    return out;
  }

  /** Fills `target` completely from the stream. */
  readInto(target: Uint8Array): void {
    this.need(target.length);
    this.move(target.length, target, true);
  }

  skip(n: number): void {
    this.consume(n);
  }

  /** Splits off everything `offset` bytes past the current position into a new Reader. */
  splitAt(offset: number): Reader {
    return new Reader(this.cut(offset));
  }

  readU8(): number {
    const b = this.contiguous(1);
    if (b === undefined) this.short(1);
    const value = b[this.position]!;
    this.advanceWithin(1);
    return value;
  }
  readU16(): number {
    const b = this.contiguous(2);
    if (b === undefined) return this.readStraddling(2).getUint16(0, true);
    const o = this.position;
    const value = b[o]! | (b[o + 1]! << 8);
    this.advanceWithin(2);
    return value;
  }
  readU32(): number {
    const b = this.contiguous(4);
    if (b === undefined) return this.readStraddling(4).getUint32(0, true);
    const o = this.position;
    const value = (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
    this.advanceWithin(4);
    return value;
  }
  readU64(): bigint {
    const low = this.readU32Checked(8);
    const high = this.readU32();
    return (BigInt(high) << 32n) | BigInt(low);
  }

  /** readU32 that first makes sure `total` bytes are there, so a short U64 read consumes nothing. */
  private readU32Checked(total: number): number {
    this.need(total);
    return this.readU32();
  }

  private readStraddling(n: number): DataView {
    this.readInto(scratchOf[n]!);
    return scratchView;
  }
}

/** The device-writable part of a chain as a stream. */
export class Writer extends ChainCursor {
  /** Throws ChainError('outside-ram') only for a chain that did not come from Queue.pop(). */
  static fromChain(memory: GuestMemory, chain: DescriptorChain): Writer {
    return new Writer(guestViews(memory, chain, true));
  }

  constructor(buffers: Uint8Array[]) {
    super(buffers);
  }

  protected short(wanted: number): never {
    throw new ChainError(
      'short-write',
      `response needs ${wanted} bytes, the chain has ${this.remaining} left`,
    );
  }

  /** What to report as the used length (plus whatever split-off Writers wrote). */
  get bytesWritten(): number {
    return this.consumed;
  }

  /** Writable bytes left. */
  get available(): number {
    return this.remaining;
  }

  /** Writes all of `bytes`, or throws ChainError('short-write') having written nothing. */
  write(bytes: Uint8Array): void {
    this.need(bytes.length);
    this.move(bytes.length, bytes, false);
  }

  /** Splits off everything `offset` bytes past the current position into a new Writer. */
  splitAt(offset: number): Writer {
    return new Writer(this.cut(offset));
  }

  writeU8(value: number): void {
    const b = this.contiguous(1);
    if (b === undefined) this.short(1);
    b[this.position] = value;
    this.advanceWithin(1);
  }
  writeU16(value: number): void {
    scratchView.setUint16(0, value, true);
    this.writeSmall(2);
  }
  writeU32(value: number): void {
    scratchView.setUint32(0, value, true);
    this.writeSmall(4);
  }
  writeU64(value: bigint): void {
    scratchView.setBigUint64(0, value, true);
    this.writeSmall(8);
  }

  /** Writes the first `n` scratch bytes. */
  private writeSmall(n: number): void {
    const b = this.contiguous(n);
    if (b === undefined) {
      this.write(scratchOf[n]!);
      return;
    }
    const o = this.position;
    for (let i = 0; i < n; i++) b[o + i] = scratch[i]!;
    this.advanceWithin(n);
  }
}
