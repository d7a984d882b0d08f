// virtio-blk over a raw image file. Reads, writes and FLUSH (fdatasync) go straight between the
// file and live guest-RAM views through an io_uring (io-uring.ts), or libuv's thread pool where
// io_uring is unavailable; discard and write-zeroes use fallocate on the pool. Several requests
// are in flight at once and complete in any order, as virtio allows. Ring reads and writes
// complete from the reap callback without a promise; after each batch the queue is drained again
// and one interrupt check covers the batch. The whole path: README.md beside this file.

import { closeSync, constants, fdatasync, fstatSync, openSync, read, readv, write, writev } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { featureBit, VIRTIO_ID_BLOCK, type VirtioDevice, type VirtioDeviceContext } from '../pci/device.js';
import { punchHole } from '../pci/native-io.js';
import type { DescriptorChain } from '../queue/index.js';
import { drainQueue } from '../queue/index.js';
import { IoUring } from './io-uring.js';
import {
  BLOCK_ID_BYTES,
  type BlockRange,
  type BlockRequest,
  BlockStatus,
  inDisk,
  parseBlockRequest,
  SECTOR_SIZE,
} from './request.js';

export const VIRTIO_BLK_F_SIZE_MAX = 1;
export const VIRTIO_BLK_F_SEG_MAX = 2;
export const VIRTIO_BLK_F_RO = 5;
export const VIRTIO_BLK_F_BLK_SIZE = 6;
export const VIRTIO_BLK_F_FLUSH = 9;
export const VIRTIO_BLK_F_DISCARD = 13;
export const VIRTIO_BLK_F_WRITE_ZEROES = 14;

const QUEUE_SIZE = 256;
/** Requests in flight at once; more wait in the ring. */
const MAX_IN_FLIGHT = 64;
const MAX_SEGMENTS = 256;
const MAX_DISCARD_SEGMENTS = 16;
/** Per discard/write-zeroes segment (sectors): 4 GiB - 512. */
const MAX_RANGE_SECTORS = 0x7f_ffff;
const CONFIG_SIZE = 60;
/** The host's page: hole punching below it only zeroes, so the guest is told to align to it. */
const DISCARD_ALIGNMENT_SECTORS = 4096 / SECTOR_SIZE;
const ZERO_CHUNK = new Uint8Array(1 << 20);
const EINVAL = osConstants.errno.EINVAL;

export interface BlockOptions {
  path: string;
  readOnly?: boolean;
  /** GET_ID answer (serial), up to 20 bytes; default derived from the file name. */
  serial?: string;
  /** For logs: "vda". */
  name?: string;
  /**
   * How often to look at the image's size while the driver runs (ms; 0: never). A host-side
   * `truncate -s` then reaches the guest as a capacity change. Default 2000.
   */
  capacityPollMs?: number;
  /**
   * Read and write with O_DIRECT (QEMU's cache=none): the host's page cache neither holds guest
   * data twice nor hides the disk's speed. A request whose buffers O_DIRECT cannot take (not
   * aligned to the disk's logical block) goes through the page cache instead.
   */
  direct?: boolean;
  /** How reads, writes and flushes reach the file: io_uring (default where the kernel allows it) or libuv's pool. */
  engine?: 'io_uring' | 'pool';
}

export class BlockMetrics {
  reads = 0;
  writes = 0;
  flushes = 0;
  discards = 0;
  writeZeroes = 0;
  getIds = 0;
  bytesRead = 0;
  bytesWritten = 0;
  ioErrors = 0;
  unsupported = 0;
  malformed = 0;
  maxInFlight = 0;
  /** Requests O_DIRECT refused (unaligned buffers) that went through the page cache. */
  directFallbacks = 0;
}

/** What a snapshot keeps of a block device (the queues are the transport's). */
export interface BlockState {
  path: string;
  readOnly: boolean;
  capacitySectors: number;
}

function encodeSerial(serial: string): Uint8Array {
  const bytes = new TextEncoder().encode(serial).subarray(0, BLOCK_ID_BYTES);
  const out = new Uint8Array(BLOCK_ID_BYTES);
  out.set(bytes);
  return out;
}

