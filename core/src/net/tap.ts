// Bridged networking through a tap device: /dev/net/tun with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR,
// so frames carry virtio-net headers both ways and the kernel does the checksum and segmentation
// work the guest offloads. The fd is non-blocking and watched on the event loop; reading stops
// while the guest has no room (the kernel's queue then drops, as a full NIC would).
//
// When the interface disappears (`ip link del`) reads fail with EBADFD: the link goes down and the
// backend looks for the interface again every second, reattaching when it is back.

import { closeSync, existsSync, readSync, writevSync } from 'node:fs';
import { watchFd } from '../devices/virtio/pci/native-io.js';
import type { GuestOffloads, NetBackend, NetBackendEvents } from './backend.js';
import { netAddon } from './native-net.js';

/** virtio_net_hdr_v1: the header size virtio 1.x drivers use. */
const VNET_HDR_SIZE = 12;
/** A 64 KiB GSO frame plus its Ethernet and virtio-net headers. */
const READ_BUFFER = 65_536 + 14 + VNET_HDR_SIZE;
/** Frames read per wake-up before the loop lets others run. */
const READ_BATCH = 64;
const REATTACH_POLL_MS = 1000;

export class TapError extends Error {
  override name = 'TapError';
}

export interface TapOptions {
  log(line: string): void;
}

function interfaceExists(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`);
}

/** Opens the tap `name` (creating it when it does not exist and we may), with errors people can act on. */
function openTap(name: string): number {
  const addon = netAddon();
  const existed = interfaceExists(name);
  let fd: number;
  try {
    fd = addon.tapOpen(name, addon.IFF_TAP | addon.IFF_NO_PI | addon.IFF_VNET_HDR).fd;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const create = `create it first: ip tuntap add dev ${name} mode tap user ${process.env.USER ?? '$USER'}`;
    if (code === 'ENOENT')
      throw new TapError(`cannot use tap ${name}: /dev/net/tun is missing (modprobe tun)`);
    if (code === 'EPERM' || code === 'EACCES') {
      throw new TapError(
        existed
          ? `cannot attach to tap ${name}: ${code} (it belongs to another user; ${create})`
          : `cannot create tap ${name}: ${code} (creating one needs CAP_NET_ADMIN; ${create})`,
      );
    }
    if (code === 'EBUSY') throw new TapError(`tap ${name} is in use by another program`);
    if (code === 'EINVAL') throw new TapError(`${name} exists and is not a tap device with vnet headers`);
    throw new TapError(`cannot open tap ${name}: ${(error as Error).message}`);
  }
  try {
    addon.tapSetVnetHeaderSize(fd, VNET_HDR_SIZE);
  } catch (error) {
    closeSync(fd);
    throw new TapError(`tap ${name}: ${(error as Error).message}`);
  }
  return fd;
}

export class TapBackend implements NetBackend {
  readonly vnetHeader = true;
  readonly writable = true;
  readonly description: string;
  private fd: number | undefined;
  private stopWatch: (() => void) | undefined;
  private events: NetBackendEvents | undefined;
  private paused = false;
  private offloads: GuestOffloads | undefined;
  private reattachTimer: NodeJS.Timeout | undefined;
  private readonly buffer = Buffer.allocUnsafe(READ_BUFFER);

  private constructor(
    readonly name: string,
    fd: number,
    private readonly options: TapOptions,
  ) {
    this.description = `tap ${name}`;
    this.fd = fd;
  }

  /** Attaches to tap `name`, creating it where privileges allow; TapError says why not. */
  static open(name: string, options: TapOptions): TapBackend {
    const existed = interfaceExists(name);
    const backend = new TapBackend(name, openTap(name), options);
    if (!existed)
      options.log(`created tap ${name}; it goes away with the VM (bring it up or add it to a bridge)`);
    return backend;
  }

  get up(): boolean {
    return this.fd !== undefined;
  }

  start(events: NetBackendEvents): void {
    this.events = events;
    this.watch();
  }

  send(pieces: readonly Uint8Array[]): boolean {
    if (this.fd === undefined) return false;
    try {
      writevSync(this.fd, pieces as Uint8Array[]);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') return false; // the kernel's queue is full: dropped there, as on a wire
      this.vanished(code);
      return false;
    }
  }

  pauseReceive(): void {
    this.paused = true;
    this.stopWatch?.();
    this.stopWatch = undefined;
  }

  resumeReceive(): void {
    this.paused = false;
    this.watch();
  }

  setGuestOffloads(offloads: GuestOffloads): void {
    this.offloads = offloads;
    if (this.fd === undefined) return;
    const addon = netAddon();
    let flags = 0;
    if (offloads.csum) {
      flags |= addon.TUN_F_CSUM;
      // Segmentation offloads need checksum offload (the kernel refuses them alone).
      if (offloads.tso4) flags |= addon.TUN_F_TSO4;
      if (offloads.tso6) flags |= addon.TUN_F_TSO6;
      if (offloads.ecn && (offloads.tso4 || offloads.tso6)) flags |= addon.TUN_F_TSO_ECN;
    }
    addon.tapSetOffload(this.fd, flags);
  }

  close(): void {
    clearTimeout(this.reattachTimer);
    this.reattachTimer = undefined;
    this.events = undefined;
    this.detach();
  }

  private watch(): void {
    if (this.fd === undefined || this.stopWatch || this.paused || !this.events) return;
    this.stopWatch = watchFd(this.fd, () => this.readFrames());
    this.readFrames();
  }

  private readFrames(): void {
    for (let i = 0; i < READ_BATCH && !this.paused && this.fd !== undefined && this.events; i++) {
      let n: number;
      try {
        n = readSync(this.fd, this.buffer, 0, READ_BUFFER, null);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') return;
        this.vanished(code);
        return;
      }
      if (n > VNET_HDR_SIZE) this.events.frame(this.buffer.subarray(0, n));
    }
  }

  private detach(): void {
    this.stopWatch?.();
    this.stopWatch = undefined;
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /** The interface went away under us: link down, and look for it again. */
  private vanished(code: string | undefined): void {
    if (this.fd === undefined) return;
    this.detach();
    this.events?.link(false, `tap ${this.name} is gone (${code}); waiting for it to come back`);
    this.scheduleReattach();
  }

  private scheduleReattach(): void {
    this.reattachTimer = setTimeout(() => this.reattach(), REATTACH_POLL_MS);
    this.reattachTimer.unref();
  }

  private reattach(): void {
    if (!this.events) return;
    if (!interfaceExists(this.name)) {
      this.scheduleReattach();
      return;
    }
    try {
      this.fd = openTap(this.name);
    } catch (error) {
      this.options.log(`${(error as Error).message}; trying again`);
      this.scheduleReattach();
      return;
    }
    if (this.offloads) this.setGuestOffloads(this.offloads);
    this.events.link(true, `tap ${this.name} is back`);
    this.watch();
  }
}
