// A 16550A UART, as Linux's 8250 driver expects to find on COM1: FIFO detection, scratch and
// loopback tests, received-data and transmitter-empty interrupts. Transmission is instant: a byte
// written to THR is handed to `onOutput` and THR is empty again at once.

import type { BusDevice } from '../bus.js';
import type { IrqLine } from '../irq.js';

enum Reg {
  DATA = 0, // RBR (read), THR (write), DLL with DLAB
  IER = 1, // DLM with DLAB
  IIR_FCR = 2,
  LCR = 3,
  MCR = 4,
  LSR = 5,
  MSR = 6,
  SCR = 7,
}

const IER_RDI = 0x01;
const IER_THRI = 0x02;
const IER_RLSI = 0x04;
const IER_MSI = 0x08;

const IIR_NONE = 0x01;
const IIR_MSI = 0x00;
const IIR_THRI = 0x02;
const IIR_RDI = 0x04;
const IIR_RLSI = 0x06;
const IIR_FIFO_ENABLED = 0xc0;

const FCR_ENABLE = 0x01;
const FCR_CLEAR_RX = 0x02;

const LCR_DLAB = 0x80;
const MCR_LOOP = 0x10;

const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;

/** DCD, DSR and CTS: a terminal is attached and ready. */
const MSR_CONNECTED = 0xb0;

/** Bytes held for the guest before `receive` stops accepting (the host then waits for `onDrain`). */
export const UART_INPUT_CAPACITY = 64 * 1024;
/** Output is flushed to the host at this size, or at the end of the current event-loop turn. */
const OUTPUT_BATCH = 4096;

export interface UartOptions {
  irq: IrqLine;
  onOutput(bytes: Uint8Array): void;
  /** Called when the guest has read all pending input (the host may send more). */
  onDrain?(): void;
}

export class Uart8250 implements BusDevice {
  private ier = 0;
  private lcr = 0x03; // 8N1
  private mcr = 0x08; // OUT2, which PCs use to gate the IRQ
  private lsrErrors = 0;
  private msrDelta = 0;
  private scr = 0;
  private fcr = 0;
  private divisor = 12; // 9600 baud
  private thrInterruptPending = false;
  private input = new Uint8Array(UART_INPUT_CAPACITY);
  private inputHead = 0;
  private inputLength = 0;
  private output = new Uint8Array(OUTPUT_BATCH);
  private outputLength = 0;
  private flushScheduled = false;
  private irqLevel = false;

  constructor(private readonly options: UartOptions) {}

  /** Queues bytes from the host for the guest; returns how many were accepted. */
  receive(bytes: Uint8Array): number {
    const room = UART_INPUT_CAPACITY - this.inputLength;
    const accepted = Math.min(room, bytes.length);
    for (let i = 0; i < accepted; i++) {
      this.input[(this.inputHead + this.inputLength + i) % UART_INPUT_CAPACITY] = bytes[i]!;
    }
    this.inputLength += accepted;
    if (accepted < bytes.length) this.lsrErrors |= LSR_OE;
    this.updateIrq();
    return accepted;
  }

  /** Bytes waiting for the guest to read. */
  get pendingInput(): number {
    return this.inputLength;
  }

  read(offset: number, data: Uint8Array): void {
    data.fill(0);
    data[0] = this.readRegister(offset);
  }

  write(offset: number, data: Uint8Array): void {
    this.writeRegister(offset, data[0]!);
  }

  /** Sends any batched output now (the VM is stopping, or a test wants it). */
  flush(): void {
    if (this.outputLength === 0) return;
    const bytes = this.output.slice(0, this.outputLength);
    this.outputLength = 0;
    this.options.onOutput(bytes);
  }

