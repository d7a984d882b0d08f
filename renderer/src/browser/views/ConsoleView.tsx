// The serial console in xterm.js: the console history first, then live output; what is typed goes
// to the guest through console.write; the terminal fits its box as the window resizes.

import { FitAddon } from '@xterm/addon-fit';
import { type ITheme, Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { useEffect, useRef } from 'react';
import { base64ToBytes, bytesToBase64 } from '../../common/base64.js';
import { describeError } from '../../common/client.js';
import { useServices } from '../context.js';

const LIGHT: ITheme = {
  background: '#fbfbfa',
  foreground: '#1d1f21',
  cursor: '#1d1f21',
  selectionBackground: '#b4d5fe',
};
const DARK: ITheme = {
  background: '#15171a',
  foreground: '#e2e4e7',
  cursor: '#e2e4e7',
  selectionBackground: '#3a4b63',
};

/** Everything the terminal holds (scrollback and screen) as text, one line per row. */
function terminalText(terminal: Terminal): string {
  const buffer = terminal.buffer.active;
  const lines: string[] = [];
  for (let y = 0; y < buffer.length; y++) {
    const line = buffer.getLine(y);
    if (!line) continue;
    // Trailing blanks are kept only where the row continues on the next one.
    const text = line.translateToString(!buffer.getLine(y + 1)?.isWrapped);
    // A row that continues the one above (a long line wrapped) joins it again.
    if (line.isWrapped && lines.length > 0) lines[lines.length - 1] += text;
    else lines.push(text);
  }
  return `${lines.join('\n').trimEnd()}\n`;
}

function saveText(name: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/plain;charset=utf-8' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 0);
}

export function ConsoleView({ vm, serial }: { vm: string; serial: boolean }) {
  const { client } = useServices();
  const box = useRef<HTMLElement>(null);
  const terminalRef = useRef<Terminal>(undefined);

  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const dark = window.matchMedia('(prefers-color-scheme: dark)');
    const terminal = new Terminal({
      cursorBlink: true,
      scrollback: 10_000,
      fontFamily: '"DejaVu Sans Mono", "Liberation Mono", monospace',
      fontSize: 13,
      theme: dark.matches ? DARK : LIGHT,
    });
    const fit = new FitAddon();
    terminal.loadAddon(fit);
    terminal.open(element);
    terminalRef.current = terminal;
    fit.fit();
    const onScheme = () => {
      terminal.options.theme = dark.matches ? DARK : LIGHT;
    };
    dark.addEventListener('change', onScheme);

    let disposed = false;
    // Output before the attach answer came from an earlier attachment: the history holds it.
    let attached = false;
    // A guest's UART output arrives a few bytes per message: collected and handed to xterm.js once
    // per frame, which costs the page far less than a write per message.
    let pending: Uint8Array[] = [];
    let frame = 0;
    const flush = () => {
      frame = 0;
      const chunks = pending;
      pending = [];
      const bytes = new Uint8Array(chunks.reduce((total, chunk) => total + chunk.length, 0));
      let offset = 0;
      for (const chunk of chunks) {
        bytes.set(chunk, offset);
        offset += chunk.length;
      }
      terminal.write(bytes);
    };
    const offOutput = client.onConsoleOutput((output) => {
      if (!attached || output.vm !== vm) return;
      pending.push(base64ToBytes(output.data));
      frame ||= requestAnimationFrame(flush);
    });
    client.call('console.attach', { vm, history: true }).then(
      ({ history }) => {
        if (disposed) return;
        terminal.write(base64ToBytes(history));
        attached = true;
      },
      (error) => {
        if (!disposed) terminal.write(`\r\n\x1b[31m[console: ${describeError(error)}]\x1b[0m\r\n`);
      },
    );
    const encoder = new TextEncoder();
    const typing = terminal.onData((text) => {
      client
        .call('console.write', { vm, data: bytesToBase64(encoder.encode(text)) })
        .catch((error) => terminal.write(`\r\n\x1b[31m[input: ${describeError(error)}]\x1b[0m\r\n`));
    });
    const resize = new ResizeObserver(() => fit.fit());
    resize.observe(element);
    terminal.focus();

    return () => {
      disposed = true;
      offOutput();
      cancelAnimationFrame(frame);
      typing.dispose();
      resize.disconnect();
      dark.removeEventListener('change', onScheme);
      client.call('console.detach', { vm }).catch(() => {});
      terminal.dispose();
      terminalRef.current = undefined;
    };
  }, [client, vm]);

  return (
    <>
      <div className="console-toolbar">
        {serial && (
          <button
            type="button"
            title="Magic SysRq: a BREAK on the serial line, then the key you type (h lists them)"
            onClick={() => {
              client
                .call('console.write', { vm, data: '', break: true })
                .catch((error) =>
                  terminalRef.current?.write(`\r\n\x1b[31m[BREAK: ${describeError(error)}]\x1b[0m\r\n`),
                );
              terminalRef.current?.focus();
            }}
          >
            Send BREAK
          </button>
        )}
        <button
          type="button"
          onClick={() =>
            terminalRef.current && saveText(`${vm}-console.txt`, terminalText(terminalRef.current))
          }
        >
          Save text
        </button>
      </div>
      <section className="console" ref={box} aria-label="Serial console" />
    </>
  );
}
