// A type-0 PCI configuration space: identity registers, command/status, BARs that size the way
// firmware and Linux probe them (write all-ones, read back the mask), a capability list, and the
// interrupt pin/line. Writable bits are described by a per-byte write mask, so BAR sizing and
// read-only registers need no special cases; what the guest changes that matters to the VMM
// (where a BAR decodes, capability registers) is reported through callbacks.

import { type BusDevice, readValue } from '../bus.js';

/** A PCI function as the root sees it: its configuration space and where its BARs decode. */
export interface PciFunction {
  configRead(offset: number, size: number): number;
  configWrite(offset: number, size: number, value: number): void;
  /** 256 for conventional functions (the default), 4096 with extended config space. */
  readonly configSize?: number;
  /** The BARs that decode now, with the device the root maps there. */
  barPlacements?(): readonly BarPlacement[];
}

/** A BAR that decodes: `space` and [address, address+size), answered by `device`. */
export interface BarPlacement {
  readonly index: number;
  readonly space: 'memory' | 'io';
  readonly address: number;
  readonly size: number;
  readonly device?: BusDevice;
}

export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_BAR0 = 0x10;
export const PCI_SUBSYSTEM_VENDOR = 0x2c;
export const PCI_CAPABILITY_POINTER = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;

export const COMMAND_IO = 1 << 0;
export const COMMAND_MEMORY = 1 << 1;
export const COMMAND_BUS_MASTER = 1 << 2;
export const COMMAND_INTX_DISABLE = 1 << 10;
const STATUS_INTERRUPT = 1 << 3;
const STATUS_CAPABILITIES = 1 << 4;

const CONFIG_SIZE = 256;
const FIRST_CAPABILITY = 0x40;

export type BarKind = 'mem32' | 'mem64' | 'io';

export interface BarDefinition {
  readonly index: number;
  readonly kind: BarKind;
  /** A power of two: at least 16 for memory BARs (4096 recommended), 4 for I/O BARs. */
  readonly size: number;
  readonly prefetchable?: boolean;
  /** What answers accesses inside the BAR (offsets relative to the BAR). */
  readonly device?: BusDevice;
}

/** Where a BAR decodes: undefined when decoding is off or the BAR is unassigned. */
export type BarMapping = { readonly address: number; readonly size: number } | undefined;

export interface PciIdentity {
  vendor: number;
  device: number;
  /** 24-bit class code: base class << 16 | subclass << 8 | programming interface. */
  classCode: number;
  revision?: number;
  subsystemVendor?: number;
  subsystem?: number;
  /** 1 = INTA#; 0 = no interrupt pin. */
  interruptPin?: number;
  interruptLine?: number;
}

export interface CapabilityOptions {
  /** Per-byte write masks of the body (after the 2-byte id/next header); default all read-only. */
  writeMask?: Uint8Array;
  /** Called after the guest wrote into this capability's body (offset relative to the capability). */
  onWrite?: (offset: number, size: number) => void;
  /** Called before a read of this capability returns, to refresh bytes (offset relative to it). */
  onRead?: (offset: number, size: number) => void;
}

interface Capability {
  readonly offset: number;
  readonly length: number;
  readonly onWrite?: (offset: number, size: number) => void;
  readonly onRead?: (offset: number, size: number) => void;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && Number.isInteger(Math.log2(n));
}

export class PciConfigSpace implements PciFunction {
  readonly bytes = new Uint8Array(CONFIG_SIZE);
  private readonly view = new DataView(this.bytes.buffer);
  private readonly writeMask = new Uint8Array(CONFIG_SIZE);
  private readonly bars: (BarDefinition | undefined)[] = new Array(6).fill(undefined);
  private readonly mappings: BarMapping[] = new Array(6).fill(undefined);
  private readonly capabilities: Capability[] = [];
  private nextCapability = FIRST_CAPABILITY;
  private lastCapability = -1;

  /** BarPlacement list for the root (it maps and unmaps the devices on its buses). */
  barPlacements(): readonly BarPlacement[] {
    const out: BarPlacement[] = [];
    for (let index = 0; index < 6; index++) {
      const mapping = this.mappings[index];
      const bar = this.bars[index];
      if (!mapping || !bar) continue;
      out.push({
        index,
        space: bar.kind === 'io' ? 'io' : 'memory',
        address: mapping.address,
        size: mapping.size,
        device: bar.device,
      });
    }
    return out;
  }

  /** The guest moved a BAR or switched decoding (the root remaps; devices move their ioeventfds). */
  onBarChange: (index: number, before: BarMapping, after: BarMapping) => void = () => {};
  /** The command register changed (e.g. INTx disable). */
  onCommandChange: (command: number) => void = () => {};

