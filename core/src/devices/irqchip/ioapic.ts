// A 24-pin I/O APIC (82093AA register interface, version 0x11 as KVM's own) for KVM's split
// irqchip: the local APICs live in the kernel, this model turns pin activity into interrupt
// messages the machine hands to KVM (KVM_SIGNAL_MSI), and the kernel tells it about EOIs of
// level-triggered vectors (KVM_EXIT_IOAPIC_EOI → endOfInterrupt).
//
// MMIO at 0xFEC00000: IOREGSEL at offset 0x00 selects a register, IOWIN at 0x10 reads or writes
// it. IOWIN takes only 32-bit accesses (the datasheet's rule; Linux, Windows and the BSDs obey
// it); other sizes and offsets read 0 and ignore writes, and nothing a guest writes can throw.
//
// Behaviour follows QEMU's hw/intc/ioapic.c, which guests have been tested against for years:
// - An edge-triggered pin delivers once per rising edge while unmasked. An edge that arrives while
//   the pin is masked is lost (the 82093AA datasheet says masked edges are ignored); unmasking a
//   pin whose line is already high delivers nothing.
// - A level-triggered pin delivers while its line is high, it is unmasked and remote IRR is clear,
//   and sets remote IRR; the EOI of its vector clears remote IRR and delivers again if the line is
//   still high. Lowering the line does not clear remote IRR.
// - Switching a pin to edge clears its remote IRR: Linux simulates an EOI that way on IOAPICs
//   without an EOI register (version 0x11; see __eoi_ioapic_pin).
// - Polarity is stored but not applied: every line here is active-high, as the MADT says.
// - Only fixed and lowest-priority messages count as level-triggered (set remote IRR, await an
//   EOI): the SDM requires NMI, SMI and INIT to be edge-triggered, and no EOI ever follows them.
//   ExtINT and the reserved delivery modes are never sent: nothing answers an ExtINT
//   acknowledge on this machine (no line reaches the 8259s).
//
// GSI routes: KVM's split irqchip decides which vectors need an EOI exit by scanning the MSI
// routes of GSIs 0..23, so the machine mirrors each pin's message as the route of its GSI. As in
// QEMU's ioapic_update_kvm_routes, a route follows the pin's entry while the pin is unmasked, and
// a masked pin keeps the route it had: an EOI for a level interrupt delivered before the mask
// still has to reach us, and Linux's frequent mask/unmask costs no KVM_SET_GSI_ROUTING.
//
// Left out: the version 0x20 EOI register, interrupt remapping formats, the arbitration ID
// protocol (the arbitration register reads the APIC ID, as QEMU's does), and QEMU's throttling of
// a level interrupt storm (a guest that EOIs without silencing its device keeps exiting, but
// each delivery still goes through a vCPU exit, so other vCPUs and the VMM keep running).

import { IOAPIC_PINS, IOAPIC_VERSION } from '../../x86/layout.js';
import { type BusDevice, fillValue, readValue } from '../bus.js';
import type { IrqLine } from '../irq.js';
import type { MsiMessage } from '../pci/msix.js';

const IOREGSEL = 0x00;
const IOWIN = 0x10;

const REG_ID = 0x00;
const REG_VERSION = 0x01;
const REG_ARBITRATION = 0x02;
const REG_REDIRECTION_TABLE = 0x10;
const ID_SHIFT = 24;
const ID_MASK = 0x0f;

// Redirection entry, low dword.
const RTE_VECTOR = 0xff;
const RTE_DELIVERY_MODE_SHIFT = 8;
const RTE_DELIVERY_MODE_MASK = 0x7;
const RTE_DEST_LOGICAL = 1 << 11;
const RTE_POLARITY_LOW = 1 << 13;
const RTE_REMOTE_IRR = 1 << 14;
const RTE_TRIGGER_LEVEL = 1 << 15;
const RTE_MASKED = 1 << 16;
/** What the guest may write in the low dword; delivery status (bit 12) always reads 0. */
const RTE_LOW_WRITABLE =
  RTE_VECTOR |
  (RTE_DELIVERY_MODE_MASK << RTE_DELIVERY_MODE_SHIFT) |
  RTE_DEST_LOGICAL |
  RTE_POLARITY_LOW |
  RTE_TRIGGER_LEVEL |
  RTE_MASKED;
