// The PS/2 controller, as far as a PC needs it without a keyboard: the CPU reset line (command
// 0xFE, or the output port's bit 0), the self tests, the command byte. Keyboard and mouse come later.

import type { BusDevice } from '../bus.js';

/** Ports 0x60 (data) and 0x64 (status/command) sit 4 apart: register one device per port. */
export const I8042_DATA_OFFSET = 0;

const STATUS_OUTPUT_FULL = 0x01;
const STATUS_SYSTEM_FLAG = 0x04;
const STATUS_COMMAND = 0x08;
/** Keyboard not inhibited: without it Linux warns that the keylock is on. */
const STATUS_UNLOCKED = 0x10;

const CMD_READ_COMMAND_BYTE = 0x20;
const CMD_WRITE_COMMAND_BYTE = 0x60;
const CMD_DISABLE_AUX = 0xa7;
const CMD_ENABLE_AUX = 0xa8;
const CMD_TEST_AUX = 0xa9;
const CMD_SELF_TEST = 0xaa;
const CMD_TEST_KEYBOARD = 0xab;
const CMD_DISABLE_KEYBOARD = 0xad;
const CMD_ENABLE_KEYBOARD = 0xae;
const CMD_READ_OUTPUT_PORT = 0xd0;
const CMD_WRITE_OUTPUT_PORT = 0xd1;
const CMD_PULSE_RESET = 0xfe;

export class I8042 {
  private commandByte = 0x61; // translation, system flag, keyboard interrupt
  private output: number[] = [];
  private pendingDataCommand: number | undefined;
  private lastWasCommand = false;

  constructor(private readonly onReset: () => void) {}

  /** The device for port 0x60. */
  readonly dataPort: BusDevice = {
    read: (_offset, data) => {
      data.fill(0);
      data[0] = this.output.shift() ?? 0;
    },
    write: (_offset, data) => this.writeData(data[0]!),
  };

  /** The device for port 0x64. */
  readonly commandPort: BusDevice = {
    read: (_offset, data) => {
      data.fill(0);
      data[0] =
        STATUS_SYSTEM_FLAG |
        STATUS_UNLOCKED |
        (this.output.length > 0 ? STATUS_OUTPUT_FULL : 0) |
        (this.lastWasCommand ? STATUS_COMMAND : 0);
    },
    write: (_offset, data) => this.writeCommand(data[0]!),
  };

  private writeCommand(command: number): void {
    this.lastWasCommand = true;
    switch (command) {
      case CMD_READ_COMMAND_BYTE:
        this.output.push(this.commandByte);
        break;
      case CMD_WRITE_COMMAND_BYTE:
      case CMD_WRITE_OUTPUT_PORT:
        this.pendingDataCommand = command;
        break;
      case CMD_SELF_TEST:
        this.output.push(0x55);
        break;
      case CMD_TEST_KEYBOARD:
      case CMD_TEST_AUX:
        this.output.push(0x00);
        break;
      case CMD_READ_OUTPUT_PORT:
        this.output.push(0x01); // reset line not asserted
        break;
      case CMD_DISABLE_KEYBOARD:
        this.commandByte |= 0x10;
        break;
      case CMD_ENABLE_KEYBOARD:
        this.commandByte &= ~0x10;
        break;
      case CMD_DISABLE_AUX:
        this.commandByte |= 0x20;
        break;
      case CMD_ENABLE_AUX:
        this.commandByte &= ~0x20;
        break;
      case CMD_PULSE_RESET:
        this.onReset();
        break;
      default:
        // 0xF0-0xFF pulse output lines; bit 0 low is the reset line.
        if (command >= 0xf0 && !(command & 0x01)) this.onReset();
    }
  }

  private writeData(value: number): void {
    this.lastWasCommand = false;
    const command = this.pendingDataCommand;
    this.pendingDataCommand = undefined;
    if (command === CMD_WRITE_COMMAND_BYTE) this.commandByte = value;
    else if (command === CMD_WRITE_OUTPUT_PORT && !(value & 0x01)) this.onReset();
    // Bytes for a keyboard: none is attached, so nothing answers (the driver times out and moves on).
  }
}
