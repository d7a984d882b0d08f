// A 16550A UART, as Linux's 8250 driver expects to find on COM1: it passes autoconfig (IER
// write-back, loopback MSR test, FIFO detection through FCR/IIR, no EFR/16750/XScale extras),
// raises received-data and transmitter-empty interrupts, and identifies them in hardware priority.
//
// Transmission is instant: a byte written to THR goes to the output batch and THR is empty again
// at once. Reception: the host's bytes wait in an input buffer behind the 16-byte RX FIFO and move
// into the FIFO as the guest reads, so pasted text is never dropped; the host pauses when
// `receive` takes less than it offered and resumes on `onDrain`. Only loopback bytes can overrun
// the FIFO, as on hardware (nothing else writes into it faster than the guest reads).

import type { BusDevice } from '../bus.js';
import type { IrqLine } from '../irq.js';

const REG_DATA = 0; // RBR (read), THR (write), DLL with DLAB
const REG_IER = 1; // DLM with DLAB
const REG_IIR_FCR = 2;
const REG_LCR = 3;
const REG_MCR = 4;
const REG_LSR = 5;
const REG_MSR = 6;
const REG_SCR = 7;

const IER_RDI = 0x01;
const IER_THRI = 0x02;
const IER_RLSI = 0x04;
const IER_MSI = 0x08;
/** The 16550A implements only the low four IER bits (Linux probes for XScale's bit 6). */
const IER_IMPLEMENTED = 0x0f;

const IIR_NONE = 0x01;
const IIR_MSI = 0x00;
const IIR_THRI = 0x02;
const IIR_RDI = 0x04;
const IIR_RLSI = 0x06;
const IIR_RX_TIMEOUT = 0x0c;
const IIR_FIFOS_ENABLED = 0xc0;

const FCR_ENABLE = 0x01;
const FCR_CLEAR_RX = 0x02;
const FCR_TRIGGER_SHIFT = 6;
const RX_TRIGGER_LEVELS = [1, 4, 8, 14];

const LCR_DLAB = 0x80;

const MCR_DTR = 0x01;
const MCR_RTS = 0x02;
const MCR_OUT1 = 0x04;
const MCR_OUT2 = 0x08;
const MCR_LOOP = 0x10;
const MCR_IMPLEMENTED = 0x1f;

const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_BI = 0x10;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;

const MSR_DCTS = 0x01;
const MSR_DDSR = 0x02;
const MSR_TERI = 0x04;
const MSR_DDCD = 0x08;
const MSR_CTS = 0x10;
const MSR_DSR = 0x20;
const MSR_RI = 0x40;
const MSR_DCD = 0x80;
/** DCD, DSR and CTS: a terminal is attached and ready. */
const MSR_CONNECTED = MSR_DCD | MSR_DSR | MSR_CTS;

/** The 16550A's receive FIFO depth. */
export const UART_FIFO_SIZE = 16;
/** Default size of the host input buffer behind the FIFO. */
export const UART_INPUT_CAPACITY = 64 * 1024;
/** Output is flushed to the host at this size, or when the scheduled flush runs. */
const OUTPUT_BATCH = 4096;

export interface UartOptions {
  irq: IrqLine;
  /** Bytes the guest transmitted, in batches. */
  onOutput(bytes: Uint8Array): void;
  /** The guest has read all pending input: the host may send more (after `receive` refused some). */
  onDrain?(): void;
  /** Bytes the host may queue ahead of the guest (default UART_INPUT_CAPACITY). */
  inputCapacity?: number;
  /**
   * How batched output gets flushed later: by default at the end of the current event-loop turn
   * (setImmediate), so a burst of one-byte THR writes reaches the host as one chunk.
   */
  scheduleFlush?(flush: () => void): void;
}

/** A UART's state for snapshots: plain JSON; host input still waiting travels as base64. */
export interface UartState {
  ier: number;
  lcr: number;
  mcr: number;
  scr: number;
  fcr: number;
  divisor: number;
  lsrErrors: number;
  msrDeltas: number;
  thrInterruptPending: boolean;
  fifo: number[];
  input: string;
}

export class Uart8250 implements BusDevice {
  private ier = 0;
  private lcr = 0x03; // 8N1
  private mcr = MCR_OUT2;
  private scr = 0;
  private fcr = 0;
  private divisor = 12; // 115200 / 12 = 9600 baud
  private lsrErrors = 0;
  private msrDeltas = 0;
  private thrInterruptPending = false;
  private irqLevel = false;

  private readonly fifo = new Uint8Array(UART_FIFO_SIZE);
  private fifoHead = 0;
  private fifoCount = 0;

