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

/** A position in a list of byte views, treated as one stream. */
abstract class ChainCursor {
  /** Views not yet (fully) consumed; the first one from `offset`. */
  private readonly buffers: Uint8Array[];
  private offset = 0;
  protected consumed = 0;
  private limit: number;
  private readonly scratch = new Uint8Array(8);
  protected readonly scratchView = new DataView(this.scratch.buffer);

  protected constructor(buffers: Uint8Array[]) {
    this.buffers = buffers.filter((b) => b.length > 0);
    this.limit = this.buffers.reduce((sum, b) => sum + b.length, 0);
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
    for (const b of this.buffers) {
      if (left === 0) break;
      const n = Math.min(b.length - offset, left);
      out.push(b.subarray(offset, offset + n));
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
    checkLength(n, 'length');
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

  /** Moves `n` (≤ remaining) bytes from the stream into `other` or from `other` into it. */
  protected move(n: number, other: Uint8Array | undefined, fromStream: boolean): void {
    let done = 0;
    while (done < n) {
      const b = this.buffers[0]!;
      const chunk = Math.min(b.length - this.offset, n - done);
      if (other !== undefined) {
        const stream = b.subarray(this.offset, this.offset + chunk);
        if (fromStream) other.set(stream, done);
        else stream.set(other.subarray(done, done + chunk));
      }
      done += chunk;
      this.offset += chunk;
      if (this.offset === b.length) {
        this.buffers.shift();
        this.offset = 0;
      }
    }
    this.consumed += n;
  }

  protected scratchBytes(n: number): Uint8Array {
    return this.scratch.subarray(0, n);
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
    this.readInto(this.scratchBytes(1));
    return this.scratchView.getUint8(0);
  }
  readU16(): number {
    this.readInto(this.scratchBytes(2));
    return this.scratchView.getUint16(0, true);
  }
  readU32(): number {
    this.readInto(this.scratchBytes(4));
    return this.scratchView.getUint32(0, true);
  }
  readU64(): bigint {
    this.readInto(this.scratchBytes(8));
    return this.scratchView.getBigUint64(0, true);
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
    this.scratchView.setUint8(0, value);
    this.write(this.scratchBytes(1));
  }
  writeU16(value: number): void {
    this.scratchView.setUint16(0, value, true);
    this.write(this.scratchBytes(2));
  }
  writeU32(value: number): void {
    this.scratchView.setUint32(0, value, true);
    this.write(this.scratchBytes(4));
  }
  writeU64(value: bigint): void {
    this.scratchView.setBigUint64(0, value, true);
    this.write(this.scratchBytes(8));
  }
}
