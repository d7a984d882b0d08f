// PCI bus 0 behind a host bridge at 00:00.0, reached two ways that lead to the same functions:
// configuration mechanism #1 (ports 0xCF8 address / 0xCFC-0xCFF data) and the PCIe ECAM window.
// Empty slots read all-ones, which is how a guest learns there is nothing there. When the guest
// programs a BAR and enables decoding, the root maps the BAR's device on the MMIO or port bus.

import type { Bus, BusDevice } from '../bus.js';
import { fillValue, readValue } from '../bus.js';
import {
  type BarPlacement,
  COMMAND_IO,
  COMMAND_MEMORY,
  PCI_BAR0,
  PCI_COMMAND,
  PciConfigSpace,
  type PciFunction,
} from './config-space.js';

export type { BarPlacement, PciFunction } from './config-space.js';

const CONFIG_ENABLE = 0x8000_0000;
/** 0xCF9 (byte access at offset 1 of the address port): the PIIX/ICH reset control register. */
const RESET_CONTROL_OFFSET = 1;
const RESET_CPU = 0x04;
const RESET_CONTROL_WRITABLE = 0x0e;

/** The host bridge's identity: an Intel 440FX bridge, class 06/00/00, as guests expect at 00:00.0. */
export const HOST_BRIDGE_IDS = { vendor: 0x8086, device: 0x1237, classCode: 0x06_00_00 } as const;

export interface PciBarMove {
  slot: number;
  function: number;
  index: number;
  /** undefined: the BAR was not decoding before (or is not any more, for `to`). */
  from: BarPlacement | undefined;
  to: BarPlacement | undefined;
}

export interface PciRootOptions {
  /** Memory BARs that decode are mapped here. */
  mmio?: Bus;
  /** I/O BARs that decode are mapped here. */
  pio?: Bus;
  /** The guest asked for a reset through 0xCF9. */
  onReset?(): void;
  /** Any BAR of any function moved, appeared or went away. */
  onBarMove?(move: PciBarMove): void;
  log?(message: string): void;
}

/** Address windows firmware would hand out, for `assignResources`. [start, end) each. */
export interface PciWindows {
  /** For 32-bit memory BARs (and 64-bit ones when there is no `memory64`): below 4 GiB. */
  memory: { start: number; end: number };
  /** For 64-bit memory BARs, typically above RAM; the root bridge's _CRS must include it. */
  memory64?: { start: number; end: number };
  io?: { start: number; end: number };
}

export interface PciAssignment {
  slot: number;
  function: number;
  index: number;
  space: 'memory' | 'io';
  address: number;
  size: number;
}

interface Mapped {
  placement: BarPlacement;
  bus: Bus;
  device: BusDevice;
}

export class PciRoot {
  private address = 0;
  private resetControl = 0;
  /** Keyed by devfn (slot << 3 | function). */
  private readonly functions = new Map<number, PciFunction>();
  private readonly mapped = new Map<number, Mapped[]>();
  private readonly placements = new Map<number, readonly BarPlacement[]>();
  private readonly log: (message: string) => void;

  constructor(private readonly options: PciRootOptions = {}) {
    this.log = options.log ?? ((message) => console.warn(message));
    this.functions.set(0, new PciConfigSpace(HOST_BRIDGE_IDS));
  }

  /** Plugs a function into `slot` (1..31) of bus 0. Its BARs, if already decoding, are mapped now. */
  attach(slot: number, fn: PciFunction, functionNumber = 0): void {
    if (!Number.isInteger(slot) || slot < 1 || slot > 31)
      throw new RangeError(`PCI slot ${slot} outside 1..31`);
    if (!Number.isInteger(functionNumber) || functionNumber < 0 || functionNumber > 7) {
      throw new RangeError(`PCI function ${functionNumber} outside 0..7`);
    }
    const devfn = (slot << 3) | functionNumber;
    if (this.functions.has(devfn)) throw new Error(`PCI ${slot}.${functionNumber} is taken`);
    this.functions.set(devfn, fn);
    this.syncBars(devfn, fn);
  }

