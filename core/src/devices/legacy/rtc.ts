// The MC146818 CMOS real-time clock and NVRAM on ports 0x70 (index, bit 7 masks NMIs) and 0x71
// (data), reading the host's clock. The guest's clock is the host's plus an offset: setting the
// time (SET bit in register B, write the fields, clear SET) moves the offset, never the host.
//
// Update-in-progress: register A's UIP reads 1 during the last UIP_WINDOW_MS of every second, so a
// reader that waits for UIP to clear has at least that long before the seconds change (Linux's
// mc146818_get_time also re-reads the seconds). Interrupts on the IRQ line: update-ended and alarm,
// driven by a timer at each second while enabled. Left out: periodic interrupts (PF is never set;
// Linux uses the LAPIC and HPET/TSC for ticks), daylight-saving switching, the square-wave output.

import { ramRegions } from '../../x86/layout.js';
import type { BusDevice } from '../bus.js';
import type { IrqLine } from '../irq.js';

const SECONDS = 0x00;
const SECONDS_ALARM = 0x01;
const MINUTES = 0x02;
const MINUTES_ALARM = 0x03;
const HOURS = 0x04;
const HOURS_ALARM = 0x05;
const DAY_OF_WEEK = 0x06;
const DAY_OF_MONTH = 0x07;
const MONTH = 0x08;
const YEAR = 0x09;
const REG_A = 0x0a;
const REG_B = 0x0b;
const REG_C = 0x0c;
const REG_D = 0x0d;
const CENTURY = 0x32;

const A_UIP = 0x80;
const B_SET = 0x80;
const B_PIE = 0x40;
const B_AIE = 0x20;
const B_UIE = 0x10;
const B_BINARY = 0x04;
const B_24_HOUR = 0x02;
const C_IRQF = 0x80;
const C_AF = 0x20;
const C_UF = 0x10;
const D_VRT = 0x80;
const HOUR_PM = 0x80;
/** Alarm register values 0xC0-0xFF match any value. */
const ALARM_DONT_CARE = 0xc0;

/** How long before each second's update UIP reads as set. */
export const UIP_WINDOW_MS = 2;

const toBcd = (n: number) => ((Math.floor(n / 10) << 4) | (n % 10)) & 0xff;
const fromBcd = (n: number) => (n >> 4) * 10 + (n & 0x0f);

/** A broken-down calendar time, as the RTC's registers hold it (24-hour, binary). */
export interface Fields {
  seconds: number;
  minutes: number;
  hours: number;
  day: number;
  month: number;
  year: number;
}

function fieldsOf(ms: number): Fields {
  const d = new Date(ms);
  return {
    seconds: d.getUTCSeconds(),
    minutes: d.getUTCMinutes(),
    hours: d.getUTCHours(),
    day: d.getUTCDate(),
    month: d.getUTCMonth() + 1,
    year: d.getUTCFullYear(),
  };
}

function msOf(f: Fields): number {
  return Date.UTC(f.year, f.month - 1, f.day, f.hours, f.minutes, f.seconds);
}

/** RTC state for snapshots: the guest clock's offset from the host's, not a frozen time. */
export interface CmosRtcState {
  index: number;
  nmiMasked: boolean;
  nvram: number[];
  offsetMs: number;
  latched: Fields | null;
}

export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface CmosRtcOptions {
  /** Wall-clock milliseconds since the epoch (fractions allowed); injected by tests. */
  now?: () => number;
  /** The RTC keeps local time instead of UTC (what Windows guests expect). */
  localTime?: boolean;
  /** Guest RAM size: fills the CMOS memory-size bytes firmware and old loaders read. */
  memoryBytes?: number;
  /** IRQ 8, for update-ended and alarm interrupts. Without it they are never raised. */
  irq?: IrqLine;
  timers?: Timers;
  log?(message: string): void;
}

