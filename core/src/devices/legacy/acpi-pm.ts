// The ACPI fixed-hardware registers the FADT points at: the PM1a event block (status and enable),
// the PM1a control register (sleep states: S5 is power off) and the PM timer. The SCI is a
// level-triggered line held high while an enabled status bit is set.

import {
  PM1_CNT_SCI_EN,
  PM1_CNT_SLP_EN,
  PM1_CNT_SLP_TYP_MASK,
  PM1_CNT_SLP_TYP_SHIFT,
  PM1_EVT_PWRBTN,
  S5_SLP_TYP,
} from '../../x86/acpi/tables.js';
import { type BusDevice, fillValue, readValue } from '../bus.js';
import type { IrqLine } from '../irq.js';

/** The PM timer's rate, fixed by the ACPI specification. */
export const PM_TIMER_HZ = 3_579_545;

export interface AcpiPmOptions {
  sci: IrqLine;
  onPowerOff(): void;
  /** Monotonic nanoseconds (injected by tests). */
  clockNs?: () => bigint;
}

export class AcpiPm {
  private status = 0;
  private enable = 0;
  private sciLevel = false;
  private readonly clockNs: () => bigint;
  private readonly startNs: bigint;

  constructor(private readonly options: AcpiPmOptions) {
    this.clockNs = options.clockNs ?? process.hrtime.bigint;
    this.startNs = this.clockNs();
  }

  /** Asks the guest to shut down, as a press of the power button does. */
  pressPowerButton(): void {
    this.status |= PM1_EVT_PWRBTN;
    this.updateSci();
  }

  /** PM1a_EVT_BLK: status word at offset 0 (write 1 to clear), enable word at offset 2. */
  readonly eventBlock: BusDevice = {
    read: (offset, data) =>
      fillValue(data, readValue32(this.status | (this.enable << 16), offset, data.length)),
    write: (offset, data) => {
      data.forEach((byte, i) => {
        const position = offset + i;
        if (position < 2) {
          this.status &= ~(byte << (8 * position));
        } else if (position < 4) {
          const shift = 8 * (position - 2);
          this.enable = (this.enable & ~(0xff << shift)) | (byte << shift);
        }
      });
      this.updateSci();
    },
  };

  /** PM1a_CNT_BLK: SCI_EN always set (no legacy mode); SLP_EN with SLP_TYP 5 powers off. */
  readonly controlBlock: BusDevice = {
    read: (_offset, data) => fillValue(data, PM1_CNT_SCI_EN),
    write: (offset, data) => {
      if (offset !== 0 || data.length < 2) return;
      const value = readValue(data);
      const sleepType = (value & PM1_CNT_SLP_TYP_MASK) >> PM1_CNT_SLP_TYP_SHIFT;
      if (value & PM1_CNT_SLP_EN && sleepType === S5_SLP_TYP) this.options.onPowerOff();
    },
  };

  /** PM_TMR_BLK: a free-running 24-bit counter at 3.579545 MHz. */
  readonly timer: BusDevice = {
    read: (_offset, data) => {
      const ticks = ((this.clockNs() - this.startNs) * BigInt(PM_TIMER_HZ)) / 1_000_000_000n;
      fillValue(data, Number(ticks & 0xff_ffffn));
    },
    write: () => {},
  };

  private updateSci(): void {
    const level = (this.status & this.enable) !== 0;
    if (level === this.sciLevel) return;
    this.sciLevel = level;
    this.options.sci.set(level);
  }
}

/** The `length` bytes at `offset` of a 32-bit register value. */
function readValue32(value: number, offset: number, length: number): number {
  return Math.floor(value / 2 ** (offset * 8)) % 2 ** (length * 8);
}
