// The escape sequence of `vireo console`: Ctrl-A then a key, as in `vireo run`, plus Ctrl-A d to
// detach (the VM keeps running). Pure, so it can be tested byte by byte.

export const CONSOLE_ESCAPE_BYTE = 0x01; // Ctrl-A

export type ConsoleCommand = 'detach' | 'power-button' | 'help';

export const CONSOLE_ESCAPE_HELP = [
  'Ctrl-A d   detach (the VM keeps running)',
  'Ctrl-A p   press the ACPI power button (asks the guest to shut down)',
  'Ctrl-A h   this help',
  'Ctrl-A a   send Ctrl-A to the guest',
].join('\r\n');

const KEYS: Record<string, ConsoleCommand> = { d: 'detach', p: 'power-button', h: 'help', '?': 'help' };

export class ConsoleEscapeParser {
  private pendingEscape = false;

  /** Splits typed bytes into bytes for the guest and commands, in order. */
  feed(input: Uint8Array): { forward: Uint8Array; commands: ConsoleCommand[] } {
    const forward: number[] = [];
    const commands: ConsoleCommand[] = [];
    for (const byte of input) {
      if (this.pendingEscape) {
        this.pendingEscape = false;
        const key = String.fromCharCode(byte).toLowerCase();
        if (byte === CONSOLE_ESCAPE_BYTE || key === 'a') forward.push(CONSOLE_ESCAPE_BYTE);
        else if (KEYS[key]) commands.push(KEYS[key]);
        // Anything else after Ctrl-A is dropped, as `vireo run` and QEMU do.
      } else if (byte === CONSOLE_ESCAPE_BYTE) {
        this.pendingEscape = true;
      } else {
        forward.push(byte);
      }
    }
    return { forward: Uint8Array.from(forward), commands };
  }
}