// Redirection entry, high dword: destination in bits 24-31 (entry bits 56-63), the extended
// destination ID in bits 17-23 (entry bits 49-55; Linux's virt_destid_8_14 for > 255 CPUs).
const RTE_HIGH_DEST_SHIFT = 24;
const RTE_HIGH_EXT_DEST_SHIFT = 17;
const RTE_HIGH_EXT_DEST_MASK = 0x7f;
const RTE_HIGH_WRITABLE = 0xff00_0000 | (RTE_HIGH_EXT_DEST_MASK << RTE_HIGH_EXT_DEST_SHIFT);

const DELIVERY_FIXED = 0;
const DELIVERY_LOWEST_PRIORITY = 1;
const DELIVERY_SMI = 2;
const DELIVERY_NMI = 4;
const DELIVERY_INIT = 5;
const DELIVERY_EXTINT = 7;
const DELIVERY_MODE_NAMES = [
  'fixed',
  'lowest priority',
  'SMI',
  'reserved (3)',
  'NMI',
  'INIT',
  'reserved (6)',
  'ExtINT',
];

// MSI message (Intel SDM 11.11): address 0xFEE0_0000 | destination << 12 | extended destination
// << 5 | logical << 2; data = vector | delivery mode << 8 | assert << 14 | level << 15.
const MSI_ADDRESS_BASE = 0xfee0_0000;
const MSI_ADDRESS_DEST_SHIFT = 12;
const MSI_ADDRESS_EXT_DEST_SHIFT = 5;
const MSI_ADDRESS_DEST_LOGICAL = 1 << 2;
const MSI_DATA_DELIVERY_MODE_SHIFT = 8;
const MSI_DATA_LEVEL_ASSERT = 1 << 14;
const MSI_DATA_TRIGGER_LEVEL = 1 << 15;

/** Reset value of every entry: masked, everything else 0. */
const RTE_LOW_RESET = RTE_MASKED;

export interface IoapicHost {
  /** Sends an interrupt message to the local APICs (KVM_SIGNAL_MSI on KVM). */
  deliver(message: MsiMessage, pin: number): void;
  /**
   * The route of GSI `pin` should now be `message` (undefined: remove it). KVM's split irqchip
   * finds the vectors that need an EOI exit in the MSI routes of GSIs 0..23. Called only when
   * the route actually changes: each call costs the machine a KVM_SET_GSI_ROUTING.
   */
  routeChanged(pin: number, message: MsiMessage | undefined): void;
}

export interface IoapicOptions {
  /** The IOAPIC's APIC ID, as the MADT gives it (default 0). */
  id?: number;
  log?: (line: string) => void;
}

/** IOAPIC state for snapshots. Entries are split in dwords so the state is plain JSON. */
export interface IoapicState {
  id: number;
  selectedRegister: number;
  /** Per pin, bits 0-31 of its redirection entry (remote IRR included). */
  redirectionLow: number[];
  /** Per pin, bits 32-63 of its redirection entry. */
  redirectionHigh: number[];
  /** Per pin, the level of the line driving it. */
  lineLevels: boolean[];
}

function sameMessage(a: MsiMessage | undefined, b: MsiMessage | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.addressLo === b.addressLo && a.addressHi === b.addressHi && a.data === b.data;
}

function isDword(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 0xffff_ffff;
}