  private readonly input: Uint8Array;
  private readonly inputCapacity: number;
  private inputHead = 0;
  private inputCount = 0;
  private consumed = 0;

  private readonly output = new Uint8Array(OUTPUT_BATCH);
  private outputLength = 0;
  private flushScheduled = false;
  private readonly scheduleFlush: (flush: () => void) => void;

  constructor(private readonly options: UartOptions) {
    this.inputCapacity = options.inputCapacity ?? UART_INPUT_CAPACITY;
    // Slack for FIFO bytes handed back by a FIFO clear when the buffer is already full.
    this.input = new Uint8Array(this.inputCapacity + UART_FIFO_SIZE);
    this.scheduleFlush = options.scheduleFlush ?? ((flush) => setImmediate(flush));
  }

  /**
   * Queues bytes from the host for the guest; returns how many were taken. Fewer than offered
   * means the buffer is full: keep the rest and offer it again after `onDrain`.
   */
  receive(bytes: Uint8Array): number {
    const capacity = this.input.length;
    const receiverConnected = (this.mcr & MCR_LOOP) === 0;
    let accepted = 0;
    for (; accepted < bytes.length; accepted++) {
      const byte = bytes[accepted]!;
      if (this.inputCount === 0 && receiverConnected && this.pushFifo(byte)) continue;
      if (this.inputCount >= this.inputCapacity) break;
      this.input[(this.inputHead + this.inputCount) % capacity] = byte;
      this.inputCount++;
    }
    this.updateIrq();
    return accepted;
  }

  /**
   * A BREAK from the host: the line held low for a character time and more, which the 16550A
   * receives as a NUL with LSR's break-interrupt bit (Linux's magic SysRq waits for it). It only
   * goes in behind nothing (false otherwise: offer it again after `onDrain`), so a BI always
   * belongs to the byte at the FIFO's head and keeps its place among the host's bytes.
   */
  receiveBreak(): boolean {
    if (this.mcr & MCR_LOOP || this.inputCount > 0 || this.fifoCount > 0) return false;
    this.pushFifo(0);
    this.lsrErrors |= LSR_BI;
    this.updateIrq();
    return true;
  }

  /** Bytes from the host the guest has not read yet (input buffer and FIFO). */
  get pendingInput(): number {
    return this.inputCount + (this.mcr & MCR_LOOP ? 0 : this.fifoCount);
  }

  /** Room left in the input buffer. */
  get inputSpace(): number {
    return Math.max(0, this.inputCapacity - this.inputCount);
  }

  /** Total bytes the guest has read from RBR since creation: a progress counter for the host side. */
  get bytesConsumed(): number {
    return this.consumed;
  }

  read(offset: number, data: Uint8Array): void {
    data.fill(0);
    data[0] = this.readRegister(offset);
  }

  write(offset: number, data: Uint8Array): void {
    this.writeRegister(offset, data[0]!);
  }

  /** Snapshot (output is flushed first: it belongs to the host, not to the state). */
  state(): UartState {
    this.flush();
    const input = new Uint8Array(this.inputCount);
    for (let i = 0; i < this.inputCount; i++)
      input[i] = this.input[(this.inputHead + i) % this.input.length]!;
    const fifo: number[] = [];
    for (let i = 0; i < this.fifoCount; i++) fifo.push(this.fifo[(this.fifoHead + i) % UART_FIFO_SIZE]!);
    return {
      ier: this.ier,
      lcr: this.lcr,
      mcr: this.mcr,
      scr: this.scr,
      fcr: this.fcr,
      divisor: this.divisor,
      lsrErrors: this.lsrErrors,
      msrDeltas: this.msrDeltas,
      thrInterruptPending: this.thrInterruptPending,
      fifo,
      input: Buffer.from(input).toString('base64'),
    };
  }