  constructor(identity: PciIdentity) {
    const v = this.view;
    v.setUint16(0x00, identity.vendor, true);
    v.setUint16(0x02, identity.device, true);
    v.setUint8(0x08, identity.revision ?? 0);
    v.setUint8(0x09, identity.classCode & 0xff);
    v.setUint16(0x0a, (identity.classCode >>> 8) & 0xffff, true);
    v.setUint16(PCI_SUBSYSTEM_VENDOR, identity.subsystemVendor ?? 0, true);
    v.setUint16(PCI_SUBSYSTEM_VENDOR + 2, identity.subsystem ?? 0, true);
    v.setUint8(PCI_INTERRUPT_PIN, identity.interruptPin ?? 0);
    v.setUint8(PCI_INTERRUPT_LINE, identity.interruptLine ?? 0);
    this.setMask16(PCI_COMMAND, COMMAND_IO | COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE);
    this.writeMask[0x0c] = 0xff; // cache line size
    this.writeMask[0x0d] = 0xff; // latency timer
    this.writeMask[PCI_INTERRUPT_LINE] = 0xff;
  }

  get command(): number {
    return this.view.getUint16(PCI_COMMAND, true);
  }

  get busMaster(): boolean {
    return (this.command & COMMAND_BUS_MASTER) !== 0;
  }

  get intxDisabled(): boolean {
    return (this.command & COMMAND_INTX_DISABLE) !== 0;
  }

  /** Status bit 3: an INTx is pending (whether or not it is disabled). */
  setInterruptStatus(pending: boolean): void {
    const status = this.view.getUint16(PCI_STATUS, true);
    this.view.setUint16(PCI_STATUS, pending ? status | STATUS_INTERRUPT : status & ~STATUS_INTERRUPT, true);
  }

  /** Declares a BAR. A 64-bit BAR also takes index+1. */
  addBar(bar: BarDefinition): void {
    const { index, kind, size } = bar;
    const minimum = kind === 'io' ? 4 : 16;
    if (!isPowerOfTwo(size) || size < minimum)
      throw new RangeError(`BAR ${index}: size ${size} is not a power of 2 ≥ ${minimum}`);
    const last = kind === 'mem64' ? index + 1 : index;
    if (!Number.isInteger(index) || index < 0 || last > 5) throw new RangeError(`BAR ${index} does not fit`);
    if (this.bars[index] || this.bars[last] || (index > 0 && this.bars[index - 1]?.kind === 'mem64')) {
      throw new Error(`BAR ${index} is taken`);
    }
    if (kind === 'io' && size > 256) throw new RangeError(`I/O BAR ${index}: at most 256 ports`);
    this.bars[index] = bar;
    const at = PCI_BAR0 + 4 * index;
    let flags = 0;
    if (kind === 'io') flags = 1;
    else {
      if (kind === 'mem64') flags |= 0b100;
      if (bar.prefetchable) flags |= 0b1000;
    }
    this.view.setUint32(at, flags, true);
    const lowBits = kind === 'io' ? 0x3 : 0xf;
    const lowMask = size >= 2 ** 32 ? 0 : ~(size - 1) & ~lowBits;
    this.setMask32(at, lowMask >>> 0);
    if (kind === 'mem64') {
      const highMask = size > 2 ** 32 ? ~(size / 2 ** 32 - 1) : 0xffff_ffff;
      this.setMask32(at + 4, highMask >>> 0);
    }
  }

  /** The address a BAR holds now (whether or not decoding is on). */
  barAddress(index: number): number {
    const bar = this.bars[index];
    if (!bar) return 0;
    const at = PCI_BAR0 + 4 * index;
    const low = this.view.getUint32(at, true) & (bar.kind === 'io' ? ~0x3 : ~0xf);
    const high = bar.kind === 'mem64' ? this.view.getUint32(at + 4, true) : 0;
    return high * 2 ** 32 + (low >>> 0);
  }

  /** Places a BAR as firmware would, before the guest starts. */
  setBarAddress(index: number, address: number): void {
    const bar = this.bars[index];
    if (!bar) throw new Error(`no BAR ${index}`);
    if (address % bar.size !== 0)
      throw new RangeError(`BAR ${index}: 0x${address.toString(16)} is not aligned to its size`);
    const at = PCI_BAR0 + 4 * index;
    const flags = this.view.getUint32(at, true) & (bar.kind === 'io' ? 0x3 : 0xf);
    this.view.setUint32(at, ((address % 2 ** 32) | flags) >>> 0, true);
    if (bar.kind === 'mem64') this.view.setUint32(at + 4, Math.floor(address / 2 ** 32), true);
    this.updateMappings();
  }

  /** Where each BAR decodes now. */
  barMapping(index: number): BarMapping {
    return this.mappings[index];
  }

  barDefinition(index: number): BarDefinition | undefined {
    return this.bars[index];
  }