export class Ioapic implements BusDevice {
  private id: number;
  private selectedRegister = 0;
  private readonly redirectionLow = new Uint32Array(IOAPIC_PINS).fill(RTE_LOW_RESET);
  private readonly redirectionHigh = new Uint32Array(IOAPIC_PINS);
  private readonly lineLevels: boolean[] = new Array(IOAPIC_PINS).fill(false);
  /** What routeChanged last said for each pin (undefined: no route). */
  private readonly routes: (MsiMessage | undefined)[] = new Array(IOAPIC_PINS).fill(undefined);
  /** Delivery modes already reported as undeliverable (logged once each, not per interrupt). */
  private readonly reportedModes = new Set<number>();

  constructor(
    private readonly host: IoapicHost,
    private readonly options: IoapicOptions = {},
  ) {
    const id = options.id ?? 0;
    if (!Number.isInteger(id) || id < 0 || id > ID_MASK) throw new RangeError(`IOAPIC ID ${id} is not 0..15`);
    this.id = id;
  }

  /** The interrupt line of a device wired to `pin`. */
  line(pin: number): IrqLine {
    this.checkPin(pin);
    return { set: (level) => this.setLevel(pin, level) };
  }

  /** A device raised or lowered the line into `pin`. */
  setLevel(pin: number, level: boolean): void {
    this.checkPin(pin);
    const wasHigh = this.lineLevels[pin]!;
    this.lineLevels[pin] = level;
    const low = this.redirectionLow[pin]!;
    if (this.isLevelTriggered(low)) this.serviceLevel(pin);
    else if (level && !wasHigh && !(low & RTE_MASKED)) this.send(pin);
  }

  /**
   * A local APIC sent an EOI for `vector` (KVM_EXIT_IOAPIC_EOI): every level-triggered pin with
   * that vector drops remote IRR, and one whose line is still high interrupts again.
   */
  endOfInterrupt(vector: number): void {
    for (let pin = 0; pin < IOAPIC_PINS; pin++) {
      const low = this.redirectionLow[pin]!;
      if ((low & RTE_VECTOR) !== vector || !(low & RTE_TRIGGER_LEVEL) || !(low & RTE_REMOTE_IRR)) continue;
      this.redirectionLow[pin] = low & ~RTE_REMOTE_IRR;
      this.serviceLevel(pin);
    }
  }

  read(offset: number, data: Uint8Array): void {
    data.fill(0);
    if (offset === IOREGSEL && data.length <= 4) {
      data[0] = this.selectedRegister;
    } else if (offset === IOWIN && data.length === 4) {
      fillValue(data, this.readRegister(this.selectedRegister));
    }
  }

  write(offset: number, data: Uint8Array): void {
    // Byte writes to IOREGSEL are accepted too: only its low byte means anything.
    if (offset === IOREGSEL && data.length <= 4) {
      this.selectedRegister = data[0]!;
    } else if (offset === IOWIN && data.length === 4) {
      this.writeRegister(this.selectedRegister, readValue(data));
    }
  }

  /** Snapshot. */
  state(): IoapicState {
    return {
      id: this.id,
      selectedRegister: this.selectedRegister,
      redirectionLow: Array.from(this.redirectionLow),
      redirectionHigh: Array.from(this.redirectionHigh),
      lineLevels: [...this.lineLevels],
    };
  }

