// Block I/O through an io_uring (native/src/uring.c): the requests of one event-loop turn go to
// the kernel in a few io_uring_enter calls (SUBMIT_GROUP), and completions come back through an
// eventfd watched on the event loop, each to a plain callback (no promise on the common path).
// Compared with libuv's pool this costs no thread hand-offs per request (the pool wakes a worker
// for each request and the loop again for each result), which matters most on busy hosts where
// every wake-up waits for a CPU.
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

/**
 * Requests queued in one event-loop turn go to the kernel in groups of this many, the rest at
 * the end of the turn: the disk starts on the first ones while later ones are still parsed. A
 * group costs one io_uring_enter; measured on the bench guest's 32-deep bursts, groups of 8
 * served more IOPS than one submission per turn (which left the disk idle while the whole
 * burst was parsed) or per request.
 */
const SUBMIT_GROUP = 8;

const errnoNames = new Map(Object.entries(constants.errno).map(([name, value]) => [value, name]));

/** An Error like Node's fs errors: `code` is the errno name. */
function errnoError(what: string, errno: number): NodeJS.ErrnoException {
  const code = errnoNames.get(errno) ?? `E${errno}`;
  return Object.assign(new Error(`${what}: ${code}`), { code, errno: -errno });
}

/** Called with the bytes moved, or -errno. */
export type UringCompletion = (result: number) => void;

export class IoUring {
  /** By tag: the completion of each request in flight (tags are reused once reaped). */
  private readonly completionsByTag: (UringCompletion | undefined)[] = [];
  private readonly freeTags: number[] = [];
  private pendingCount = 0;
  /** Requests that found the ring full: queued again as completions make room. */
  private backlog: (() => boolean)[] = [];
  private submitScheduled = false;
  /** io_uring_enter calls that submitted something, and reap passes (for benchmarks and tests). */
  readonly counters = { submits: 0, reaps: 0 };
  /** Queued in this turn and not yet handed to the kernel. */
  private unsubmitted = 0;
  private readonly reaped = new Int32Array(2 * 256);
  private readonly watch: object;
  private closed = false;
  /**
   * Runs after each batch of completions, still in the same event-loop turn and before the
   * batch's submission: a device completes its used ring there, takes what the driver queued
   * meanwhile, and decides once whether to interrupt.
   */
  afterCompletions: (() => void) | undefined;

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
    return this.pendingCount;
  }

  /**
   * Queues a read (or write) into `buffers` at `position`; `done` gets the byte count or -errno
   * from the event loop, never synchronously. The ring goes to the kernel at the end of this turn.
   */
  transfer(write: boolean, fd: number, buffers: Uint8Array[], position: number, done: UringCompletion): void {
    this.request(write ? OP_WRITE : OP_READ, fd, buffers, position, done);
  }

  read(fd: number, buffers: Uint8Array[], position: number): Promise<number> {
    return this.promise(OP_READ, fd, buffers, position, 'read');
  }

  write(fd: number, buffers: Uint8Array[], position: number): Promise<number> {
    return this.promise(OP_WRITE, fd, buffers, position, 'write');
  }

  async fdatasync(fd: number): Promise<void> {
    await this.promise(OP_FDATASYNC, fd, [], 0, 'fdatasync');
  }

  /** Call with nothing in flight (quiesce first): the kernel may otherwise still write to buffers. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.addon.unwatchFd(this.watch);
    this.addon.uringClose(this.handle);
  }

  private promise(
    op: number,
    fd: number,
    buffers: Uint8Array[],
    position: number,
    what: string,
  ): Promise<number> {
    return new Promise((resolve, reject) =>
      this.request(op, fd, buffers, position, (result) =>
        result < 0 ? reject(errnoError(what, -result)) : resolve(result),
      ),
    );
  }

  private request(
    op: number,
    fd: number,
    buffers: Uint8Array[],
    position: number,
    done: UringCompletion,
  ): void {
    if (this.closed) {
      queueMicrotask(() => done(-constants.errno.EBADF));
      return;
    }
    const tag = this.freeTags.pop() ?? this.completionsByTag.length;
    this.completionsByTag[tag] = done;
    this.pendingCount++;
    if (this.pendingCount === 1) this.addon.refFd(this.watch, true);
    const queue = () => this.addon.uringQueue(this.handle, op, fd, buffers, position, tag);
    if (this.backlog.length > 0 || !queue()) this.backlog.push(queue);
    if (++this.unsubmitted >= SUBMIT_GROUP) this.submit();
    else this.scheduleSubmit();
  }

  private submit(): void {
    this.unsubmitted = 0;
    if (this.closed) return;
    if (this.addon.uringSubmit(this.handle) > 0) this.counters.submits++;
  }

  /** One io_uring_enter at the end of this turn for what the groups left over. */
  private scheduleSubmit(): void {
    if (this.submitScheduled) return;
    this.submitScheduled = true;
    queueMicrotask(() => {
      this.submitScheduled = false;
      this.submit();
    });
  }

  private reap(): void {
    if (this.closed) return;
    this.counters.reaps++;
    for (;;) {
      const n = this.addon.uringReap(this.handle, this.reaped);
      for (let i = 0; i < n; i++) {
        const tag = this.reaped[2 * i]!;
        const done = this.completionsByTag[tag];
        if (!done) continue;
        this.completionsByTag[tag] = undefined;
        this.freeTags.push(tag);
        this.pendingCount--;
        done(this.reaped[2 * i + 1]!);
      }
      if (n < this.reaped.length / 2) break;
    }
    while (this.backlog.length > 0 && this.backlog[0]!()) this.backlog.shift();
    // Also when the kernel took fewer submissions than offered last time.
    if (this.backlog.length > 0 || this.pendingCount > 0) this.scheduleSubmit();
    this.afterCompletions?.();
    if (this.pendingCount === 0) this.addon.refFd(this.watch, false);
  }
}
