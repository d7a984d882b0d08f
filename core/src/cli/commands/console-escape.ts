// The escape sequence of `vireo console`: Ctrl-A then a key, as in `vireo run`, plus Ctrl-A d to
// detach (the VM keeps running). Pure, so it can be tested byte by byte.

export const CONSOLE_ESCAPE_BYTE = 0x01; // Ctrl-A

export type ConsoleCommand = 'detach' | 'power-button' | 'break' | 'help';

/** What typed input means, in the order it was typed: bytes for the guest, or a command. */
export type ConsoleAction =
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'command'; command: ConsoleCommand };

export const CONSOLE_ESCAPE_HELP = [
  'Ctrl-A d   detach (the VM keeps running)',
  'Ctrl-A p   press the ACPI power button (asks the guest to shut down)',
  'Ctrl-A b   send a BREAK on the serial line (Linux: magic SysRq; the next key picks the action, h lists them)',
  'Ctrl-A h   this help',
  'Ctrl-A a   send Ctrl-A to the guest',
].join('\r\n');

const KEYS: Record<string, ConsoleCommand> = {
  d: 'detach',
  p: 'power-button',
  b: 'break',
  h: 'help',
  '?': 'help',
};

export class ConsoleEscapeParser {
  private pendingEscape = false;

  /**
   * Splits typed bytes into runs of bytes for the guest and commands, in the order typed: a
   * BREAK and the SysRq key after it must reach the guest in that order.
   */
  feed(input: Uint8Array): ConsoleAction[] {
    const actions: ConsoleAction[] = [];
    let run: number[] = [];
    const endRun = () => {
      if (run.length > 0) actions.push({ kind: 'bytes', bytes: Uint8Array.from(run) });
      run = [];
    };
    for (const byte of input) {
      if (this.pendingEscape) {
        this.pendingEscape = false;
        const key = String.fromCharCode(byte).toLowerCase();
        if (byte === CONSOLE_ESCAPE_BYTE || key === 'a') {
          run.push(CONSOLE_ESCAPE_BYTE);
        } else if (KEYS[key]) {
          endRun();
          actions.push({ kind: 'command', command: KEYS[key] });
        }
        // Anything else after Ctrl-A is dropped, as `vireo run` and QEMU do.
      } else if (byte === CONSOLE_ESCAPE_BYTE) {
        this.pendingEscape = true;
      } else {
        run.push(byte);
      }
    }
    endRun();
    return actions;
  }
}
