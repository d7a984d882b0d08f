// The ACPI fixed-hardware registers the FADT points at: the PM1a event block (status and enable),
// the PM1a control register (sleep states: S5 is power off) and the PM timer. The SCI is a
// level-triggered line held high while an enabled status bit is set.
//
// The machine is always in ACPI mode: SCI_EN reads as set and the FADT has no SMI_CMD port, so the
// OS never tries the legacy-to-ACPI handshake. Left out: the timer-carry event (TMR_STS/TMR_EN:
// Linux does not use it), wake status and sleep states other than S5 (the DSDT declares only _S5_).

import {
  PM1_CNT_SCI_EN,
  PM1_CNT_SLP_EN,
  PM1_CNT_SLP_TYP_MASK,
  PM1_CNT_SLP_TYP_SHIFT,
  PM1_EVT_PWRBTN,
  S5_SLP_TYP,
} from '../../x86/acpi/tables.js';
import { type BusDevice, fillValue } from '../bus.js';
import type { IrqLine } from '../irq.js';

/** The PM timer's rate, fixed by the ACPI specification. */
export const PM_TIMER_HZ = 3_579_545;

/** PM1_STS bits the OS clears by writing 1 (power button, and the rest of the fixed events). */
const PM1_STS_WRITE_1_TO_CLEAR = 0x8f31;
/** PM1_EN bits that exist: timer, global lock, power button, sleep button, RTC. */
const PM1_EN_IMPLEMENTED = 0x0721;
/** PM1_CNT bits that hold a value: BM_RLD and SLP_TYP. (GBL_RLS and SLP_EN are write-only.) */
const PM1_CNT_STORED = 0x0002 | PM1_CNT_SLP_TYP_MASK;

export interface AcpiPmOptions {
  sci: IrqLine;
  onPowerOff(): void;
  /** SLP_TYP of S5, as the DSDT's `_S5_` package says (default: the tables' S5_SLP_TYP). */
  s5SleepType?: number;
  /**
   * Width of the PM timer counter. 24 (default) matches a FADT without TMR_VAL_EXT; 32 needs
   * TMR_VAL_EXT set in the FADT flags.
   */
  timerBits?: 24 | 32;
  /** Monotonic nanoseconds (injected by tests). */
  clockNs?: () => bigint;
  log?(message: string): void;
}

/** ACPI PM state for snapshots; the timer continues from `timerTicks` after a restore. */
export interface AcpiPmState {
  status: number;
  enable: number;
  control: number;
  timerTicks: number;
}

export class AcpiPm {
  private status = 0;
  private enable = 0;
  private control = PM1_CNT_SCI_EN;
  private sciLevel = false;
  private readonly clockNs: () => bigint;
  private startNs: bigint;
  private readonly timerMask: bigint;
  private readonly s5SleepType: number;

  constructor(private readonly options: AcpiPmOptions) {
    this.clockNs = options.clockNs ?? process.hrtime.bigint;
    this.startNs = this.clockNs();
    this.timerMask = (1n << BigInt(options.timerBits ?? 24)) - 1n;
    this.s5SleepType = options.s5SleepType ?? S5_SLP_TYP;
  }

  /** Asks the guest to shut down, as a press of the power button does. */
  pressPowerButton(): void {
    this.status |= PM1_EVT_PWRBTN;
    this.updateSci();
  }

  state(): AcpiPmState {
    return {
      status: this.status,
      enable: this.enable,
      control: this.control,
      timerTicks: Number(this.ticks()),
    };
  }

  /** Loads a snapshot; returns why it cannot (nothing changed then), or undefined. */
  restore(state: AcpiPmState): string | undefined {
    const words = [state.status, state.enable, state.control];
    if (!words.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffff))
      return 'ACPI PM register out of range';
    if (!Number.isSafeInteger(state.timerTicks) || state.timerTicks < 0) return 'bad PM timer value';
    this.status = state.status & PM1_STS_WRITE_1_TO_CLEAR;
    this.enable = state.enable & PM1_EN_IMPLEMENTED;
    this.control = (state.control & PM1_CNT_STORED) | PM1_CNT_SCI_EN;
    // Start the counter where it stood, so the guest's clocksource sees no jump.
    this.startNs = this.clockNs() - (BigInt(state.timerTicks) * 1_000_000_000n) / BigInt(PM_TIMER_HZ);
    this.sciLevel = (this.status & this.enable) !== 0;
    this.options.sci.set(this.sciLevel);
    return undefined;
  }

  /** The SCI's level now (for snapshots and tests). */
  get sciAsserted(): boolean {
    return this.sciLevel;
  }

  /** PM1a_EVT_BLK: status word at offset 0 (write 1 to clear), enable word at offset 2. */
  readonly eventBlock: BusDevice = {
    read: (offset, data) => {
      const registers = this.status | (this.enable << 16);
      for (let i = 0; i < data.length; i++) {
        const position = offset + i;
        data[i] = position < 4 ? (registers >>> (8 * position)) & 0xff : 0;
      }
    },
    write: (offset, data) => {
      for (let i = 0; i < data.length; i++) {
        const position = offset + i;
        const byte = data[i]!;
        if (position < 2) {
          const shift = 8 * position;
          this.status &= ~((byte << shift) & PM1_STS_WRITE_1_TO_CLEAR);
        } else if (position < 4) {
          const shift = 8 * (position - 2);
          const next = (this.enable & ~(0xff << shift)) | (byte << shift);
          this.enable = next & PM1_EN_IMPLEMENTED;
        }
      }
      this.updateSci();
    },
  };

  /**
   * PM1a_CNT_BLK. ACPICA writes SLP_TYP first and then SLP_TYP|SLP_EN, read-modify-write; byte
   * writes reach the same 16-bit register. SLP_EN with the S5 type powers off; other sleep types
   * are not supported (no `_Sx_` for them in the DSDT), so the guest keeps running.
   */
  readonly controlBlock: BusDevice = {
    read: (offset, data) => {
      for (let i = 0; i < data.length; i++) {
        const position = offset + i;
        data[i] = position < 2 ? (this.control >> (8 * position)) & 0xff : 0;
      }
    },
    write: (offset, data) => {
      let written = this.control;
      for (let i = 0; i < data.length; i++) {
        const position = offset + i;
        if (position >= 2) continue;
        written = (written & ~(0xff << (8 * position))) | (data[i]! << (8 * position));
      }
      this.control = (written & PM1_CNT_STORED) | PM1_CNT_SCI_EN;
      if (!(written & PM1_CNT_SLP_EN)) return;
      const sleepType = (written & PM1_CNT_SLP_TYP_MASK) >> PM1_CNT_SLP_TYP_SHIFT;
      if (sleepType === this.s5SleepType) this.options.onPowerOff();
      else
        this.options.log?.(`acpi: sleep type ${sleepType} requested; only S5 (${this.s5SleepType}) exists`);
    },
  };

  /** PM_TMR_BLK: a free-running counter at 3.579545 MHz (read-only). */
  readonly timer: BusDevice = {
    read: (offset, data) => fillValue(data, Number((this.ticks() & this.timerMask) >> BigInt(8 * offset))),
    write: () => {},
  };

  /** Timer ticks since creation (not wrapped). */
  private ticks(): bigint {
    return ((this.clockNs() - this.startNs) * BigInt(PM_TIMER_HZ)) / 1_000_000_000n;
  }

  private updateSci(): void {
    const level = (this.status & this.enable) !== 0;
    if (level === this.sciLevel) return;
    this.sciLevel = level;
    this.options.sci.set(level);
  }
}