  /** The root's own registers; each function snapshots its own config space. */
  state(): { address: number; resetControl: number } {
    return { address: this.address, resetControl: this.resetControl };
  }

  /** Loads the root's registers and remaps every BAR (restore the functions first). */
  restore(state: { address: number; resetControl: number }): string | undefined {
    if (!Number.isInteger(state.address) || state.address < 0 || state.address > 0xffff_ffff) {
      return 'bad PCI config address';
    }
    this.address = (state.address & 0x80ff_fffc) >>> 0;
    this.resetControl = state.resetControl & RESET_CONTROL_WRITABLE;
    this.refreshBars();
    return undefined;
  }

  /**
   * Re-reads every function's BAR placements and maps them: after the VMM itself (not the guest)
   * changed a config space, e.g. restoring a snapshot.
   */
  refreshBars(): void {
    for (const [devfn, fn] of this.functions) this.syncBars(devfn, fn);
  }

  /** The function at bus 0 `slot`.`functionNumber`, if any. */
  functionAt(slot: number, functionNumber = 0): PciFunction | undefined {
    return this.functions.get((slot << 3) | functionNumber);
  }

  /**
   * Places every BAR of every attached function inside `windows` and enables decoding, as
   * firmware does before an OS starts: the guest keeps these addresses. Uses the same sizing
   * protocol a guest would (write all-ones, read back). BARs that do not fit are left at 0.
   */
  assignResources(windows: PciWindows): PciAssignment[] {
    const wanted: (PciAssignment & { register: number; is64: boolean })[] = [];
    for (const [devfn, fn] of this.functions) {
      if (devfn === 0) continue;
      for (let register = 0; register < 6; register++) {
        const offset = PCI_BAR0 + register * 4;
        const original = fn.configRead(offset, 4);
        fn.configWrite(offset, 4, 0xffff_ffff);
        const probe = fn.configRead(offset, 4);
        fn.configWrite(offset, 4, original);
        if (probe === 0) continue;
        const io = (probe & 1) === 1;
        const is64 = !io && (probe & 0x6) === 0x4;
        let size: number;
        if (io) {
          size = (~(probe & 0xffff_fffc) + 1) & 0xffff;
        } else if (is64) {
          const highOriginal = fn.configRead(offset + 4, 4);
          fn.configWrite(offset + 4, 4, 0xffff_ffff);
          const highProbe = fn.configRead(offset + 4, 4);
          fn.configWrite(offset + 4, 4, highOriginal);
          size =
            highProbe === 0xffff_ffff
              ? ((~(probe & 0xffff_fff0) >>> 0) + 1) % 2 ** 32 || 2 ** 32
              : ((~highProbe >>> 0) + 1) * 2 ** 32;
        } else {
          size = ((~(probe & 0xffff_fff0) >>> 0) + 1) >>> 0;
        }
        const base = { slot: devfn >> 3, function: devfn & 7, index: register, register, is64 };
        wanted.push({ ...base, space: io ? 'io' : 'memory', address: 0, size });
        if (is64) register++;
      }
    }
    // Largest first: each BAR is aligned to its size, so this packs without holes.
    wanted.sort((a, b) => b.size - a.size);
    // Program with decoding off (as firmware does) so no half-written 64-bit address ever decodes,
    // then turn on what each function needs.
    const decode = new Map<number, number>();
    for (const bar of wanted) decode.set((bar.slot << 3) | bar.function, 0);
    for (const devfn of decode.keys()) {
      const fn = this.functions.get(devfn)!;
      fn.configWrite(PCI_COMMAND, 2, fn.configRead(PCI_COMMAND, 2) & ~(COMMAND_IO | COMMAND_MEMORY));
    }
    const next = {
      memory: windows.memory.start,
      memory64: windows.memory64?.start ?? 0,
      io: windows.io?.start ?? 0,
    };
    const assigned: PciAssignment[] = [];
    for (const bar of wanted) {
      const pool = bar.space === 'io' ? 'io' : bar.is64 && windows.memory64 ? 'memory64' : 'memory';
      const window = windows[pool];
      if (!window) continue;
      const address = Math.ceil(next[pool] / bar.size) * bar.size;
      const limit = bar.space === 'memory' && !bar.is64 ? Math.min(window.end, 2 ** 32) : window.end;
      if (address + bar.size > limit) {
        this.log(`pci ${bar.slot}.${bar.function}: BAR ${bar.index} (${bar.size} bytes) does not fit`);
        continue;
      }
      next[pool] = address + bar.size;
      const devfn = (bar.slot << 3) | bar.function;
      const fn = this.functions.get(devfn)!;
      const offset = PCI_BAR0 + bar.register * 4;
      if (bar.is64) fn.configWrite(offset + 4, 4, Math.floor(address / 2 ** 32));
      fn.configWrite(offset, 4, address % 2 ** 32);
      decode.set(devfn, decode.get(devfn)! | (bar.space === 'io' ? COMMAND_IO : COMMAND_MEMORY));
      assigned.push({
        slot: bar.slot,
        function: bar.function,
        index: bar.index,
        space: bar.space,
        address,
        size: bar.size,
      });
    }
    for (const [devfn, bits] of decode) {
      const fn = this.functions.get(devfn)!;
      fn.configWrite(PCI_COMMAND, 2, fn.configRead(PCI_COMMAND, 2) | bits);
      this.syncBars(devfn, fn);
    }
    return assigned;
  }

