// Guest console output and VMM log lines straight to file descriptors 1 and 2. Creating
// process.stdout or process.stderr loads Node's stream and socket modules (~2-3 ms here) before a
// VM's first byte or first log line can go out; their writes to a terminal, a file or a pipe are
// synchronous on Linux anyway, so writing the descriptor directly keeps the order with anything
// written through them.
import { writeSync } from 'node:fs';

let pause: Int32Array | undefined;

/** Writes all of `bytes` to `fd`; dropped once the reader has gone (EPIPE). */
function writeAll(fd: number, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += writeSync(fd, bytes, offset);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EPIPE') return;
      if (code !== 'EAGAIN') throw error;
      // A non-blocking descriptor whose reader is behind: wait a millisecond and try again.
      pause ??= new Int32Array(new SharedArrayBuffer(4));
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

export function writeStdout(bytes: Uint8Array): void {
  writeAll(1, bytes);
}

export function writeStderr(text: string): void {
  writeAll(2, Buffer.from(text));
}