export class CmosRtc implements BusDevice {
  private index = 0;
  private nmiMasked = false;
  private readonly nvram = new Uint8Array(128);
  /** Milliseconds the guest's clock runs ahead of the host's. */
  private offsetMs = 0;
  /** While SET is on: the fields the guest reads and writes, applied when SET goes off. */
  private latched: Fields | undefined;
  private irqLevel = false;
  private tickTimer: unknown;
  /** The second (of guest time) when register C was last read: UF is set if one has passed since. */
  private lastFlagsReadSecond = -1;
  private readonly now: () => number;
  private readonly timers: Timers;
  private readonly zoneOffsetMs: number;

  constructor(private readonly options: CmosRtcOptions = {}) {
    this.now = options.now ?? Date.now;
    this.timers = options.timers ?? {
      setTimeout: (callback, ms) => setTimeout(callback, ms).unref(),
      clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
    };
    this.zoneOffsetMs = options.localTime ? -new Date(this.now()).getTimezoneOffset() * 60_000 : 0;
    this.nvram[REG_A] = 0x26; // 32.768 kHz time base, 1024 Hz rate
    this.nvram[REG_B] = B_24_HOUR;
    this.nvram[REG_D] = D_VRT;
    if (options.memoryBytes !== undefined) this.fillMemorySize(options.memoryBytes);
  }

  /** Port 0x70's bit 7: the guest masked NMIs. */
  get nmiDisabled(): boolean {
    return this.nmiMasked;
  }

  /** Offset 0 is the index port (0x70), offset 1 the data port (0x71). */
  read(offset: number, data: Uint8Array): void {
    data.fill(0);
    data[0] = offset === 0 ? 0xff : this.readRegister(this.index);
  }

  write(offset: number, data: Uint8Array): void {
    if (offset === 0) {
      this.index = data[0]! & 0x7f;
      this.nmiMasked = (data[0]! & 0x80) !== 0;
    } else {
      this.writeRegister(this.index, data[0]!);
    }
  }

  state(): CmosRtcState {
    return {
      index: this.index,
      nmiMasked: this.nmiMasked,
      nvram: Array.from(this.nvram),
      offsetMs: this.offsetMs,
      latched: this.latched ? { ...this.latched } : null,
    };
  }

  /** Loads a snapshot; returns why it cannot (nothing changed then), or undefined. */
  restore(state: CmosRtcState): string | undefined {
    if (!Array.isArray(state.nvram) || state.nvram.length !== 128) return 'CMOS state must have 128 bytes';
    if (!state.nvram.every((b) => Number.isInteger(b) && b >= 0 && b <= 0xff))
      return 'CMOS byte out of range';
    if (!Number.isFinite(state.offsetMs)) return 'bad RTC offset';
    if (state.latched !== null && Number.isNaN(msOf(state.latched))) return 'bad latched RTC time';
    this.index = state.index & 0x7f;
    this.nmiMasked = state.nmiMasked === true;
    this.nvram.set(state.nvram);
    this.offsetMs = state.offsetMs;
    this.latched = state.latched === null ? undefined : { ...state.latched };
    this.irqLevel = !(this.nvram[REG_C]! & C_IRQF);
    this.updateIrq();
    this.close();
    this.scheduleTick();
    return undefined;
  }

  /** Stops the interrupt timer (the VM is ending). */
  close(): void {
    if (this.tickTimer !== undefined) this.timers.clearTimeout(this.tickTimer);
    this.tickTimer = undefined;
  }

  private get regB(): number {
    return this.nvram[REG_B]!;
  }

  private guestMs(): number {
    return this.now() + this.zoneOffsetMs + this.offsetMs;
  }

  private currentFields(): Fields {
    return this.latched ?? fieldsOf(this.guestMs());
  }

  private encode(value: number): number {
    return this.regB & B_BINARY ? value : toBcd(value);
  }

  private decode(value: number): number {
    return this.regB & B_BINARY ? value : fromBcd(value);
  }