  /**
   * Appends a capability with `body` after its id/next header; returns its offset in config
   * space. The body's bytes stay in this space (read them back through `bytes`).
   */
  addCapability(id: number, body: Uint8Array, options: CapabilityOptions = {}): number {
    const length = 2 + body.length;
    const offset = this.nextCapability;
    if (offset + length > CONFIG_SIZE) throw new RangeError('PCI capabilities do not fit in config space');
    this.bytes[offset] = id;
    this.bytes[offset + 1] = 0;
    this.bytes.set(body, offset + 2);
    if (options.writeMask) this.writeMask.set(options.writeMask.subarray(0, body.length), offset + 2);
    if (this.lastCapability < 0) {
      this.bytes[PCI_CAPABILITY_POINTER] = offset;
      this.view.setUint16(PCI_STATUS, this.view.getUint16(PCI_STATUS, true) | STATUS_CAPABILITIES, true);
    } else {
      this.bytes[this.lastCapability + 1] = offset;
    }
    this.lastCapability = offset;
    this.nextCapability = (offset + length + 3) & ~3;
    this.capabilities.push({ offset, length, onWrite: options.onWrite, onRead: options.onRead });
    return offset;
  }

  configRead(offset: number, size: number): number {
    if (!validAccess(offset, size)) return 2 ** (8 * size) - 1;
    if (offset >= FIRST_CAPABILITY) {
      for (const cap of this.capabilities) {
        if (cap.onRead && offset < cap.offset + cap.length && offset + size > cap.offset) {
          cap.onRead(Math.max(offset - cap.offset, 0), size);
        }
      }
    }
    return readValue(this.bytes.subarray(offset, offset + size));
  }

  configWrite(offset: number, size: number, value: number): void {
    if (!validAccess(offset, size)) return;
    const commandBefore = this.command;
    for (let i = 0; i < size; i++) {
      const byte = Math.floor(value / 2 ** (8 * i)) & 0xff;
      const mask = this.writeMask[offset + i]!;
      this.bytes[offset + i] = (this.bytes[offset + i]! & ~mask) | (byte & mask);
    }
    const end = offset + size;
    if (offset < PCI_BAR0 + 24 && end > PCI_COMMAND) {
      this.updateMappings();
      if (this.command !== commandBefore) this.onCommandChange(this.command);
    }
    for (const cap of this.capabilities) {
      if (offset < cap.offset + cap.length && end > cap.offset && cap.onWrite) {
        cap.onWrite(Math.max(offset - cap.offset, 0), size);
      }
    }
  }

  /** The 256 bytes, for snapshots (BAR addresses, command, capability registers). */
  state(): number[] {
    return Array.from(this.bytes);
  }

  /** Loads a snapshot's bytes; read-only registers keep this device's values. BARs are remapped. */
  restore(bytes: readonly number[]): void {
    if (bytes.length !== CONFIG_SIZE)
      throw new Error(`PCI config state has ${bytes.length} bytes, not ${CONFIG_SIZE}`);
    for (let i = 0; i < CONFIG_SIZE; i++) {
      const mask = this.writeMask[i]!;
      this.bytes[i] = (this.bytes[i]! & ~mask) | (bytes[i]! & mask);
    }
    this.updateMappings();
    this.onCommandChange(this.command);
  }

  private updateMappings(): void {
    const command = this.command;
    for (let index = 0; index < 6; index++) {
      const bar = this.bars[index];
      if (!bar) continue;
      const enabled = (command & (bar.kind === 'io' ? COMMAND_IO : COMMAND_MEMORY)) !== 0;
      const address = this.barAddress(index);
      // Address 0 means unassigned; an address whose bits above the size were not all written
      // back after sizing (all-ones) is not a real placement either.
      const sizing = address + bar.size > (bar.kind === 'mem64' ? 2 ** 64 : 2 ** 32) - bar.size;
      const after: BarMapping = enabled && address !== 0 && !sizing ? { address, size: bar.size } : undefined;
      const before = this.mappings[index];
      if (before?.address === after?.address && (before === undefined) === (after === undefined)) continue;
      this.mappings[index] = after;
      this.onBarChange(index, before, after);
    }
  }

  private setMask16(offset: number, mask: number): void {
    this.writeMask[offset] = mask & 0xff;
    this.writeMask[offset + 1] = (mask >>> 8) & 0xff;
  }

  private setMask32(offset: number, mask: number): void {
    for (let i = 0; i < 4; i++) this.writeMask[offset + i] = (mask >>> (8 * i)) & 0xff;
  }
}

function validAccess(offset: number, size: number): boolean {
  return (
    (size === 1 || size === 2 || size === 4) &&
    Number.isInteger(offset) &&
    offset >= 0 &&
    offset + size <= CONFIG_SIZE &&
    offset % size === 0
  );
}