  /** Loads a snapshot; returns why it cannot (the UART is then unchanged), or undefined. */
  restore(state: UartState): string | undefined {
    const registers = [
      state.ier,
      state.lcr,
      state.mcr,
      state.scr,
      state.fcr,
      state.lsrErrors,
      state.msrDeltas,
    ];
    if (!registers.every((r) => Number.isInteger(r) && r >= 0 && r <= 0xff))
      return 'UART register out of range';
    if (!Number.isInteger(state.divisor) || state.divisor < 0 || state.divisor > 0xffff) return 'bad divisor';
    if (!Array.isArray(state.fifo) || state.fifo.length > UART_FIFO_SIZE) return 'bad FIFO contents';
    if (typeof state.input !== 'string') return 'bad input buffer';
    const input = Buffer.from(state.input, 'base64');
    if (input.length > this.inputCapacity) return `input buffer of ${input.length} bytes exceeds capacity`;
    this.ier = state.ier & IER_IMPLEMENTED;
    this.lcr = state.lcr;
    this.mcr = state.mcr & MCR_IMPLEMENTED;
    this.scr = state.scr;
    this.fcr = state.fcr & (FCR_ENABLE | (3 << FCR_TRIGGER_SHIFT));
    this.divisor = state.divisor;
    this.lsrErrors = state.lsrErrors & (LSR_OE | LSR_BI);
    this.msrDeltas = state.msrDeltas & 0x0f;
    this.thrInterruptPending = state.thrInterruptPending === true;
    this.fifoHead = 0;
    this.fifoCount = 0;
    for (const byte of state.fifo) this.fifo[this.fifoCount++] = byte & 0xff;
    this.inputHead = 0;
    this.inputCount = input.length;
    this.input.set(input);
    // The line's level is part of the irqchip's own snapshot; drive it to match in any case.
    this.updateIrq(true);
    return undefined;
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
      case REG_DATA:
        return dlab ? this.divisor & 0xff : this.readReceived();
      case REG_IER:
        return dlab ? this.divisor >> 8 : this.ier;
      case REG_IIR_FCR: {
        const iir = this.interruptIdentification();
        // Reading IIR while it names THR empty acknowledges that interrupt (and only that one).
        if (iir === IIR_THRI) {
          this.thrInterruptPending = false;
          this.updateIrq();
        }
        return iir | (this.fcr & FCR_ENABLE ? IIR_FIFOS_ENABLED : 0);
      }
      case REG_LCR:
        return this.lcr;
      case REG_MCR:
        return this.mcr;
      case REG_LSR: {
        const lsr = LSR_THRE | LSR_TEMT | (this.fifoCount > 0 ? LSR_DR : 0) | this.lsrErrors;
        this.lsrErrors = 0;
        this.updateIrq();
        return lsr;
      }
      case REG_MSR: {
        const msr = this.modemLines() | this.msrDeltas;
        this.msrDeltas = 0;
        this.updateIrq();
        return msr;
      }
      case REG_SCR:
        return this.scr;
      default:
        return 0xff;
    }
  }

  private writeRegister(offset: number, value: number): void {
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case REG_DATA:
        if (dlab) this.divisor = (this.divisor & 0xff00) | value;
        else this.transmit(value);
        return;
      case REG_IER:
        if (dlab) {
          this.divisor = (this.divisor & 0x00ff) | (value << 8);
          return;
        }
        // Enabling the THR-empty interrupt while THR is empty (it always is) raises it at once:
        // Linux's startup checks this, and its transmit path relies on it.
        if (value & IER_THRI && !(this.ier & IER_THRI)) this.thrInterruptPending = true;
        this.ier = value & IER_IMPLEMENTED;
        this.updateIrq();
        return;
      case REG_IIR_FCR:
        this.writeFifoControl(value);
        return;
      case REG_LCR:
        this.lcr = value;
        return;
      case REG_MCR:
        this.writeModemControl(value);
        return;
      case REG_SCR:
        this.scr = value;
        return;
      default:
        return; // LSR and MSR are read-only.
    }
  }

  private writeFifoControl(value: number): void {
    const toggled = (value ^ this.fcr) & FCR_ENABLE;
    // Switching FIFO mode on or off empties the FIFO, as does the explicit clear bit. Bytes the
    // host typed are not lost (Linux clears the FIFO when it opens the port): they flow in again.
    if (toggled || value & FCR_CLEAR_RX) this.emptyFifo();
    // Only the enable bit and the trigger level are kept; DMA mode and the 64-byte bit of the
    // 16750 do not exist here (Linux tells a 16750 by IIR bit 5, which stays clear).
    this.fcr = value & (FCR_ENABLE | (3 << FCR_TRIGGER_SHIFT));
    this.refillFifo();
    this.updateIrq();
  }

  private writeModemControl(value: number): void {
    const linesBefore = this.modemLines();
    const wasLoopback = (this.mcr & MCR_LOOP) !== 0;
    this.mcr = value & MCR_IMPLEMENTED;
    const linesAfter = this.modemLines();
    const changed = linesBefore ^ linesAfter;
    if (changed & MSR_CTS) this.msrDeltas |= MSR_DCTS;
    if (changed & MSR_DSR) this.msrDeltas |= MSR_DDSR;
    if (changed & MSR_DCD) this.msrDeltas |= MSR_DDCD;
    if (linesBefore & MSR_RI && !(linesAfter & MSR_RI)) this.msrDeltas |= MSR_TERI;
    if (wasLoopback !== ((this.mcr & MCR_LOOP) !== 0)) {
      // The receiver is wired to the transmitter in loopback and to the host outside it: looped
      // bytes do not leak into the console input, and host bytes wait while the guest tests.
      this.mcr ^= MCR_LOOP;
      this.emptyFifo();
      this.mcr ^= MCR_LOOP;
      this.refillFifo();
    }
    this.updateIrq();
  }

  private get fifoCapacity(): number {
    return this.fcr & FCR_ENABLE ? UART_FIFO_SIZE : 1;
  }

  private readReceived(): number {
    if (this.fifoCount === 0) return 0;
    const byte = this.fifo[this.fifoHead]!;
    this.fifoHead = (this.fifoHead + 1) % UART_FIFO_SIZE;
    this.fifoCount--;
    const fromHost = (this.mcr & MCR_LOOP) === 0;
    if (fromHost) this.consumed++;
    this.refillFifo();
    this.updateIrq();
    if (fromHost && this.fifoCount === 0 && this.inputCount === 0) this.options.onDrain?.();
    return byte;
  }

  /** Empties the FIFO; host bytes in it go back to the front of the input buffer, looped ones are dropped. */
  private emptyFifo(): void {
    if (!(this.mcr & MCR_LOOP)) {
      const capacity = this.input.length;
      for (let i = this.fifoCount - 1; i >= 0; i--) {
        this.inputHead = this.inputHead === 0 ? capacity - 1 : this.inputHead - 1;
        this.input[this.inputHead] = this.fifo[(this.fifoHead + i) % UART_FIFO_SIZE]!;
        this.inputCount++;
      }
    }
    this.fifoHead = 0;
    this.fifoCount = 0;
  }

  /** Moves host input into the FIFO while there is room (not in loopback: the host is disconnected). */
  private refillFifo(): void {
    if (this.mcr & MCR_LOOP) return;
    const capacity = this.input.length;
    while (this.inputCount > 0 && this.fifoCount < this.fifoCapacity) {
      this.pushFifo(this.input[this.inputHead]!);
      this.inputHead = this.inputHead + 1 === capacity ? 0 : this.inputHead + 1;
      this.inputCount--;
    }
  }

  private pushFifo(byte: number): boolean {
    if (this.fifoCount >= this.fifoCapacity) return false;
    this.fifo[(this.fifoHead + this.fifoCount) % UART_FIFO_SIZE] = byte;
    this.fifoCount++;
    return true;
  }

  private transmit(byte: number): void {
    if (this.mcr & MCR_LOOP) {
      // A full FIFO drops the new byte and flags an overrun, as the 16550A does.
      if (!this.pushFifo(byte)) this.lsrErrors |= LSR_OE;
    } else {
      this.output[this.outputLength++] = byte;
      if (this.outputLength === OUTPUT_BATCH) this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        this.scheduleFlush(() => {
          this.flushScheduled = false;
          this.flush();
        });
      }
    }
    this.thrInterruptPending = true;
    this.updateIrq();
  }

  /** The modem input lines: a connected terminal, or in loopback the MCR outputs wired back. */
  private modemLines(): number {
    const m = this.mcr;
    if (!(m & MCR_LOOP)) return MSR_CONNECTED;
    return (
      (m & MCR_RTS ? MSR_CTS : 0) |
      (m & MCR_DTR ? MSR_DSR : 0) |
      (m & MCR_OUT1 ? MSR_RI : 0) |
      (m & MCR_OUT2 ? MSR_DCD : 0)
    );
  }

  /** Pending interrupts in 16550A priority: line status, received data, THR empty, modem status. */
  private interruptIdentification(): number {
    if (this.ier & IER_RLSI && this.lsrErrors) return IIR_RLSI;
    if (this.ier & IER_RDI && this.fifoCount > 0) {
      // Below the trigger level the 16550A reports a character timeout instead; time is free here.
      const trigger = this.fcr & FCR_ENABLE ? RX_TRIGGER_LEVELS[this.fcr >> FCR_TRIGGER_SHIFT]! : 1;
      return this.fifoCount >= trigger ? IIR_RDI : IIR_RX_TIMEOUT;
    }
    if (this.ier & IER_THRI && this.thrInterruptPending) return IIR_THRI;
    if (this.ier & IER_MSI && this.msrDeltas) return IIR_MSI;
    return IIR_NONE;
  }

  private updateIrq(force = false): void {
    // In loopback the PC's OUT2-gated interrupt driver is cut off from the line, as on hardware.
    const level = this.interruptIdentification() !== IIR_NONE && !(this.mcr & MCR_LOOP);
    if (level === this.irqLevel && !force) return;
    this.irqLevel = level;
    this.options.irq.set(level);
  }
}