  /**
   * Loads a snapshot; returns why it cannot (the IOAPIC is then unchanged), or undefined. Routes
   * are re-announced for every pin that is unmasked or awaits an EOI. Nothing is delivered: in a
   * consistent snapshot every deliverable interrupt was already sent.
   */
  restore(state: IoapicState): string | undefined {
    if (typeof state !== 'object' || state === null) return 'IOAPIC state is not an object';
    if (!Number.isInteger(state.id) || state.id < 0 || state.id > ID_MASK) return 'IOAPIC ID out of range';
    if (
      !Number.isInteger(state.selectedRegister) ||
      state.selectedRegister < 0 ||
      state.selectedRegister > 0xff
    )
      return 'IOAPIC register select out of range';
    const tables = [state.redirectionLow, state.redirectionHigh];
    if (!tables.every((t) => Array.isArray(t) && t.length === IOAPIC_PINS && t.every(isDword)))
      return `IOAPIC redirection table must hold ${IOAPIC_PINS} 32-bit entries per half`;
    if (
      !Array.isArray(state.lineLevels) ||
      state.lineLevels.length !== IOAPIC_PINS ||
      !state.lineLevels.every((l) => typeof l === 'boolean')
    )
      return `IOAPIC line levels must be ${IOAPIC_PINS} booleans`;
    this.id = state.id;
    this.selectedRegister = state.selectedRegister;
    for (let pin = 0; pin < IOAPIC_PINS; pin++) {
      let low = state.redirectionLow[pin]! & (RTE_LOW_WRITABLE | RTE_REMOTE_IRR);
      if (!(low & RTE_TRIGGER_LEVEL)) low &= ~RTE_REMOTE_IRR;
      this.redirectionLow[pin] = low;
      this.redirectionHigh[pin] = state.redirectionHigh[pin]! & RTE_HIGH_WRITABLE;
      this.lineLevels[pin] = state.lineLevels[pin]!;
    }
    for (let pin = 0; pin < IOAPIC_PINS; pin++) {
      const low = this.redirectionLow[pin]!;
      const needsRoute = !(low & RTE_MASKED) || (low & RTE_REMOTE_IRR) !== 0;
      this.setRoute(pin, needsRoute ? this.routeMessage(pin) : undefined);
    }
    return undefined;
  }

  /** Power-on state: every pin masked and routeless. Line levels are the devices' and stay. */
  reset(): void {
    this.id = this.options.id ?? 0;
    this.selectedRegister = 0;
    this.redirectionLow.fill(RTE_LOW_RESET);
    this.redirectionHigh.fill(0);
    for (let pin = 0; pin < IOAPIC_PINS; pin++) this.setRoute(pin, undefined);
  }

  /** The message `pin` sends with its current entry (whatever its mask and delivery mode). */
  message(pin: number): MsiMessage {
    this.checkPin(pin);
    const low = this.redirectionLow[pin]!;
    const high = this.redirectionHigh[pin]!;
    const deliveryMode = (low >>> RTE_DELIVERY_MODE_SHIFT) & RTE_DELIVERY_MODE_MASK;
    const destination = high >>> RTE_HIGH_DEST_SHIFT;
    const extendedDestination = (high >>> RTE_HIGH_EXT_DEST_SHIFT) & RTE_HIGH_EXT_DEST_MASK;
    // The redirection hint (address bit 3) stays 0, as QEMU's IOAPIC leaves it: the delivery mode
    // already says "lowest priority", and KVM treats either one as a lowest-priority request.
    const addressLo =
      (MSI_ADDRESS_BASE |
        (destination << MSI_ADDRESS_DEST_SHIFT) |
        (extendedDestination << MSI_ADDRESS_EXT_DEST_SHIFT) |
        (low & RTE_DEST_LOGICAL ? MSI_ADDRESS_DEST_LOGICAL : 0)) >>>
      0;
    let data = (low & RTE_VECTOR) | (deliveryMode << MSI_DATA_DELIVERY_MODE_SHIFT);
    if (this.isLevelTriggered(low)) data |= MSI_DATA_TRIGGER_LEVEL | MSI_DATA_LEVEL_ASSERT;
    return { addressLo, addressHi: 0, data };
  }

  private checkPin(pin: number): void {
    if (!Number.isInteger(pin) || pin < 0 || pin >= IOAPIC_PINS)
      throw new RangeError(`IOAPIC pin ${pin} is not 0..${IOAPIC_PINS - 1}`);
  }

  /**
   * Level semantics apply: a level-triggered entry whose delivery mode is EOI'd. Other modes act
   * on rising edges whatever the trigger bit says.
   */
  private isLevelTriggered(low: number): boolean {
    if (!(low & RTE_TRIGGER_LEVEL)) return false;
    const mode = (low >>> RTE_DELIVERY_MODE_SHIFT) & RTE_DELIVERY_MODE_MASK;
    return mode === DELIVERY_FIXED || mode === DELIVERY_LOWEST_PRIORITY;
  }

