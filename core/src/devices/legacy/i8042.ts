// The PS/2 controller, as far as a PC needs it: the CPU reset line (command 0xFE, or the output
// port's bit 0), the self tests, the command byte, and with an IRQ line a keyboard that answers the
// commands Linux's atkbd sends while probing (no keys are ever pressed yet). It is a single-channel
// controller: no mouse port, so Linux's AUX probe fails quickly instead of timing out on a mouse.
//
// The controller's output buffer holds one byte at a time for the guest; later bytes queue behind
// it. IRQ 1 is high while a keyboard byte waits and the command byte enables its interrupt.

import type { BusDevice } from '../bus.js';
import type { IrqLine } from '../irq.js';

const STATUS_OUTPUT_FULL = 0x01;
const STATUS_SYSTEM_FLAG = 0x04;
const STATUS_COMMAND = 0x08;
/** Keyboard not inhibited: without it Linux warns that the keylock is on. */
const STATUS_UNLOCKED = 0x10;

const CTR_KEYBOARD_INTERRUPT = 0x01;
const CTR_SYSTEM_FLAG = 0x04;
const CTR_KEYBOARD_DISABLED = 0x10;
const CTR_AUX_DISABLED = 0x20;
const CTR_TRANSLATE = 0x40;

const CMD_READ_COMMAND_BYTE = 0x20;
const CMD_WRITE_COMMAND_BYTE = 0x60;
const CMD_TEST_AUX = 0xa9;
const CMD_SELF_TEST = 0xaa;
const CMD_TEST_KEYBOARD = 0xab;
const CMD_DISABLE_KEYBOARD = 0xad;
const CMD_ENABLE_KEYBOARD = 0xae;
const CMD_READ_OUTPUT_PORT = 0xd0;
const CMD_WRITE_OUTPUT_PORT = 0xd1;
const CMD_WRITE_KEYBOARD_OUTPUT = 0xd2;
const CMD_PULSE_RESET = 0xfe;

/** Output port: bit 0 is the CPU reset line (active low), bit 1 the A20 gate. */
const OUTPUT_PORT_DEFAULT = 0x03;
/** AUX interface test result "clock line stuck high": there is no mouse port. */
const AUX_TEST_NO_DEVICE = 0x02;

const KBD_ACK = 0xfa;
const KBD_RESEND = 0xfe;
const KBD_BAT_OK = 0xaa;
const KBD_ECHO = 0xee;
const KBD_SET_LEDS = 0xed;
const KBD_SCANCODE_SET = 0xf0;
const KBD_GET_ID = 0xf2;
const KBD_SET_TYPEMATIC = 0xf3;
const KBD_RESET = 0xff;

export interface I8042Options {
  onReset(): void;
  /** IRQ 1. With it, a keyboard is attached and answers commands; without it, none is. */
  keyboardIrq?: IrqLine;
}

/** Controller (and keyboard) state for snapshots. */
export interface I8042State {
  commandByte: number;
  outputPort: number;
  output: number[];
  pendingControllerCommand: number | null;
  pendingKeyboardCommand: number | null;
  lastWasCommand: boolean;
  scancodeSet: number;
}

const byteOrNull = (v: unknown) =>
  v === null || (Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xff);

export class I8042 {
  private commandByte = CTR_KEYBOARD_INTERRUPT | CTR_SYSTEM_FLAG | CTR_AUX_DISABLED | CTR_TRANSLATE;
  private outputPort = OUTPUT_PORT_DEFAULT;
  private readonly output: number[] = [];
  private pendingControllerCommand: number | undefined;
  private pendingKeyboardCommand: number | undefined;
  private lastWasCommand = false;
  private scancodeSet = 2;
  private irqLevel = false;
  private readonly options: I8042Options;

  /** `new I8042(onReset)` or `new I8042({ onReset, keyboardIrq })`. */
  constructor(options: I8042Options | (() => void)) {
    this.options = typeof options === 'function' ? { onReset: options } : options;
  }

  state(): I8042State {
    return {
      commandByte: this.commandByte,
      outputPort: this.outputPort,
      output: [...this.output],
      pendingControllerCommand: this.pendingControllerCommand ?? null,
      pendingKeyboardCommand: this.pendingKeyboardCommand ?? null,
      lastWasCommand: this.lastWasCommand,
      scancodeSet: this.scancodeSet,
    };
  }

  /** Loads a snapshot; returns why it cannot (nothing changed then), or undefined. */
  restore(state: I8042State): string | undefined {
    const bytes = [state.commandByte, state.outputPort, state.scancodeSet, ...(state.output ?? [])];
    if (!bytes.every((b) => byteOrNull(b) && b !== null)) return 'i8042 byte out of range';
    if (!byteOrNull(state.pendingControllerCommand) || !byteOrNull(state.pendingKeyboardCommand)) {
      return 'bad pending i8042 command';
    }
    if (state.output.length > 64) return 'i8042 output queue too long';
    this.commandByte = state.commandByte | CTR_AUX_DISABLED;
    this.outputPort = state.outputPort;
    this.output.splice(0, this.output.length, ...state.output);
    this.pendingControllerCommand = state.pendingControllerCommand ?? undefined;
    this.pendingKeyboardCommand = state.pendingKeyboardCommand ?? undefined;
    this.lastWasCommand = state.lastWasCommand === true;
    this.scancodeSet = state.scancodeSet;
    this.irqLevel = false;
    this.options.keyboardIrq?.set(false);
    this.updateIrq();
    return undefined;
  }

