// Little-endian byte building for firmware tables (ACPI, MP, boot_params): the tables are built in
// host buffers, checksummed, then copied into guest memory in one write.

export class ByteWriter {
  private buffer = new Uint8Array(256);
  private view = new DataView(this.buffer.buffer);
  private used = 0;

  get length(): number {
    return this.used;
  }

  private reserve(extra: number): number {
    const at = this.used;
    const needed = at + extra;
    if (needed > this.buffer.length) {
      const grown = new Uint8Array(Math.max(needed, this.buffer.length * 2));
      grown.set(this.buffer.subarray(0, at));
      this.buffer = grown;
      this.view = new DataView(grown.buffer);
    }
    this.used = needed;
    return at;
  }

  u8(value: number): this {
    const at = this.reserve(1);
    this.view.setUint8(at, value);
    return this;
  }
  u16(value: number): this {
    const at = this.reserve(2);
    this.view.setUint16(at, value, true);
    return this;
  }
  u32(value: number): this {
    const at = this.reserve(4);
    this.view.setUint32(at, value >>> 0, true);
    return this;
  }
  u64(value: number | bigint): this {
    // Reserve first: growing replaces the view.
    const at = this.reserve(8);
    this.view.setBigUint64(at, BigInt(value), true);
    return this;
  }
  bytes(data: Uint8Array | readonly number[]): this {
    const at = this.reserve(data.length);
    this.buffer.set(data, at);
    return this;
  }
  zeros(count: number): this {
    const at = this.reserve(count);
    this.buffer.fill(0, at, at + count);
    return this;
  }
  /** ASCII text padded with `pad` (or cut) to exactly `width` bytes. */
  ascii(text: string, width: number, pad = 0x20): this {
    const at = this.reserve(width);
    for (let i = 0; i < width; i++) this.buffer[at + i] = i < text.length ? text.charCodeAt(i) & 0x7f : pad;
    return this;
  }

  setU8(offset: number, value: number): void {
    this.view.setUint8(offset, value);
  }
  setU16(offset: number, value: number): void {
    this.view.setUint16(offset, value, true);
  }
  setU32(offset: number, value: number): void {
    this.view.setUint32(offset, value >>> 0, true);
  }

  /** A copy of what was written. */
  finish(): Uint8Array {
    return this.buffer.slice(0, this.used);
  }
}

/** Sum of bytes modulo 256. */
export function byteSum(data: Uint8Array, start = 0, end = data.length): number {
  let sum = 0;
  for (let i = start; i < end; i++) sum = (sum + data[i]!) & 0xff;
  return sum;
}

/** Writes into `data[at]` the byte that makes bytes [start, end) sum to zero. */
export function fixChecksum(data: Uint8Array, at: number, start = 0, end = data.length): void {
  data[at] = 0;
  data[at] = (0x100 - byteSum(data, start, end)) & 0xff;
}

export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

export function alignDown(value: number, alignment: number): number {
  return Math.floor(value / alignment) * alignment;
}

export function hex(value: number | bigint): string {
  return `0x${value.toString(16)}`;
}