export class VirtioBlock implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_BLOCK;
  readonly queueSizes = [QUEUE_SIZE];
  readonly configSize = CONFIG_SIZE;
  readonly pciClass = 0x01_80_00; // mass storage, other
  readonly deviceFeatures: bigint;
  readonly name: string;
  readonly readOnly: boolean;
  readonly metrics = new BlockMetrics();

  private fd: number;
  /** The same file opened with O_DIRECT (options.direct), or -1. */
  private directFd = -1;
  private capacity: number;
  private readonly serial: Uint8Array;
  /** The ring requests go through, or undefined for libuv's pool. */
  private readonly ring: IoUring | undefined;
  /** 'io_uring', or 'pool' with the reason io_uring is not used. */
  readonly engine: string;
  private context: VirtioDeviceContext | undefined;
  /** Bumped by reset: completions of an older generation are dropped. */
  private generation = 0;
  private inFlight = 0;
  private paused = false;
  private interruptPending = false;
  private idleWaiters: (() => void)[] = [];
  private capacityTimer: NodeJS.Timeout | undefined;

  constructor(readonly options: BlockOptions) {
    this.readOnly = options.readOnly ?? false;
    this.name = `virtio-blk ${options.name ?? options.path}`;
    const mode = this.readOnly ? constants.O_RDONLY : constants.O_RDWR;
    this.fd = openSync(options.path, mode);
    if (options.direct) {
      try {
        this.directFd = openSync(options.path, mode | constants.O_DIRECT);
      } catch (error) {
        closeSync(this.fd);
        throw new Error(`${this.name}: cannot open with O_DIRECT: ${(error as Error).message}`);
      }
    }
    this.capacity = this.statCapacity();
    const base = options.path.split('/').pop() ?? 'disk';
    this.serial = encodeSerial(options.serial ?? base);
    const ring = options.engine === 'pool' ? 'libuv pool requested' : IoUring.open();
    this.ring = typeof ring === 'string' ? undefined : ring;
    this.engine = typeof ring === 'string' ? `pool (${ring})` : 'io_uring';
    if (this.ring) this.ring.afterCompletions = () => this.afterRingCompletions();
    let features =
      featureBit(VIRTIO_BLK_F_SEG_MAX) | featureBit(VIRTIO_BLK_F_BLK_SIZE) | featureBit(VIRTIO_BLK_F_FLUSH);
    if (this.readOnly) features |= featureBit(VIRTIO_BLK_F_RO);
    else features |= featureBit(VIRTIO_BLK_F_DISCARD) | featureBit(VIRTIO_BLK_F_WRITE_ZEROES);
    this.deviceFeatures = features;
  }

  /** The ring's io_uring_enter submissions and reap passes (undefined on libuv's pool). */
  get ringCounters(): { readonly submits: number; readonly reaps: number } | undefined {
    return this.ring?.counters;
  }

  /** Disk size in 512-byte sectors (a partial last sector is not exposed). */
  get capacitySectors(): number {
    return this.capacity;
  }

  private statCapacity(): number {
    return Math.floor(fstatSync(this.fd).size / SECTOR_SIZE);
  }

  readConfig(offset: number, data: Uint8Array): void {
    const config = new Uint8Array(CONFIG_SIZE);
    const v = new DataView(config.buffer);
    v.setBigUint64(0, BigInt(this.capacity), true);
    v.setUint32(12, MAX_SEGMENTS - 2, true); // seg_max: the header and status take two descriptors
    v.setUint32(20, SECTOR_SIZE, true); // blk_size
    v.setUint32(36, MAX_RANGE_SECTORS, true); // max_discard_sectors
    v.setUint32(40, MAX_DISCARD_SEGMENTS, true); // max_discard_seg
    v.setUint32(44, DISCARD_ALIGNMENT_SECTORS, true); // discard_sector_alignment
    v.setUint32(48, MAX_RANGE_SECTORS, true); // max_write_zeroes_sectors
    v.setUint32(52, MAX_DISCARD_SEGMENTS, true); // max_write_zeroes_seg
    v.setUint8(56, 1); // write_zeroes_may_unmap
    data.set(config.subarray(offset, offset + data.length));
  }

  writeConfig(): void {
    // Nothing writable without CONFIG_WCE.
  }

  activate(context: VirtioDeviceContext): void {
    this.context = context;
    const poll = this.options.capacityPollMs ?? 2000;
    if (poll > 0) {
      this.capacityTimer = setInterval(() => this.refreshCapacity(), poll);
      this.capacityTimer.unref(); // never what keeps a VM host process alive
    }
    this.drain();
    this.scheduleInterrupt();
  }

  queueNotify(_index: number): void {
    this.drain();
    this.scheduleInterrupt();
  }

  reset(): void {
    this.context = undefined;
    clearInterval(this.capacityTimer);
    this.capacityTimer = undefined;
    this.generation++;
    this.paused = false;
    this.interruptPending = false;
  }

  close(): void {
    this.reset();
    if (this.fd >= 0) {
      // In-flight pool requests hold the fd number: closing now could let them touch a reused fd.
      const fds = [this.fd, this.directFd].filter((fd) => fd >= 0);
      this.fd = -1;
      this.directFd = -1;
      const ring = this.ring;
      const closeAll = () => {
        ring?.close();
        for (const fd of fds) closeSync(fd);
      };
      if (this.inFlight === 0) closeAll();
      else this.idleWaiters.push(closeAll);
    }
  }

  /** Resolves once no request is in flight (before a snapshot, with the vCPUs paused). */
  quiesce(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Re-reads the image size; when it changed, the new capacity is announced to the driver with a
   * configuration interrupt. Returns the capacity in sectors.
   */
  refreshCapacity(): number {
    if (this.fd < 0) return this.capacity;
    const now = this.statCapacity();
    if (now !== this.capacity) {
      this.capacity = now;
      this.context?.log(`capacity is now ${now} sectors`);
      this.context?.configChanged();
    }
    return now;
  }

  state(): BlockState {
    return { path: this.options.path, readOnly: this.readOnly, capacitySectors: this.capacity };
  }

  private drain(): void {
    const context = this.context;
    if (!context) return;
    const queue = context.queues[0];
    if (!queue?.ready) return;
    const outcome = drainQueue(
      queue,
      (chain) => {
        if (this.inFlight >= MAX_IN_FLIGHT) return false;
        this.start(chain, context);
        return true;
      },
      (message) => context.log(message),
    );
    this.paused = outcome.paused;
    if (outcome.fatal) context.needsReset(outcome.fatal.message);
  }

  /**
   * After a batch of io_uring completions, in the same event-loop turn: the driver has usually
   * queued new requests while the batch was completed (a polling driver refills at once), so
   * they are taken now and go to the kernel in this turn's submission instead of waiting for
   * their kick's own loop turn; then one interrupt check for the whole batch.
   */
  private afterRingCompletions(): void {
    const context = this.context;
    if (!context) return;
    try {
      this.drain();
      this.interruptIfNeeded(context);
    } catch (error) {
      // A device bug, not the guest's: stop this device, keep the VM.
      context.needsReset(`completion handler failed: ${(error as Error).stack ?? error}`);
    }
  }

  private start(chain: DescriptorChain, context: VirtioDeviceContext): void {
    const parsed = parseBlockRequest(context.memory, chain, { maxSegments: MAX_DISCARD_SEGMENTS });
    const { status } = parsed;
    if (!status) {
      this.metrics.malformed++;
      context.log(`request ${chain.headIndex}: ${(parsed.request as { reason: string }).reason}`);
      context.queues[0]!.addUsed(chain.headIndex, 0);
      return;
    }
    const request = parsed.request;
    if (request.kind === 'malformed') {
      this.metrics.malformed++;
      context.log(`request ${chain.headIndex}: ${request.reason}`);
      this.complete(chain.headIndex, status, BlockStatus.ioError, 0, this.generation);
      return;
    }
    const head = chain.headIndex;
    const generation = this.generation;
    this.inFlight++;
    if (this.inFlight > this.metrics.maxInFlight) this.metrics.maxInFlight = this.inFlight;
    if (request.kind !== 'in' && request.kind !== 'out') {
      this.settle(head, status, generation, context, this.execute(request, context));
      return;
    }
    if (!this.transferAllowed(request, context)) {
      this.complete(head, status, BlockStatus.ioError, 0, generation);
      this.scheduleInterrupt();
      this.finished();
      return;
    }
    const ring = this.ring;
    if (!ring) {
      this.settle(head, status, generation, context, this.transferRequest(request));
      return;
    }
    // The common case without a promise: one ring request, completed from the reap callback
    // (afterRingCompletions then interrupts once for the batch). Anything but the whole
    // transfer (an error, O_DIRECT refusing the buffers, a short read or write) is done again
    // through transferRequest, which knows every fallback; reads and writes are idempotent.
    const write = request.kind === 'out';
    const direct = this.directFd >= 0;
    const fd = direct ? this.directFd : this.fd;
    ring.transfer(write, fd, request.buffers, request.sector * SECTOR_SIZE, (moved) => {
      try {
        if (generation !== this.generation) {
          this.finished(); // the driver reset the device meanwhile: its buffers are no longer ours
          return;
        }
        if (moved !== request.length) {
          const refused = direct && moved === -EINVAL;
          if (refused) this.metrics.directFallbacks++;
          this.settle(head, status, generation, context, this.transferRequest(request, refused));
          return;
        }
        if (write) this.metrics.bytesWritten += moved;
        else this.metrics.bytesRead += moved;
        this.complete(head, status, BlockStatus.ok, write ? 0 : moved, generation);
        this.finished();
      } catch (error) {
        // A device bug, not the guest's: stop this device, keep the VM.
        context.needsReset(`completion of request ${head} failed: ${(error as Error).stack ?? error}`);
      }
    });
  }

  /** Completes a request when its promise settles (everything but ring reads and writes). */
  private settle(
    head: number,
    status: Uint8Array,
    generation: number,
    context: VirtioDeviceContext,
    outcome: Promise<Outcome>,
  ): void {
    outcome
      .then(
        ({ result, written }) => this.complete(head, status, result, written, generation),
        (error: NodeJS.ErrnoException) => {
          this.metrics.ioErrors++;
          if (generation === this.generation) context.log(`request ${head}: ${error.message}`);
          this.complete(head, status, BlockStatus.ioError, 0, generation);
        },
      )
      .finally(() => {
        this.scheduleInterrupt();
        this.finished();
      });
  }

  private finished(): void {
    this.inFlight--;
    if (this.inFlight === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const wake of waiters) wake();
    }
    if (this.paused) this.drain();
  }

  private complete(
    head: number,
    status: Uint8Array,
    result: number,
    written: number,
    generation: number,
  ): void {
    if (generation !== this.generation) return; // the driver reset the device meanwhile
    const queue = this.context?.queues[0];
    if (!queue?.ready) return;
    status[0] = result;
    queue.addUsed(head, written + 1);
  }

  /** One needsNotification check per event-loop turn, however many requests completed in it. */
  private scheduleInterrupt(): void {
    if (this.interruptPending) return;
    this.interruptPending = true;
    const generation = this.generation;
    setImmediate(() => {
      if (generation !== this.generation) return;
      this.interruptPending = false;
      if (this.context) this.interruptIfNeeded(this.context);
    });
  }

  /** The used ring changed: interrupt the driver unless it suppressed that (EVENT_IDX). */
  private interruptIfNeeded(context: VirtioDeviceContext): void {
    if (context.queues[0]?.needsNotification()) context.interruptQueue(0);
  }

  /** Counts a read or write and says whether it may go ahead (inside the disk; writes: not read-only). */
  private transferAllowed(request: TransferRequest, context: VirtioDeviceContext): boolean {
    const what = request.kind === 'in' ? 'read' : 'write';
    if (request.kind === 'in') this.metrics.reads++;
    else this.metrics.writes++;
    if (request.kind === 'out' && this.readOnly) return false;
    if (!inDisk(request.sector, request.length, this.capacity)) {
      context.log(`${what} past the end: sector ${request.sector} + ${request.length} bytes`);
      return false;
    }
    return true;
  }

  /**
   * A checked read or write through the general path (promises, fallbacks, short transfers);
   * `buffered`: O_DIRECT already refused these buffers, go through the page cache.
   */
  private async transferRequest(request: TransferRequest, buffered = false): Promise<Outcome> {
    const position = request.sector * SECTOR_SIZE;
    if (request.kind === 'out') {
      await this.writeAll(request.buffers, position, buffered);
      this.metrics.bytesWritten += request.length;
      return { result: BlockStatus.ok, written: 0 };
    }
    const n = await this.transfer(readv, request.buffers, position, buffered);
    if (n < request.length) zeroFrom(request.buffers, n);
    this.metrics.bytesRead += request.length;
    return { result: BlockStatus.ok, written: request.length };
  }

  private async execute(
    request: Exclude<BlockRequest, TransferRequest>,
    context: VirtioDeviceContext,
  ): Promise<Outcome> {
    const ok = { result: BlockStatus.ok, written: 0 };
    const ioError = { result: BlockStatus.ioError, written: 0 };
    switch (request.kind) {
      case 'flush':
        this.metrics.flushes++;
        if (this.readOnly) return ok;
        if (this.ring) await this.ring.fdatasync(this.fd);
        else
          await new Promise<void>((resolve, reject) =>
            fdatasync(this.fd, (e) => (e ? reject(e) : resolve())),
          );
        return ok;
      case 'get-id': {
        this.metrics.getIds++;
        let at = 0;
        for (const view of request.buffer) {
          view.set(this.serial.subarray(at, at + view.length));
          at += view.length;
        }
        return { result: BlockStatus.ok, written: at };
      }
      case 'discard':
      case 'write-zeroes': {
        if (request.kind === 'discard') this.metrics.discards++;
        else this.metrics.writeZeroes++;
        if (this.readOnly) return ioError;
        for (const range of request.ranges) {
          if (!this.rangeOk(range, context)) return ioError;
        }
        for (const range of request.ranges) await this.zero(range, request.kind === 'discard');
        return ok;
      }
      case 'unsupported':
        this.metrics.unsupported++;
        return { result: BlockStatus.unsupported, written: 0 };
    }
  }

  /** One preadv/pwritev, with O_DIRECT when open so, through the page cache where it refuses. */
  private async transfer(
    call: VectorCall,
    buffers: Uint8Array[],
    position: number,
    buffered = false,
  ): Promise<number> {
    if (this.directFd >= 0 && !buffered) {
      try {
        return await this.vectorIo(call, this.directFd, buffers, position);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EINVAL') throw error;
        this.metrics.directFallbacks++;
      }
    }
    return this.vectorIo(call, this.fd, buffers, position);
  }

  private vectorIo(call: VectorCall, fd: number, buffers: Uint8Array[], position: number): Promise<number> {
    if (!this.ring) return vectorIo(call, fd, buffers, position);
    return call === readv ? this.ring.read(fd, buffers, position) : this.ring.write(fd, buffers, position);
  }

  /** pwritev until every byte is written (short writes happen on signals and full disks). */
  private async writeAll(buffers: Uint8Array[], position: number, buffered = false): Promise<void> {
    let rest = buffers;
    let at = position;
    while (rest.length > 0) {
      let n = await this.transfer(writev, rest, at, buffered);
      if (n === 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
      at += n;
      const next: Uint8Array[] = [];
      for (const b of rest) {
        if (n >= b.length) n -= b.length;
        else {
          next.push(n > 0 ? b.subarray(n) : b);
          n = 0;
        }
      }
      rest = next;
    }
  }

  private rangeOk(range: BlockRange, context: VirtioDeviceContext): boolean {
    if (
      range.sectors > MAX_RANGE_SECTORS ||
      !inDisk(range.sector, range.sectors * SECTOR_SIZE, this.capacity)
    ) {
      context.log(
        `discard/write-zeroes range ${range.sector}+${range.sectors} is outside the disk or too long`,
      );
      return false;
    }
    return true;
  }

  /** Deallocates the range (reads give zeros); write-zeroes falls back to writing zeros. */
  private async zero(range: BlockRange, discard: boolean): Promise<void> {
    const offset = range.sector * SECTOR_SIZE;
    const length = range.sectors * SECTOR_SIZE;
    if (length === 0) return;
    try {
      await punchHole(this.fd, offset, length);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EOPNOTSUPP' && code !== 'ENOTSUP') throw error;
      if (discard) return; // discard is a hint: nothing to do where holes do not exist
      for (let done = 0; done < length; done += ZERO_CHUNK.length) {
        const n = Math.min(ZERO_CHUNK.length, length - done);
        await this.writeAll([ZERO_CHUNK.subarray(0, n)], offset + done);
      }
    }
  }
}

type TransferRequest = Extract<BlockRequest, { kind: 'in' | 'out' }>;

interface Outcome {
  /** The status byte's value. */
  result: number;
  /** Bytes written to the driver's buffers (before the status byte). */
  written: number;
}

type VectorCall = (
  fd: number,
  buffers: readonly NodeJS.ArrayBufferView[],
  position: number,
  callback: (error: NodeJS.ErrnoException | null, bytes: number) => void,
) => void;

function vectorIo(call: VectorCall, fd: number, buffers: Uint8Array[], position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const done = (e: NodeJS.ErrnoException | null, n: number) => (e ? reject(e) : resolve(n));
    // One buffer (most requests): plain pread/pwrite, which Node dispatches more cheaply.
    const only = buffers.length === 1 ? buffers[0]! : undefined;
    if (only && call === readv) read(fd, only, 0, only.length, position, done);
    else if (only && call === writev) write(fd, only, 0, only.length, position, done);
    else call(fd, buffers, position, done);
  });
}

/** Zeroes the buffers from byte `from` on (a read that met the end of a file that shrank). */
function zeroFrom(buffers: Uint8Array[], from: number): void {
  let skip = from;
  for (const b of buffers) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    b.fill(0, skip);
    skip = 0;
  }
}
