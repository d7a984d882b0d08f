// The addon's device I/O helpers (native/src/io.c), typed: fd readiness on the event loop and
// fallocate on libuv's thread pool.
import { native } from '../../../kvm/native.js';

interface IoAddon {
  watchFd(fd: number, callback: (status: number) => void): object;
  unwatchFd(handle: object): void;
  fallocate(fd: number, mode: number, offset: number, length: number): Promise<void>;
  readonly FALLOC_FL_KEEP_SIZE: number;
  readonly FALLOC_FL_PUNCH_HOLE: number;
  readonly FALLOC_FL_ZERO_RANGE: number;
}

function addon(): IoAddon {
  return native() as unknown as IoAddon;
}

/** Calls `onReadable` on this thread's event loop each time `fd` polls readable; returns the stop function. */
export function watchFd(fd: number, onReadable: () => void): () => void {
  const io = addon();
  const handle = io.watchFd(fd, () => onReadable());
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    io.unwatchFd(handle);
  };
}

/** Deallocates [offset, offset+length) of a file, keeping its size: reads of the range give zeros. */
export function punchHole(fd: number, offset: number, length: number): Promise<void> {
  const io = addon();
  return io.fallocate(fd, io.FALLOC_FL_PUNCH_HOLE | io.FALLOC_FL_KEEP_SIZE, offset, length);
}

/** Zeroes [offset, offset+length) keeping the blocks allocated (FALLOC_FL_ZERO_RANGE). */
export function zeroRange(fd: number, offset: number, length: number): Promise<void> {
  const io = addon();
  return io.fallocate(fd, io.FALLOC_FL_ZERO_RANGE | io.FALLOC_FL_KEEP_SIZE, offset, length);
}