  /** The device for port 0x60. */
  readonly dataPort: BusDevice = {
    read: (_offset, data) => {
      data.fill(0);
      data[0] = this.output.shift() ?? 0;
      // IRQ 1 is edge-triggered: each queued byte needs a fresh rising edge.
      this.setIrq(false);
      this.updateIrq();
    },
    write: (_offset, data) => this.writeData(data[0]!),
  };

  /** The device for port 0x64. */
  readonly commandPort: BusDevice = {
    read: (_offset, data) => {
      data.fill(0);
      data[0] =
        (this.commandByte & CTR_SYSTEM_FLAG ? STATUS_SYSTEM_FLAG : 0) |
        STATUS_UNLOCKED |
        (this.output.length > 0 ? STATUS_OUTPUT_FULL : 0) |
        (this.lastWasCommand ? STATUS_COMMAND : 0);
    },
    write: (_offset, data) => this.writeCommand(data[0]!),
  };

  private writeCommand(command: number): void {
    this.lastWasCommand = true;
    this.pendingControllerCommand = undefined;
    switch (command) {
      case CMD_READ_COMMAND_BYTE:
        this.respond(this.commandByte);
        break;
      case CMD_WRITE_COMMAND_BYTE:
      case CMD_WRITE_OUTPUT_PORT:
      case CMD_WRITE_KEYBOARD_OUTPUT:
        this.pendingControllerCommand = command;
        break;
      case CMD_SELF_TEST:
        this.respond(0x55);
        break;
      case CMD_TEST_KEYBOARD:
        this.respond(0x00);
        break;
      case CMD_TEST_AUX:
        this.respond(AUX_TEST_NO_DEVICE);
        break;
      case CMD_READ_OUTPUT_PORT:
        this.respond(this.outputPort);
        break;
      case CMD_DISABLE_KEYBOARD:
        this.commandByte |= CTR_KEYBOARD_DISABLED;
        break;
      case CMD_ENABLE_KEYBOARD:
        this.commandByte &= ~CTR_KEYBOARD_DISABLED;
        break;
      case CMD_PULSE_RESET:
        this.options.onReset();
        break;
      default:
        // 0xF0-0xFF pulse output-port lines low for 6 us; bit 0 low is the reset line. The AUX
        // commands (0xA7/0xA8/0xD3/0xD4) belong to a mouse port this controller does not have.
        if (command >= 0xf0 && !(command & 0x01)) this.options.onReset();
    }
  }

  private writeData(value: number): void {
    this.lastWasCommand = false;
    const command = this.pendingControllerCommand;
    this.pendingControllerCommand = undefined;
    if (command === CMD_WRITE_COMMAND_BYTE) {
      // A single-channel controller keeps the AUX-disabled bit set.
      this.commandByte = value | CTR_AUX_DISABLED;
      this.updateIrq();
    } else if (command === CMD_WRITE_OUTPUT_PORT) {
      this.outputPort = value;
      if (!(value & 0x01)) this.options.onReset();
    } else if (command === CMD_WRITE_KEYBOARD_OUTPUT) {
      this.respond(value);
    } else if (this.options.keyboardIrq) {
      this.commandByte &= ~CTR_KEYBOARD_DISABLED; // writing to the keyboard enables its interface
      this.keyboardCommand(value);
    }
    // Without a keyboard nothing answers: the driver times out and carries on.
  }

  /** A keyboard with no keys pressed: acknowledges commands and answers the identifying ones. */
  private keyboardCommand(value: number): void {
    const parameterFor = this.pendingKeyboardCommand;
    this.pendingKeyboardCommand = undefined;
    if (parameterFor !== undefined) {
      this.respond(KBD_ACK);
      if (parameterFor === KBD_SCANCODE_SET) {
        if (value === 0) this.respond(this.scancodeSet);
        else if (value <= 3) this.scancodeSet = value;
      }
      return;
    }
    switch (value) {
      case KBD_RESET:
        this.scancodeSet = 2;
        this.respond(KBD_ACK);
        this.respond(KBD_BAT_OK);
        return;
      case KBD_GET_ID:
        this.respond(KBD_ACK);
        this.respond(0xab);
        // With translation on, the controller turns the set-2 ID byte 0x83 into 0x41.
        this.respond(this.commandByte & CTR_TRANSLATE ? 0x41 : 0x83);
        return;
      case KBD_ECHO:
        this.respond(KBD_ECHO);
        return;
      case KBD_SET_LEDS:
      case KBD_SCANCODE_SET:
      case KBD_SET_TYPEMATIC:
        this.pendingKeyboardCommand = value;
        this.respond(KBD_ACK);
        return;
      default:
        this.respond(value >= 0xf4 ? KBD_ACK : KBD_RESEND);
    }
  }

  private respond(byte: number): void {
    this.output.push(byte & 0xff);
    this.updateIrq();
  }

  private updateIrq(): void {
    this.setIrq(this.output.length > 0 && (this.commandByte & CTR_KEYBOARD_INTERRUPT) !== 0);
  }

  private setIrq(level: boolean): void {
    const irq = this.options.keyboardIrq;
    if (!irq || level === this.irqLevel) return;
    this.irqLevel = level;
    irq.set(level);
  }
}
