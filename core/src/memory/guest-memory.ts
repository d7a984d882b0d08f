// Guest-physical memory: the only way TypeScript touches guest RAM. Every access is checked
// against the regions; the guest is untrusted, so an address it supplies can point anywhere.

export class GuestMemoryError extends Error {
  constructor(
    message: string,
    readonly gpa: bigint | number,
    readonly length: number,
  ) {
    super(message);
    this.name = 'GuestMemoryError';
  }
}

export interface MemoryRegion {
  /** Guest-physical address of the first byte. */
  readonly gpa: number;
  /** The bytes; its length is the region's size. */
  readonly bytes: Uint8Array;
}

/** Largest guest-physical address a JS number addresses exactly (2^53). */
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function toNumber(gpa: bigint | number): number {
  if (typeof gpa === 'number') {
    if (!Number.isSafeInteger(gpa) || gpa < 0) return -1;
    return gpa;
  }
  return gpa < 0n || gpa > BigInt(MAX_SAFE) ? -1 : Number(gpa);
}

export class GuestMemory {
  readonly regions: readonly MemoryRegion[];
  private readonly views: DataView[];

  constructor(regions: MemoryRegion[]) {
    const sorted = [...regions].sort((a, b) => a.gpa - b.gpa);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1]!;
      if (prev.gpa + prev.bytes.length > sorted[i]!.gpa) {
        throw new Error(`guest memory regions overlap at 0x${sorted[i]!.gpa.toString(16)}`);
      }
    }
    this.regions = sorted;
    this.views = sorted.map((r) => new DataView(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength));
  }

  /** Total bytes of RAM over all regions. */
  get size(): number {
    return this.regions.reduce((sum, r) => sum + r.bytes.length, 0);
  }

  /** Index of the region holding [gpa, gpa+length), or -1. */
  private find(gpa: number, length: number): number {
    if (gpa < 0 || length < 0 || gpa + length > MAX_SAFE) return -1;
    const regions = this.regions;
    for (let i = 0; i < regions.length; i++) {
      const r = regions[i]!;
      if (gpa >= r.gpa && gpa + length <= r.gpa + r.bytes.length) return i;
    }
    return -1;
  }

  private locate(gpa: bigint | number, length: number): [DataView, number] {
    const address = toNumber(gpa);
    const index = this.find(address, length);
    if (index < 0) {
      throw new GuestMemoryError(
        `guest address 0x${gpa.toString(16)}+${length} is outside guest RAM`,
        gpa,
        length,
      );
    }
    return [this.views[index]!, address - this.regions[index]!.gpa];
  }

  /** True when [gpa, gpa+length) lies inside one region. */
  contains(gpa: bigint | number, length: number): boolean {
    return this.find(toNumber(gpa), length) >= 0;
  }

  /**
   * A live view of guest bytes (no copy). The range must lie inside one region. The guest can
   * change these bytes at any time: copy before validating anything read through a view.
   */
  view(gpa: bigint | number, length: number): Uint8Array {
    const [dv, offset] = this.locate(gpa, length);
    return new Uint8Array(dv.buffer, dv.byteOffset + offset, length);
  }

  /** A copy of guest bytes. */
  read(gpa: bigint | number, length: number): Uint8Array {
    return this.view(gpa, length).slice();
  }

  write(gpa: bigint | number, data: Uint8Array): void {
    this.view(gpa, data.length).set(data);
  }

  fill(gpa: bigint | number, length: number, value = 0): void {
    this.view(gpa, length).fill(value);
  }

  readU8(gpa: bigint | number): number {
    const [dv, o] = this.locate(gpa, 1);
    return dv.getUint8(o);
  }
  readU16(gpa: bigint | number): number {
    const [dv, o] = this.locate(gpa, 2);
    return dv.getUint16(o, true);
  }
  readU32(gpa: bigint | number): number {
    const [dv, o] = this.locate(gpa, 4);
    return dv.getUint32(o, true);
  }
  readU64(gpa: bigint | number): bigint {
    const [dv, o] = this.locate(gpa, 8);
    return dv.getBigUint64(o, true);
  }
  writeU8(gpa: bigint | number, value: number): void {
    const [dv, o] = this.locate(gpa, 1);
    dv.setUint8(o, value);
  }
  writeU16(gpa: bigint | number, value: number): void {
    const [dv, o] = this.locate(gpa, 2);
    dv.setUint16(o, value, true);
  }
  writeU32(gpa: bigint | number, value: number): void {
    const [dv, o] = this.locate(gpa, 4);
    dv.setUint32(o, value, true);
  }
  writeU64(gpa: bigint | number, value: bigint): void {
    const [dv, o] = this.locate(gpa, 8);
    dv.setBigUint64(o, value, true);
  }
}
