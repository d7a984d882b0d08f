// PCI configuration mechanism #1 (ports 0xCF8/0xCFC) over bus 0, with the host bridge at 00:00.0.
// Functions plug in by slot; an empty slot reads all-ones, which is how the guest finds nothing.

import { type BusDevice, fillValue, readValue } from '../bus.js';

/** A PCI function's 256-byte configuration space. */
export interface PciFunction {
  configRead(offset: number, size: number): number;
  configWrite(offset: number, size: number, value: number): void;
}

const ENABLE = 0x8000_0000;

/** A read-only config space: identity registers, no BARs (the host bridge, simple functions). */
export class FixedConfigSpace implements PciFunction {
  private readonly bytes = new Uint8Array(256);

  constructor(ids: {
    vendor: number;
    device: number;
    classCode: number;
    revision?: number;
    headerType?: number;
  }) {
    const view = new DataView(this.bytes.buffer);
    view.setUint16(0x00, ids.vendor, true);
    view.setUint16(0x02, ids.device, true);
    view.setUint8(0x08, ids.revision ?? 0);
    view.setUint8(0x09, ids.classCode & 0xff);
    view.setUint16(0x0a, ids.classCode >> 8, true);
    view.setUint8(0x0e, ids.headerType ?? 0);
  }

  configRead(offset: number, size: number): number {
    return readValue(this.bytes.subarray(offset, offset + size));
  }

  configWrite(): void {
    // Read-only: the host bridge has nothing a guest may change.
  }
}

export class PciRoot {
  private address = 0;
  private readonly slots = new Map<number, PciFunction>();

  constructor() {
    // Intel 440FX-style host bridge, class 06/00/00, as guests expect at 00:00.0.
    this.slots.set(0, new FixedConfigSpace({ vendor: 0x8086, device: 0x1237, classCode: 0x060000 }));
  }

  /** Plugs a function into `slot` (1..31) of bus 0. */
  attach(slot: number, fn: PciFunction): void {
    if (!Number.isInteger(slot) || slot < 1 || slot > 31)
      throw new RangeError(`PCI slot ${slot} outside 1..31`);
    if (this.slots.has(slot)) throw new Error(`PCI slot ${slot} is taken`);
    this.slots.set(slot, fn);
  }

  /** The device at 0xCF8: the 32-bit configuration address. */
  readonly addressPort: BusDevice = {
    read: (offset, data) => fillValue(data, Math.floor(this.address / 2 ** (8 * offset))),
    write: (offset, data) => {
      if (offset !== 0 || data.length !== 4) return; // only dword writes select an address
      this.address = readValue(data) >>> 0;
    },
  };

  /** The device at 0xCFC-0xCFF: the selected register, any size at any byte offset. */
  readonly dataPort: BusDevice = {
    read: (offset, data) => fillValue(data, this.access(offset, data.length, undefined)),
    write: (offset, data) => {
      this.access(offset, data.length, readValue(data));
    },
  };

  private access(offset: number, size: number, value: number | undefined): number {
    const allOnes = 2 ** (8 * size) - 1;
    const address = this.address;
    if (!(address & ENABLE)) return allOnes;
    const bus = (address >>> 16) & 0xff;
    const slot = (address >>> 11) & 0x1f;
    const fn = (address >>> 8) & 0x07;
    const register = (address & 0xfc) + offset;
    if (register + size > 256 || bus !== 0 || fn !== 0) return allOnes;
    const target = this.slots.get(slot);
    if (!target) return allOnes;
    if (value === undefined) return target.configRead(register, size);
    target.configWrite(register, size, value);
    return 0;
  }
}