  /** The device at 0xCF8-0xCFB: the 32-bit configuration address (dword), 0xCF9 reset control (byte). */
  readonly addressPort: BusDevice = {
    read: (offset, data) => {
      if (data.length === 4 && offset === 0) fillValue(data, this.address);
      else if (data.length === 1 && offset === RESET_CONTROL_OFFSET) data[0] = this.resetControl;
      else data.fill(0xff);
    },
    write: (offset, data) => {
      if (data.length === 4 && offset === 0) {
        this.address = (readValue(data) & 0x80ff_fffc) >>> 0;
      } else if (data.length === 1 && offset === RESET_CONTROL_OFFSET) {
        this.resetControl = data[0]! & RESET_CONTROL_WRITABLE;
        if (data[0]! & RESET_CPU) this.options.onReset?.();
      }
      // Other byte and word accesses go to ISA on real chipsets: nothing answers.
    },
  };

  /** The device at 0xCFC-0xCFF: the selected register, any size at any byte offset. */
  readonly dataPort: BusDevice = {
    read: (offset, data) => {
      const target = this.mechanism1Target(offset, data.length);
      fillValue(data, target ? this.readFunction(target.devfn, target.register, data.length) : -1);
    },
    write: (offset, data) => {
      const target = this.mechanism1Target(offset, data.length);
      if (target) this.writeFunction(target.devfn, target.register, data.length, readValue(data));
    },
  };

  /** The device for the ECAM window (PCIE_ECAM): bus << 20 | slot << 15 | function << 12 | register. */
  readonly ecam: BusDevice = {
    read: (offset, data) => {
      if (data.length === 8) {
        this.ecam.read(offset, data.subarray(0, 4));
        this.ecam.read(offset + 4, data.subarray(4, 8));
        return;
      }
      const target = this.ecamTarget(offset, data.length);
      fillValue(data, target ? this.readFunction(target.devfn, target.register, data.length) : -1);
    },
    write: (offset, data) => {
      if (data.length === 8) {
        this.ecam.write(offset, data.subarray(0, 4));
        this.ecam.write(offset + 4, data.subarray(4, 8));
        return;
      }
      const target = this.ecamTarget(offset, data.length);
      if (target) this.writeFunction(target.devfn, target.register, data.length, readValue(data));
    },
  };