  private readRegister(offset: number): number {
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case Reg.DATA:
        if (dlab) return this.divisor & 0xff;
        return this.readReceived();
      case Reg.IER:
        return dlab ? this.divisor >> 8 : this.ier;
      case Reg.IIR_FCR: {
        const iir = this.interruptIdentification();
        // Reading IIR while it reports THR empty acknowledges that interrupt.
        if (iir === IIR_THRI) {
          this.thrInterruptPending = false;
          this.updateIrq();
        }
        return iir | (this.fcr & FCR_ENABLE ? IIR_FIFO_ENABLED : 0);
      }
      case Reg.LCR:
        return this.lcr;
      case Reg.MCR:
        return this.mcr;
      case Reg.LSR: {
        const lsr = LSR_THRE | LSR_TEMT | (this.inputLength > 0 ? LSR_DR : 0) | this.lsrErrors;
        this.lsrErrors = 0;
        this.updateIrq();
        return lsr;
      }
      case Reg.MSR: {
        const msr = this.modemStatus() | this.msrDelta;
        this.msrDelta = 0;
        this.updateIrq();
        return msr;
      }
      case Reg.SCR:
        return this.scr;
      default:
        return 0xff;
    }
  }

  private writeRegister(offset: number, value: number): void {
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case Reg.DATA:
        if (dlab) {
          this.divisor = (this.divisor & 0xff00) | value;
          return;
        }
        this.transmit(value);
        return;
      case Reg.IER:
        if (dlab) {
          this.divisor = (this.divisor & 0x00ff) | (value << 8);
          return;
        }
        // Enabling the THR-empty interrupt while THR is empty raises it at once (Linux relies on it).
        if (value & IER_THRI && !(this.ier & IER_THRI)) this.thrInterruptPending = true;
        this.ier = value & 0x0f;
        this.updateIrq();
        return;
      case Reg.IIR_FCR:
        if (value & FCR_CLEAR_RX) {
          this.inputHead = 0;
          this.inputLength = 0;
        }
        this.fcr = value & 0xc9;
        this.updateIrq();
        return;
      case Reg.LCR:
        this.lcr = value;
        return;
      case Reg.MCR: {
        const before = this.modemStatus();
        this.mcr = value & 0x1f;
        const after = this.modemStatus();
        // Delta bits for CTS and DSR changes, as loopback tests observe them.
        this.msrDelta |= ((before ^ after) >> 4) & 0x03;
        this.updateIrq();
        return;
      }
      case Reg.SCR:
        this.scr = value;
        return;
      default:
        return; // LSR and MSR are read-only.
    }
  }

  private readReceived(): number {
    if (this.inputLength === 0) return 0;
    const byte = this.input[this.inputHead]!;
    this.inputHead = (this.inputHead + 1) % UART_INPUT_CAPACITY;
    this.inputLength--;
    this.updateIrq();
    if (this.inputLength === 0) this.options.onDrain?.();
    return byte;
  }

  private transmit(byte: number): void {
    if (this.mcr & MCR_LOOP) {
      this.receive(Uint8Array.of(byte));
    } else {
      this.output[this.outputLength++] = byte;
      if (this.outputLength === OUTPUT_BATCH) this.flush();
      else this.scheduleFlush();
    }
    this.thrInterruptPending = true;
    this.updateIrq();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private modemStatus(): number {
    if (!(this.mcr & MCR_LOOP)) return MSR_CONNECTED;
    const m = this.mcr;
    // Loopback wires RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD.
    return ((m & 0x02) << 3) | ((m & 0x01) << 5) | ((m & 0x04) << 4) | ((m & 0x08) << 4);
  }

  private interruptIdentification(): number {
    if (this.ier & IER_RLSI && this.lsrErrors) return IIR_RLSI;
    if (this.ier & IER_RDI && this.inputLength > 0) return IIR_RDI;
    if (this.ier & IER_THRI && this.thrInterruptPending) return IIR_THRI;
    if (this.ier & IER_MSI && this.msrDelta) return IIR_MSI;
    return IIR_NONE;
  }

  private updateIrq(): void {
    // In loopback mode the interrupt output is disconnected from the line, as on real hardware.
    const level = this.interruptIdentification() !== IIR_NONE && !(this.mcr & MCR_LOOP);
    if (level === this.irqLevel) return;
    this.irqLevel = level;
    this.options.irq.set(level);
  }
}
