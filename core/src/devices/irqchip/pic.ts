// The register file of the two cascaded 8259A PICs (master at ports 0x20-0x21, slave at
// 0xA0-0xA1) and the chipset's edge/level control registers (ELCR, ports 0x4D0-0x4D1).
//
// No interrupt line is connected to either PIC, and none ever raises one: the machine routes
// every device's interrupt through the IOAPIC, and the local APICs' LINT0 (ExtINT) is never
// asserted. The model exists because Linux probes for a legacy PIC (probe_8259A writes the
// master's mask register and reads it back): when the probe succeeds, the 16 ISA IRQs keep their
// identity mapping onto IOAPIC pins 0-15, and Linux then masks the PIC and uses the IOAPIC.
// Without a PIC, Linux switches to the "null" legacy PIC, which changes how it numbers and sets
// up the legacy IRQs. So the chips do only what software can observe: the ICW1-ICW4
// initialization sequence, the mask register (OCW1), EOI and priority commands (OCW2, accepted and
// ignored: no IRQ is ever in service), OCW3's register select and poll command, and the ELCR.
// IRR, ISR and poll reads are always 0 ("no interrupt").
//
// Every port is byte-wide; a 16-bit access is split into its two byte ports, as the ISA bus
// does. Nothing a guest writes can throw.

import type { BusDevice } from '../bus.js';

const ICW1 = 0x10;
const ICW1_NEEDS_ICW4 = 0x01;
const ICW1_SINGLE = 0x02;
const OCW3 = 0x08;
const OCW3_READ_REGISTER = 0x02;
const OCW3_READ_ISR = 0x01;
const OCW3_POLL = 0x04;
const OCW3_SET_SPECIAL_MASK = 0x40;
const OCW3_SPECIAL_MASK = 0x20;
/** The interrupt vector base is ICW2's top five bits; the IRQ number fills the rest. */
const ICW2_VECTOR_BASE = 0xf8;

/**
 * ELCR bits that exist, as on PIIX-style chipsets (and QEMU): IRQs 0, 1, 2 (timer, keyboard,
 * cascade), 8 (RTC) and 13 (FPU) are always edge-triggered.
 */
export const ELCR_MASTER_MASK = 0xf8;
export const ELCR_SLAVE_MASK = 0xde;

/** Which initialization word the chip expects next on its odd port. */
type InitStep = 'none' | 'icw2' | 'icw3' | 'icw4';
const INIT_STEPS: readonly InitStep[] = ['none', 'icw2', 'icw3', 'icw4'];

/** One 8259A's state for snapshots. */
export interface I8259State {
  imr: number;
  /** The last ICW1..ICW4 written (only read back through snapshots). */
  icw1: number;
  icw2: number;
  icw3: number;
  icw4: number;
  initStep: InitStep;
  readIsr: boolean;
  specialMask: boolean;
  pollPending: boolean;
  elcr: number;
}

export interface PicState {
  master: I8259State;
  slave: I8259State;
}

class I8259 {
  imr = 0;
  icw1 = 0;
  icw2 = 0;
  icw3 = 0;
  icw4 = 0;
  initStep: InitStep = 'none';
  readIsr = false;
  specialMask = false;
  pollPending = false;
  elcr = 0;

  constructor(readonly elcrMask: number) {}

  /** The vector IRQ 0 of this chip would use, as ICW2 set it. */
  get vectorBase(): number {
    return this.icw2 & ICW2_VECTOR_BASE;
  }

  /** `port` is 0 (command) or 1 (data). */
  readPort(port: number): number {
    if (this.pollPending) {
      // A poll answers once, on either port: no interrupt (bit 7 clear).
      this.pollPending = false;
      return 0;
    }
    // Even port: IRR or ISR as OCW3 selected; both are empty since no line is connected.
    return port === 0 ? 0 : this.imr;
  }

  writePort(port: number, value: number): void {
    if (port === 0) {
      if (value & ICW1) this.startInitialization(value);
      else if (value & OCW3) this.writeOcw3(value);
      // else OCW2: EOI and priority rotation, with nothing ever in service there is nothing to do.
      return;
    }
    switch (this.initStep) {
      case 'none':
        this.imr = value;
        return;
      case 'icw2':
        this.icw2 = value;
        this.initStep = this.icw1 & ICW1_SINGLE ? this.afterIcw3() : 'icw3';
        return;
      case 'icw3':
        this.icw3 = value;
        this.initStep = this.afterIcw3();
        return;
      case 'icw4':
        this.icw4 = value;
        this.initStep = 'none';
        return;
    }
  }

  reset(): void {
    this.icw1 = 0;
    this.icw2 = 0;
    this.icw3 = 0;
    this.icw4 = 0;
    this.initStep = 'none';
    this.clearOnInitialization();
    this.elcr = 0;
  }

  state(): I8259State {
    return {
      imr: this.imr,
      icw1: this.icw1,
      icw2: this.icw2,
      icw3: this.icw3,
      icw4: this.icw4,
      initStep: this.initStep,
      readIsr: this.readIsr,
      specialMask: this.specialMask,
      pollPending: this.pollPending,
      elcr: this.elcr,
    };
  }

