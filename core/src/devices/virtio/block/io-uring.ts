// Block I/O through an io_uring (native/src/uring.c): the requests of one queue drain go to the
// kernel in one io_uring_enter, and completions come back through an eventfd watched on the
// event loop. Compared with libuv's pool this costs no thread hand-offs per request (the pool
// wakes a worker for each request and the loop again for each result), which matters most on
// busy hosts where every wake-up waits for a CPU.
import { constants } from 'node:os';
import { native } from '../../../kvm/native.js';

interface UringAddon {
  uringCreate(entries: number): object;
  uringEventFd(handle: object): number;
  uringQueue(
    handle: object,
    op: number,
    fd: number,
    buffers: Uint8Array[],
    position: number,
    tag: number,
  ): boolean;
  uringSubmit(handle: object): number;
  uringReap(handle: object, out: Int32Array): number;
  uringClose(handle: object): void;
  watchFd(fd: number, callback: (status: number) => void): object;
  unwatchFd(handle: object): void;
  refFd(handle: object, ref: boolean): void;
}

const OP_READ = 0;
const OP_WRITE = 1;
const OP_FDATASYNC = 2;

const errnoNames = new Map(Object.entries(constants.errno).map(([name, value]) => [value, name]));

/** An Error like Node's fs errors: `code` is the errno name. */
function errnoError(what: string, errno: number): NodeJS.ErrnoException {
  const code = errnoNames.get(errno) ?? `E${errno}`;
  return Object.assign(new Error(`${what}: ${code}`), { code, errno: -errno });
}

interface Pending {
  resolve(result: number): void;
  reject(error: Error): void;
  what: string;
}

export class IoUring {
  private readonly pending = new Map<number, Pending>();
  /** Requests that found the ring full: queued again as completions make room. */
  private backlog: (() => boolean)[] = [];
  private nextTag = 0;
  private submitScheduled = false;
  private readonly completions = new Int32Array(2 * 256);
  private readonly watch: object;
  private closed = false;

  private constructor(
    private readonly addon: UringAddon,
    private readonly handle: object,
  ) {
    this.watch = addon.watchFd(addon.uringEventFd(handle), () => this.reap());
    addon.refFd(this.watch, false);
  }

  /** A ring with room for `entries` submissions, or the reason io_uring cannot be used here. */
  static open(entries = 128): IoUring | string {
    const addon = native() as unknown as UringAddon;
    try {
      return new IoUring(addon, addon.uringCreate(entries));
    } catch (error) {
      return (error as Error).message;
    }
  }

  get inFlight(): number {
    return this.pending.size;
  }

  read(fd: number, buffers: Uint8Array[], position: number): Promise<number> {
    return this.request(OP_READ, fd, buffers, position, 'read');
  }

  write(fd: number, buffers: Uint8Array[], position: number): Promise<number> {
    return this.request(OP_WRITE, fd, buffers, position, 'write');
  }

  async fdatasync(fd: number): Promise<void> {
    await this.request(OP_FDATASYNC, fd, [], 0, 'fdatasync');
  }

  /** Call with nothing in flight (quiesce first): the kernel may otherwise still write to buffers. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.addon.unwatchFd(this.watch);
    this.addon.uringClose(this.handle);
  }

  private request(
    op: number,
    fd: number,
    buffers: Uint8Array[],
    position: number,
    what: string,
  ): Promise<number> {
    if (this.closed) return Promise.reject(errnoError(what, constants.errno.EBADF));
    return new Promise((resolve, reject) => {
      const tag = this.nextTag;
      this.nextTag = (this.nextTag + 1) >>> 0;
      this.pending.set(tag, { resolve, reject, what });
      if (this.pending.size === 1) this.addon.refFd(this.watch, true);
      const queue = () => this.addon.uringQueue(this.handle, op, fd, buffers, position, tag);
      if (this.backlog.length > 0 || !queue()) this.backlog.push(queue);
      this.scheduleSubmit();
    });
  }

  /** One io_uring_enter for everything queued in this turn of the event loop. */
  private scheduleSubmit(): void {
    if (this.submitScheduled) return;
    this.submitScheduled = true;
    queueMicrotask(() => {
      this.submitScheduled = false;
      if (!this.closed) this.addon.uringSubmit(this.handle);
    });
  }

  private reap(): void {
    if (this.closed) return;
    for (;;) {
      const n = this.addon.uringReap(this.handle, this.completions);
      for (let i = 0; i < n; i++) {
        const tag = this.completions[2 * i]! >>> 0;
        const result = this.completions[2 * i + 1]!;
        const pending = this.pending.get(tag);
        if (!pending) continue;
        this.pending.delete(tag);
        if (result < 0) pending.reject(errnoError(pending.what, -result));
        else pending.resolve(result);
      }
      if (n < this.completions.length / 2) break;
    }
    while (this.backlog.length > 0 && this.backlog[0]!()) this.backlog.shift();
    if (this.backlog.length > 0 || this.pending.size > 0) this.scheduleSubmit();
    if (this.pending.size === 0) this.addon.refFd(this.watch, false);
  }
}
