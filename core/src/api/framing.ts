// Newline-delimited JSON framing: one message per line, with a cap on the size of a line so a
// client cannot make the daemon buffer without limit.

export class MessageTooLargeError extends Error {
  override name = 'MessageTooLargeError';
}

/** Splits a byte stream into lines (without the newline). */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxLineBytes: number) {}

  /** The complete lines in `chunk` plus what came before; throws MessageTooLargeError past the cap. */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, start);
      if (newline === -1) break;
      const part = chunk.subarray(start, newline);
      if (this.pendingBytes + part.length > this.maxLineBytes) throw this.tooLarge();
      if (this.pending.length > 0) {
        this.pending.push(part);
        lines.push(Buffer.concat(this.pending).toString('utf8'));
        this.pending = [];
        this.pendingBytes = 0;
      } else {
        lines.push(part.toString('utf8'));
      }
      start = newline + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      if (this.pendingBytes + rest.length > this.maxLineBytes) throw this.tooLarge();
      // Copy: the socket may reuse the chunk's memory.
      this.pending.push(Buffer.from(rest));
      this.pendingBytes += rest.length;
    }
    return lines;
  }

  private tooLarge(): MessageTooLargeError {
    this.pending = [];
    this.pendingBytes = 0;
    return new MessageTooLargeError(`a message is longer than ${this.maxLineBytes} bytes`);
  }
}

/**
 * Calls `onLine` for each non-empty line `socket` receives; a line past `maxLineBytes` ends the
 * connection (the peer is misbehaving, and nothing after it can be framed again).
 */
export function readLines(
  socket: { on(event: 'data', listener: (chunk: Buffer) => void): unknown; destroy(): void },
  maxLineBytes: number,
  onLine: (line: string) => void,
): void {
  const splitter = new LineSplitter(maxLineBytes);
  socket.on('data', (chunk: Buffer) => {
    let lines: string[];
    try {
      lines = splitter.push(chunk);
    } catch {
      socket.destroy();
      return;
    }
    for (const line of lines) if (line.trim()) onLine(line);
  });
}

export function encodeMessage(message: unknown): string {
  return `${JSON.stringify(message)}\n`;
}