  private encodeHours(hours: number): number {
    if (this.regB & B_24_HOUR) return this.encode(hours);
    const twelve = hours % 12 === 0 ? 12 : hours % 12;
    return this.encode(twelve) | (hours >= 12 ? HOUR_PM : 0);
  }

  private decodeHours(value: number): number {
    if (this.regB & B_24_HOUR) return this.decode(value);
    return (this.decode(value & 0x7f) % 12) + (value & HOUR_PM ? 12 : 0);
  }

  private readRegister(register: number): number {
    switch (register) {
      case SECONDS:
        return this.encode(this.currentFields().seconds);
      case MINUTES:
        return this.encode(this.currentFields().minutes);
      case HOURS:
        return this.encodeHours(this.currentFields().hours);
      case DAY_OF_WEEK: {
        const f = this.currentFields();
        return this.encode(new Date(msOf(f)).getUTCDay() + 1);
      }
      case DAY_OF_MONTH:
        return this.encode(this.currentFields().day);
      case MONTH:
        return this.encode(this.currentFields().month);
      case YEAR:
        return this.encode(this.currentFields().year % 100);
      case CENTURY:
        return this.encode(Math.floor(this.currentFields().year / 100));
      case REG_A:
        return (this.nvram[REG_A]! & ~A_UIP) | (this.updateInProgress() ? A_UIP : 0);
      case REG_C: {
        const flags = this.nvram[REG_C]! | this.pendingUpdateFlag();
        this.nvram[REG_C] = 0;
        this.lastFlagsReadSecond = Math.floor(this.guestMs() / 1000);
        this.updateIrq();
        return flags;
      }
      default:
        return this.nvram[register]!;
    }
  }

  private pendingUpdateFlag(): number {
    if (this.regB & B_SET || this.lastFlagsReadSecond < 0) return 0;
    return Math.floor(this.guestMs() / 1000) > this.lastFlagsReadSecond ? C_UF : 0;
  }

  private updateInProgress(): boolean {
    if (this.regB & B_SET) return false; // updates are inhibited while the guest sets the time
    const intoSecond = ((this.guestMs() % 1000) + 1000) % 1000;
    return intoSecond >= 1000 - UIP_WINDOW_MS;
  }

  private writeRegister(register: number, value: number): void {
    switch (register) {
      case SECONDS:
      case MINUTES:
      case HOURS:
      case DAY_OF_MONTH:
      case MONTH:
      case YEAR:
      case CENTURY:
        this.writeTimeField(register, value);
        return;
      case DAY_OF_WEEK:
        return; // derived from the date
      case REG_A:
        this.nvram[REG_A] = value & ~A_UIP;
        return;
      case REG_B:
        this.writeRegisterB(value);
        return;
      case REG_C:
      case REG_D:
        return; // read-only
      default:
        this.nvram[register] = value;
    }
  }

  private writeTimeField(register: number, value: number): void {
    const f = { ...this.currentFields() };
    const decoded = register === HOURS ? this.decodeHours(value) : this.decode(value);
    if (register === SECONDS) f.seconds = decoded;
    else if (register === MINUTES) f.minutes = decoded;
    else if (register === HOURS) f.hours = decoded;
    else if (register === DAY_OF_MONTH) f.day = decoded;
    else if (register === MONTH) f.month = decoded;
    else if (register === YEAR) f.year = Math.floor(f.year / 100) * 100 + decoded;
    else f.year = decoded * 100 + (f.year % 100);
    if (this.latched) {
      this.latched = f; // applied as a whole when SET clears: a date is never half-updated
      return;
    }
    this.applyFields(f);
  }

  private applyFields(f: Fields): void {
    const ms = msOf(f);
    if (Number.isNaN(ms)) {
      this.options.log?.(`rtc: guest set an invalid time ${JSON.stringify(f)}; ignored`);
      return;
    }
    // Keep the sub-second phase: the guest's seconds start where the host's do.
    const phase = ((this.guestMs() % 1000) + 1000) % 1000;
    this.offsetMs = ms + phase - this.now() - this.zoneOffsetMs;
  }