  load(state: I8259State): void {
    this.imr = state.imr;
    this.icw1 = state.icw1;
    this.icw2 = state.icw2;
    this.icw3 = state.icw3;
    this.icw4 = state.icw4;
    this.initStep = state.initStep;
    this.readIsr = state.readIsr;
    this.specialMask = state.specialMask;
    this.pollPending = state.pollPending;
    this.elcr = state.elcr & this.elcrMask;
  }

  /** ICW1 restarts the chip whatever it was doing (8259A datasheet, "Initialization"). */
  private startInitialization(value: number): void {
    this.icw1 = value;
    // Without ICW4 its functions are cleared (8086 mode off, no auto-EOI).
    if (!(value & ICW1_NEEDS_ICW4)) this.icw4 = 0;
    this.clearOnInitialization();
    this.initStep = 'icw2';
  }

  /** What ICW1 clears: the mask, the special mask mode; reads select IRR again. */
  private clearOnInitialization(): void {
    this.imr = 0;
    this.readIsr = false;
    this.specialMask = false;
    this.pollPending = false;
  }

  private afterIcw3(): InitStep {
    return this.icw1 & ICW1_NEEDS_ICW4 ? 'icw4' : 'none';
  }

  private writeOcw3(value: number): void {
    if (value & OCW3_READ_REGISTER) this.readIsr = (value & OCW3_READ_ISR) !== 0;
    if (value & OCW3_SET_SPECIAL_MASK) this.specialMask = (value & OCW3_SPECIAL_MASK) !== 0;
    if (value & OCW3_POLL) this.pollPending = true;
  }
}

/** Applies `access` to each byte port a (possibly wider) access covers, within `ports` ports. */
function byteWise(
  offset: number,
  data: Uint8Array,
  ports: number,
  access: (port: number, i: number) => void,
) {
  for (let i = 0; i < data.length; i++) {
    const port = offset + i;
    if (port >= 0 && port < ports) access(port, i);
  }
}

function checkChipState(state: I8259State, elcrMask: number, name: string): string | undefined {
  if (typeof state !== 'object' || state === null) return `${name} PIC state is not an object`;
  const bytes = [state.imr, state.icw1, state.icw2, state.icw3, state.icw4, state.elcr];
  if (!bytes.every((b) => Number.isInteger(b) && b >= 0 && b <= 0xff))
    return `${name} PIC register out of range`;
  if (state.elcr & ~elcrMask) return `${name} ELCR sets bits that do not exist`;
  if (!INIT_STEPS.includes(state.initStep)) return `${name} PIC has a bad initialization step`;
  if (![state.readIsr, state.specialMask, state.pollPending].every((b) => typeof b === 'boolean'))
    return `${name} PIC flags must be booleans`;
  return undefined;
}

/** The master and slave 8259A and the ELCR: three BusDevices for the machine to register. */
export class Pic {
  private readonly masterChip = new I8259(ELCR_MASTER_MASK);
  private readonly slaveChip = new I8259(ELCR_SLAVE_MASK);

  /** Ports 0x20 (command) and 0x21 (data): register with length 2. */
  readonly master: BusDevice = this.chipDevice(this.masterChip);
  /** Ports 0xA0 (command) and 0xA1 (data): register with length 2. */
  readonly slave: BusDevice = this.chipDevice(this.slaveChip);
  /** Ports 0x4D0 (IRQs 0-7) and 0x4D1 (IRQs 8-15): register with length 2. */
  readonly elcr: BusDevice = {
    read: (offset, data) => {
      data.fill(0);
      byteWise(offset, data, 2, (port, i) => {
        data[i] = this.chip(port).elcr;
      });
    },
    write: (offset, data) => {
      byteWise(offset, data, 2, (port, i) => {
        const chip = this.chip(port);
        chip.elcr = data[i]! & chip.elcrMask;
      });
    },
  };

  /** The vectors ICW2 gave each chip's IRQ 0 (for logs and tests). */
  get vectorBases(): { master: number; slave: number } {
    return { master: this.masterChip.vectorBase, slave: this.slaveChip.vectorBase };
  }

  state(): PicState {
    return { master: this.masterChip.state(), slave: this.slaveChip.state() };
  }

  /** Loads a snapshot; returns why it cannot (the PICs are then unchanged), or undefined. */
  restore(state: PicState): string | undefined {
    if (typeof state !== 'object' || state === null) return 'PIC state is not an object';
    const problem =
      checkChipState(state.master, ELCR_MASTER_MASK, 'master') ??
      checkChipState(state.slave, ELCR_SLAVE_MASK, 'slave');
    if (problem) return problem;
    this.masterChip.load(state.master);
    this.slaveChip.load(state.slave);
    return undefined;
  }

  reset(): void {
    this.masterChip.reset();
    this.slaveChip.reset();
  }

  private chip(port: number): I8259 {
    return port === 0 ? this.masterChip : this.slaveChip;
  }

  private chipDevice(chip: I8259): BusDevice {
    return {
      read: (offset, data) => {
        data.fill(0);
        byteWise(offset, data, 2, (port, i) => {
          data[i] = chip.readPort(port);
        });
      },
      write: (offset, data) => {
        byteWise(offset, data, 2, (port, i) => chip.writePort(port, data[i]!));
      },
    };
  }
}
