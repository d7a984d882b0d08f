// Guest console output straight to file descriptor 1. Creating process.stdout loads Node's stream
// and socket modules (~2 ms here) before a VM's first byte can reach the terminal; its writes to
// a terminal, a file or a pipe are synchronous on Linux anyway, so writing the descriptor directly
// keeps the order with anything written through process.stdout.
import { writeSync } from 'node:fs';

const pause = new Int32Array(new SharedArrayBuffer(4));

/** Writes all of `bytes` to stdout; dropped once the reader has gone (EPIPE). */
export function writeStdout(bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += writeSync(1, bytes, offset);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EPIPE') return;
      if (code !== 'EAGAIN') throw error;
      Atomics.wait(pause, 0, 0, 1); // a non-blocking descriptor whose reader is behind
    }
  }
}
