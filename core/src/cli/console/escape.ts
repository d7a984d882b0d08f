// The console escape sequence, as in QEMU: Ctrl-A then a command key. Pure, so it can be tested
// byte by byte; the terminal glue feeds it stdin and acts on what it returns.

export const ESCAPE_BYTE = 0x01; // Ctrl-A

export type EscapeCommand = 'quit' | 'help' | 'power-button' | 'break';

/**
 * What a chunk of typed input means, in the order it was typed: bytes for the guest (escape
 * sequences removed) and commands. The order matters: Ctrl-A b then h is a break, then the key
 * SysRq acts on.
 */
export type EscapeEvent = Uint8Array | EscapeCommand;

export const ESCAPE_HELP = [
  'Ctrl-A x   quit (stops the VM)',
  'Ctrl-A p   press the ACPI power button (asks the guest to shut down)',
  'Ctrl-A b   send a break on the serial line (Linux: magic SysRq, then a key; h lists them)',
  'Ctrl-A h   this help',
  'Ctrl-A a   send Ctrl-A to the guest',
].join('\r\n');

const COMMAND_KEYS: Record<string, EscapeCommand> = {
  x: 'quit',
  h: 'help',
  p: 'power-button',
  b: 'break',
};

export class EscapeParser {
  private pendingEscape = false;

  feed(input: Uint8Array): EscapeEvent[] {
    const events: EscapeEvent[] = [];
    let forward: number[] = [];
    const flush = () => {
      if (forward.length > 0) events.push(Uint8Array.from(forward));
      forward = [];
    };
    for (const byte of input) {
      if (this.pendingEscape) {
        this.pendingEscape = false;
        const key = String.fromCharCode(byte).toLowerCase();
        if (byte === ESCAPE_BYTE || key === 'a') {
          forward.push(ESCAPE_BYTE);
        } else if (COMMAND_KEYS[key]) {
          flush();
          events.push(COMMAND_KEYS[key]);
        }
        // Any other key after Ctrl-A is dropped, as QEMU does.
      } else if (byte === ESCAPE_BYTE) {
        this.pendingEscape = true;
      } else {
        forward.push(byte);
      }
    }
    flush();
    return events;
  }
}
