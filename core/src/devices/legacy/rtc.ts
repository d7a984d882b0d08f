// The CMOS real-time clock and NVRAM on ports 0x70 (index) and 0x71 (data), reading the host's
// clock. Guest writes to the time registers are accepted as an offset from the host time.
// Not modelled: alarm, periodic and update-ended interrupts (Linux does not need them to boot).

import type { BusDevice } from '../bus.js';

const SECONDS = 0x00;
const MINUTES = 0x02;
const HOURS = 0x04;
const DAY_OF_WEEK = 0x06;
const DAY_OF_MONTH = 0x07;
const MONTH = 0x08;
const YEAR = 0x09;
const REG_A = 0x0a;
const REG_B = 0x0b;
const REG_C = 0x0c;
const REG_D = 0x0d;
const CENTURY = 0x32;

const B_24_HOUR = 0x02;
const B_BINARY = 0x04;
const D_VALID = 0x80;
const HOUR_PM = 0x80;

const toBcd = (n: number) => ((Math.floor(n / 10) << 4) | (n % 10)) & 0xff;
const fromBcd = (n: number) => (n >> 4) * 10 + (n & 0x0f);

export class CmosRtc implements BusDevice {
  private index = 0;
  private readonly nvram = new Uint8Array(128);
  /** Milliseconds the guest's clock runs ahead of the host's. */
  private offsetMs = 0;

  constructor(private readonly now: () => number = Date.now) {
    this.nvram[REG_A] = 0x26; // 32.768 kHz base, 1024 Hz rate
    this.nvram[REG_B] = B_24_HOUR;
    this.nvram[REG_D] = D_VALID;
  }

  /** Offset 0 is the index port (0x70), offset 1 the data port (0x71). */
  read(offset: number, data: Uint8Array): void {
    data.fill(0);
    data[0] = offset === 0 ? 0xff : this.readRegister(this.index);
  }

  write(offset: number, data: Uint8Array): void {
    if (offset === 0) {
      this.index = data[0]! & 0x7f; // bit 7 masks NMIs
    } else {
      this.writeRegister(this.index, data[0]!);
    }
  }

  private guestDate(): Date {
    return new Date(this.now() + this.offsetMs);
  }

  private encode(value: number): number {
    return this.nvram[REG_B]! & B_BINARY ? value : toBcd(value);
  }

  private decode(value: number): number {
    return this.nvram[REG_B]! & B_BINARY ? value : fromBcd(value);
  }

  private readRegister(register: number): number {
    const date = this.guestDate();
    switch (register) {
      case SECONDS:
        return this.encode(date.getUTCSeconds());
      case MINUTES:
        return this.encode(date.getUTCMinutes());
      case HOURS: {
        const hours = date.getUTCHours();
        if (this.nvram[REG_B]! & B_24_HOUR) return this.encode(hours);
        const twelve = hours % 12 === 0 ? 12 : hours % 12;
        return this.encode(twelve) | (hours >= 12 ? HOUR_PM : 0);
      }
      case DAY_OF_WEEK:
        return this.encode(date.getUTCDay() + 1);
      case DAY_OF_MONTH:
        return this.encode(date.getUTCDate());
      case MONTH:
        return this.encode(date.getUTCMonth() + 1);
      case YEAR:
        return this.encode(date.getUTCFullYear() % 100);
      case CENTURY:
        return this.encode(Math.floor(date.getUTCFullYear() / 100));
      case REG_A:
        // Update-in-progress is never set: every read sees a settled time.
        return this.nvram[REG_A]! & 0x7f;
      case REG_C: {
        const flags = this.nvram[REG_C]!;
        this.nvram[REG_C] = 0;
        return flags;
      }
      default:
        return this.nvram[register]!;
    }
  }

  private writeRegister(register: number, value: number): void {
    const fields: Record<number, (d: Date, v: number) => void> = {
      [SECONDS]: (d, v) => d.setUTCSeconds(v),
      [MINUTES]: (d, v) => d.setUTCMinutes(v),
      [HOURS]: (d, v) => d.setUTCHours(v),
      [DAY_OF_MONTH]: (d, v) => d.setUTCDate(v),
      [MONTH]: (d, v) => d.setUTCMonth(v - 1),
      [YEAR]: (d, v) => d.setUTCFullYear(Math.floor(d.getUTCFullYear() / 100) * 100 + v),
    };
    const setField = fields[register];
    if (setField) {
      let decoded = this.decode(value & (register === HOURS ? 0x7f : 0xff));
      if (register === HOURS && !(this.nvram[REG_B]! & B_24_HOUR)) {
        decoded = (decoded % 12) + (value & HOUR_PM ? 12 : 0);
      }
      const date = this.guestDate();
      setField(date, decoded);
      if (!Number.isNaN(date.getTime())) this.offsetMs = date.getTime() - this.now();
      return;
    }
    if (register === REG_C || register === REG_D) return; // read-only
    this.nvram[register] = value;
  }
}