  private mechanism1Target(offset: number, size: number): { devfn: number; register: number } | undefined {
    const address = this.address;
    if (!(address & CONFIG_ENABLE)) return undefined;
    if ((address >>> 16) & 0xff) return undefined; // only bus 0 exists
    const register = (address & 0xfc) + offset;
    if (register + size > 256) return undefined;
    return { devfn: (address >>> 8) & 0xff, register };
  }

  private ecamTarget(offset: number, size: number): { devfn: number; register: number } | undefined {
    if (offset >= 1 << 20) return undefined; // only bus 0 exists
    const register = offset & 0xfff;
    if (register + size > 0x1000) return undefined;
    return { devfn: (offset >>> 12) & 0xff, register };
  }

  private readFunction(devfn: number, register: number, size: number): number {
    const fn = this.functions.get(devfn);
    if (!fn) return -1;
    // Past a conventional function's 256 bytes: no extended capabilities (a zero header ends the list).
    if (register + size > (fn.configSize ?? 256)) return 0;
    if (register % size === 0) return fn.configRead(register, size);
    // An unaligned access (a word at 0xCFD, say) reaches the function as single bytes.
    let value = 0;
    for (let i = size - 1; i >= 0; i--) value = value * 256 + fn.configRead(register + i, 1);
    return value;
  }

  private writeFunction(devfn: number, register: number, size: number, value: number): void {
    const fn = this.functions.get(devfn);
    if (!fn || register + size > (fn.configSize ?? 256)) return;
    if (register % size === 0) fn.configWrite(register, size, value);
    else for (let i = 0; i < size; i++) fn.configWrite(register + i, 1, Math.floor(value / 256 ** i) & 0xff);
    this.syncBars(devfn, fn);
  }

  /** Maps, moves or unmaps the function's BARs on the buses to match where they decode now. */
  private syncBars(devfn: number, fn: PciFunction): void {
    if (!fn.barPlacements) return;
    const placements = fn.barPlacements();
    const before = this.mapped.get(devfn) ?? [];
    const beforePlacements = this.placements.get(devfn) ?? [];
    this.placements.set(devfn, placements);
    const kept: Mapped[] = [];
    for (const m of before) {
      if (placements.some((p) => samePlacement(p, m.placement))) kept.push(m);
      else m.bus.unregister(m.placement.address, m.device);
    }
    for (const placement of placements) {
      if (before.some((m) => samePlacement(placement, m.placement))) continue;
      const bus = placement.space === 'io' ? this.options.pio : this.options.mmio;
      const device = placement.device;
      if (!bus || !device) continue;
      const name = `pci-${devfn >> 3}.${devfn & 7}-bar${placement.index}`;
      const end = placement.address + placement.size;
      // The guest chooses the address: past what the bus can hold (2^53 for a 64-bit BAR) or on
      // top of another device, the BAR stays unmapped and accesses there read all-ones.
      if (!Number.isSafeInteger(end) || placement.address < 0) {
        this.log(
          `${name} at 0x${placement.address.toString(16)} is beyond guest-physical space: left unmapped`,
        );
        continue;
      }
      const clash = bus.overlapping(placement.address, end);
      if (clash) {
        this.log(`${name} at 0x${placement.address.toString(16)} overlaps ${clash.name}: left unmapped`);
        continue;
      }
      bus.register(placement.address, placement.size, device, name);
      kept.push({ placement, bus, device });
    }
    this.mapped.set(devfn, kept);
    const onBarMove = this.options.onBarMove;
    if (!onBarMove) return;
    const indexes = new Set([...beforePlacements, ...placements].map((p) => p.index));
    for (const index of indexes) {
      const from = beforePlacements.find((p) => p.index === index);
      const to = placements.find((p) => p.index === index);
      if (from && to && samePlacement(from, to)) continue;
      onBarMove({ slot: devfn >> 3, function: devfn & 7, index, from, to });
    }
  }
}

function samePlacement(a: BarPlacement, b: BarPlacement): boolean {
  return a.index === b.index && a.address === b.address && a.size === b.size && a.device === b.device;
}