  private isDeliverable(low: number): boolean {
    const mode = (low >>> RTE_DELIVERY_MODE_SHIFT) & RTE_DELIVERY_MODE_MASK;
    switch (mode) {
      case DELIVERY_FIXED:
      case DELIVERY_LOWEST_PRIORITY:
      case DELIVERY_SMI:
      case DELIVERY_NMI:
      case DELIVERY_INIT:
        return true;
      default:
        return false;
    }
  }

  /** The route for `pin`'s entry: its message, or none when that message cannot be sent. */
  private routeMessage(pin: number): MsiMessage | undefined {
    return this.isDeliverable(this.redirectionLow[pin]!) ? this.message(pin) : undefined;
  }

  /** A level-triggered pin sends when its line is high, it is unmasked and no EOI is pending. */
  private serviceLevel(pin: number): void {
    const low = this.redirectionLow[pin]!;
    if (!this.lineLevels[pin] || low & RTE_MASKED || !this.isLevelTriggered(low) || low & RTE_REMOTE_IRR)
      return;
    this.send(pin);
  }

  private send(pin: number): void {
    const low = this.redirectionLow[pin]!;
    if (!this.isDeliverable(low)) {
      const mode = (low >>> RTE_DELIVERY_MODE_SHIFT) & RTE_DELIVERY_MODE_MASK;
      if (!this.reportedModes.has(mode)) {
        this.reportedModes.add(mode);
        const why = mode === DELIVERY_EXTINT ? 'no 8259 line is connected' : 'the mode is reserved';
        this.options.log?.(
          `ioapic: pin ${pin} uses delivery mode ${DELIVERY_MODE_NAMES[mode]}, not sent (${why}; logged once)`,
        );
      }
      return;
    }
    if (this.isLevelTriggered(low)) this.redirectionLow[pin] = low | RTE_REMOTE_IRR;
    this.host.deliver(this.message(pin), pin);
  }

  private setRoute(pin: number, message: MsiMessage | undefined): void {
    if (sameMessage(this.routes[pin], message)) return;
    this.routes[pin] = message;
    this.host.routeChanged(pin, message);
  }

  private readRegister(register: number): number {
    switch (register) {
      case REG_ID:
      case REG_ARBITRATION:
        return (this.id << ID_SHIFT) >>> 0;
      case REG_VERSION:
        return IOAPIC_VERSION | ((IOAPIC_PINS - 1) << 16);
    }
    const pin = (register - REG_REDIRECTION_TABLE) >> 1;
    if (register < REG_REDIRECTION_TABLE || pin >= IOAPIC_PINS) return 0;
    return register & 1 ? this.redirectionHigh[pin]! : this.redirectionLow[pin]!;
  }

  private writeRegister(register: number, value: number): void {
    if (register === REG_ID) {
      this.id = (value >>> ID_SHIFT) & ID_MASK;
      return;
    }
    const pin = (register - REG_REDIRECTION_TABLE) >> 1;
    if (register < REG_REDIRECTION_TABLE || pin >= IOAPIC_PINS) return; // version, arbitration, nothing
    if (register & 1) {
      this.redirectionHigh[pin] = value & RTE_HIGH_WRITABLE;
    } else {
      let low = (value & RTE_LOW_WRITABLE) | (this.redirectionLow[pin]! & RTE_REMOTE_IRR);
      if (!(low & RTE_TRIGGER_LEVEL)) low &= ~RTE_REMOTE_IRR;
      this.redirectionLow[pin] = low >>> 0;
    }
    if (!(this.redirectionLow[pin]! & RTE_MASKED)) this.setRoute(pin, this.routeMessage(pin));
    this.serviceLevel(pin);
  }
}