  private writeRegisterB(value: number): void {
    const wasSet = (this.regB & B_SET) !== 0;
    const set = (value & B_SET) !== 0;
    if (set && !wasSet) this.latched = fieldsOf(this.guestMs());
    if (wasSet && !set && this.latched) {
      const f = this.latched;
      this.latched = undefined;
      this.applyFields(f);
    }
    // SET stops updates, so it also clears UIE (as the MC146818 does).
    this.nvram[REG_B] = set ? value & ~B_UIE : value;
    this.updateIrq();
    this.scheduleTick();
  }

  /** Update-ended and alarm need a tick each second while enabled; nothing runs otherwise. */
  private scheduleTick(): void {
    const wanted =
      this.options.irq !== undefined && (this.regB & (B_UIE | B_AIE)) !== 0 && !(this.regB & B_SET);
    if (!wanted) {
      this.close();
      return;
    }
    if (this.tickTimer !== undefined) return;
    const untilNextSecond = 1000 - (((this.guestMs() % 1000) + 1000) % 1000);
    this.tickTimer = this.timers.setTimeout(() => {
      this.tickTimer = undefined;
      this.tick();
      this.scheduleTick();
    }, untilNextSecond);
  }

  private tick(): void {
    let flags = C_UF;
    const f = fieldsOf(this.guestMs());
    const matches = (alarm: number, value: number) =>
      (alarm & ALARM_DONT_CARE) === ALARM_DONT_CARE || this.decode(alarm) === value;
    const alarmHours = this.nvram[HOURS_ALARM]!;
    const hoursMatch =
      (alarmHours & ALARM_DONT_CARE) === ALARM_DONT_CARE || this.decodeHours(alarmHours) === f.hours;
    if (
      matches(this.nvram[SECONDS_ALARM]!, f.seconds) &&
      matches(this.nvram[MINUTES_ALARM]!, f.minutes) &&
      hoursMatch
    ) {
      flags |= C_AF;
    }
    this.nvram[REG_C] = this.nvram[REG_C]! | flags;
    this.updateIrq();
  }

  private updateIrq(): void {
    const enabled = this.nvram[REG_C]! & (this.regB & (B_UIE | B_AIE | B_PIE));
    if (enabled) this.nvram[REG_C] = this.nvram[REG_C]! | C_IRQF;
    const level = (this.nvram[REG_C]! & C_IRQF) !== 0;
    if (level === this.irqLevel || !this.options.irq) return;
    this.irqLevel = level;
    this.options.irq.set(level);
  }

  /** The memory-size bytes (in the PC/AT and later SeaBIOS/QEMU layout) and their checksum. */
  private fillMemorySize(bytes: number): void {
    const regions = ramRegions(bytes);
    const below4g = regions[0]!.size;
    const above4g = regions[1]?.size ?? 0;
    const put16 = (at: number, v: number) => {
      this.nvram[at] = v & 0xff;
      this.nvram[at + 1] = (v >> 8) & 0xff;
    };
    put16(0x15, 640); // base memory, KiB
    const extendedKiB = Math.min(0xffff, Math.max(0, Math.floor((below4g - 0x10_0000) / 1024)));
    put16(0x17, extendedKiB);
    put16(0x30, extendedKiB);
    put16(0x34, Math.min(0xffff, Math.max(0, Math.floor((below4g - 0x100_0000) / 0x1_0000))));
    const above = Math.min(0xff_ffff, Math.floor(above4g / 0x1_0000));
    this.nvram[0x5b] = above & 0xff;
    this.nvram[0x5c] = (above >> 8) & 0xff;
    this.nvram[0x5d] = (above >> 16) & 0xff;
    let sum = 0;
    for (let i = 0x10; i <= 0x2d; i++) sum += this.nvram[i]!;
    this.nvram[0x2e] = (sum >> 8) & 0xff;
    this.nvram[0x2f] = sum & 0xff;
  }
}
