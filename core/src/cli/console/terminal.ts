// Connects the process's terminal to a VM console: raw mode while attached, the Ctrl-A escape
// sequence, and the terminal restored however the process ends.

import type { ReadStream } from 'node:tty';
import { ESCAPE_HELP, type EscapeCommand, EscapeParser } from './escape.js';

export interface TerminalAttachment {
  detach(): void;
}

export interface TerminalOptions {
  input: NodeJS.ReadableStream;
  /** Bytes the user typed, with escape sequences removed. */
  onInput(bytes: Uint8Array): void;
  onCommand(command: EscapeCommand): void;
  /** Where help text goes (the console output, so it shows among guest output). */
  showMessage(text: string): void;
}

function isTty(stream: NodeJS.ReadableStream): stream is ReadStream {
  return (stream as ReadStream).isTTY === true && typeof (stream as ReadStream).setRawMode === 'function';
}

export function attachTerminal(options: TerminalOptions): TerminalAttachment {
  const { input } = options;
  const parser = new EscapeParser();
  const raw = isTty(input);
  if (raw) input.setRawMode(true);

  const onData = (chunk: Buffer) => {
    for (const event of parser.feed(chunk)) {
      if (typeof event !== 'string') options.onInput(event);
      else if (event === 'help') options.showMessage(`\r\n${ESCAPE_HELP}\r\n`);
      else options.onCommand(event);
    }
  };
  const restore = () => {
    if (raw) input.setRawMode(false);
  };
  input.on('data', onData);
  input.resume();
  process.once('exit', restore);

  return {
    detach() {
      input.off('data', onData);
      input.pause();
      process.off('exit', restore);
      restore();
    },
  };
}
