// virtio-net (virtio 1.x §5.1): one receive and one transmit queue plus the control queue, a MAC
// address, link status and mergeable receive buffers, over a NetBackend (core/src/net). Offloads
// are offered only when the backend carries virtio-net headers and does the work (tap with
// IFF_VNET_HDR); passt's stream carries plain frames, so with it none are offered.
//
// Receive never drops a frame because the guest is slow: when it has no buffers the frame waits
// and the backend is paused until the driver adds some. Frames arriving before the driver is up,
// while the link is down, or that the guest's receive filter rejects, are dropped (and counted).

import type { GuestOffloads, NetBackend } from '../../../net/backend.js';
import { formatMac } from '../../../net/mac.js';
import { ChainError, Reader, Writer } from '../descriptor-utils.js';
import {
  featureBit,
  hasFeature,
  VIRTIO_ID_NET,
  type VirtioDevice,
  type VirtioDeviceContext,
} from '../pci/device.js';
import { type DescriptorChain, drainQueue, type Queue, QueueError } from '../queue/index.js';
import {
  checkTransmitHeader,
  ETH_HLEN,
  NET_HDR_SIZE,
  parseNetHeader,
  type TransmitOffloads,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_GUEST_ECN,
  VIRTIO_NET_F_GUEST_TSO4,
  VIRTIO_NET_F_GUEST_TSO6,
  VIRTIO_NET_F_HOST_ECN,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_HOST_TSO6,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_STATUS,
} from './header.js';
import { RxFilter, type RxFilterState, VIRTIO_NET_ERR } from './rx-filter.js';

export const RX_QUEUE = 0;
export const TX_QUEUE = 1;
export const CTRL_QUEUE = 2;
const QUEUE_SIZE = 256;
const CTRL_QUEUE_SIZE = 64;
/** mac[6], status u16, max_virtqueue_pairs u16. */
const CONFIG_SIZE = 10;
const VIRTIO_NET_S_LINK_UP = 1;
/** The largest frame after the header: a 64 KiB TSO segment plus the Ethernet header. */
export const MAX_FRAME = 65_535 + ETH_HLEN;
/** Frames kept for the guest while it has no buffers (the backend is paused long before). */
const MAX_PENDING_RX_BYTES = 4 << 20;
/** Bad chains logged one by one before the device goes quiet about them. */
const MALFORMED_LOG_LIMIT = 16;

/** The offloads a backend that carries virtio-net headers handles (tap: the kernel does the work). */
const OFFLOAD_FEATURES =
  featureBit(VIRTIO_NET_F_CSUM) |
  featureBit(VIRTIO_NET_F_GUEST_CSUM) |
  featureBit(VIRTIO_NET_F_GUEST_TSO4) |
  featureBit(VIRTIO_NET_F_GUEST_TSO6) |
  featureBit(VIRTIO_NET_F_GUEST_ECN) |
  featureBit(VIRTIO_NET_F_HOST_TSO4) |
  featureBit(VIRTIO_NET_F_HOST_TSO6) |
  featureBit(VIRTIO_NET_F_HOST_ECN);

export class NetMetrics {
  rxFrames = 0;
  rxBytes = 0;
  /** Frames the guest's receive filter did not want. */
  rxFiltered = 0;
  /** Frames that came while the driver was not up, or the link was down. */
  rxDroppedInactive = 0;
  /** Frames larger than a non-mergeable receive buffer. */
  rxTooBig = 0;
  /** Frames dropped because the guest held no buffers for too long (the backend forced it). */
  rxOverflow = 0;
  txFrames = 0;
  txBytes = 0;
  /** Frames sent while the link was down. */
  txDropped = 0;
  malformed = 0;
  controlCommands = 0;
  linkChanges = 0;
}

/** What a snapshot keeps of the device (the queues are the transport's). */
export interface NetState {
  mac: string;
  linkUp: boolean;
  rxFilter: RxFilterState;
}

export interface NetOptions {
  mac: Uint8Array;
  backend: NetBackend;
  /** The link went up or down: shown to the user (a log line in `vireo run`, an event in the daemon). */
  onLinkChange?(up: boolean, reason: string): void;
  /** For logs before the driver is up. */
  log?(message: string): void;
}

export class VirtioNet implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_NET;
  readonly name = 'virtio-net';
  readonly queueSizes = [QUEUE_SIZE, QUEUE_SIZE, CTRL_QUEUE_SIZE];
  readonly configSize = CONFIG_SIZE;
  readonly pciClass = 0x02_00_00; // network controller, Ethernet
  readonly deviceFeatures: bigint;
  readonly metrics = new NetMetrics();

  private readonly backend: NetBackend;
  private readonly filter: RxFilter;
  private context: VirtioDeviceContext | undefined;
  private linkUp: boolean;
  private mergeable = false;
  private txOffloads: TransmitOffloads = { csum: false, tso4: false, tso6: false, ecn: false };
  /** Frames waiting for receive buffers (copies). */
  private pendingRx: Uint8Array[] = [];
  private pendingRxBytes = 0;
  /** Receive chains popped but not yet filled (a frame spanning several needs them all first). */
  private held: DescriptorChain[] = [];
  private heldBytes = 0;
  private rxInterruptPending = false;
  private receivePaused = false;
  /** The VM is paused: frames wait (the backend is paused), nothing is sent. */
  private stopped = false;
  private malformedLogged = 0;

  constructor(private readonly options: NetOptions) {
    if (options.mac.length !== 6) throw new RangeError('a MAC address is 6 bytes');
    this.backend = options.backend;
    this.filter = new RxFilter(options.mac.slice());
    this.linkUp = this.backend.up;
    let features =
      featureBit(VIRTIO_NET_F_MAC) |
      featureBit(VIRTIO_NET_F_STATUS) |
      featureBit(VIRTIO_NET_F_MRG_RXBUF) |
      featureBit(VIRTIO_NET_F_CTRL_VQ) |
      featureBit(VIRTIO_NET_F_CTRL_RX) |
      featureBit(VIRTIO_NET_F_CTRL_MAC_ADDR);
    if (this.backend.vnetHeader) features |= OFFLOAD_FEATURES;
    this.deviceFeatures = features;
    this.backend.start({
      frame: (frame) => this.receive(frame),
      link: (up, reason) => this.setLink(up, reason),
      writable: () => this.transmit(),
    });
  }

  get link(): boolean {
    return this.linkUp;
  }

  readConfig(offset: number, data: Uint8Array): void {
    const config = new Uint8Array(CONFIG_SIZE);
    config.set(this.filter.mac, 0);
    const v = new DataView(config.buffer);
    v.setUint16(6, this.linkUp ? VIRTIO_NET_S_LINK_UP : 0, true);
    v.setUint16(8, 1, true); // max_virtqueue_pairs (meaningful only with MQ)
    data.set(config.subarray(offset, offset + data.length));
  }

  writeConfig(): void {
    // Read-only in virtio 1.x: the MAC changes through the control queue.
  }

  activate(context: VirtioDeviceContext): void {
    this.context = context;
    const has = (bit: number) => hasFeature(context.features, bit);
    this.mergeable = has(VIRTIO_NET_F_MRG_RXBUF);
    this.txOffloads = {
      csum: has(VIRTIO_NET_F_CSUM),
      tso4: has(VIRTIO_NET_F_HOST_TSO4),
      tso6: has(VIRTIO_NET_F_HOST_TSO6),
      ecn: has(VIRTIO_NET_F_HOST_ECN),
    };
    const offloads: GuestOffloads = {
      csum: has(VIRTIO_NET_F_GUEST_CSUM),
      tso4: has(VIRTIO_NET_F_GUEST_TSO4),
      tso6: has(VIRTIO_NET_F_GUEST_TSO6),
      ecn: has(VIRTIO_NET_F_GUEST_ECN),
    };
    this.backend.setGuestOffloads?.(offloads);
    this.transmit();
    this.control();
    this.deliver();
  }

  queueNotify(index: number): void {
    if (index === RX_QUEUE) this.deliver();
    else if (index === TX_QUEUE) this.transmit();
    else if (index === CTRL_QUEUE) this.control();
  }

  reset(): void {
    this.context = undefined;
    this.held = [];
    this.heldBytes = 0;
    this.dropPending();
    this.filter.reset();
    this.filter.mac = this.options.mac.slice();
    this.mergeable = false;
  }

  /** The backend is the machine's: it outlives this device across a reboot (passt keeps running). */
  close(): void {
    this.reset();
  }

  /** The vCPUs are parking: guest RAM stays as it is until resume(); arriving frames wait. */
  pause(): void {
    this.stopped = true;
    if (!this.receivePaused) {
      this.receivePaused = true;
      this.backend.pauseReceive();
    }
  }

  resume(): void {
    this.stopped = false;
    this.transmit();
    this.deliver();
  }

  state(): NetState {
    return { mac: formatMac(this.filter.mac), linkUp: this.linkUp, rxFilter: this.filter.state() };
  }

  private log(message: string): void {
    if (this.context) this.context.log(message);
    else this.options.log?.(`${this.name}: ${message}`);
  }

  /** A chain broke the rules: counted, and logged until the guest has done it too often. */
  private malformed(what: string): void {
    this.metrics.malformed++;
    if (this.malformedLogged >= MALFORMED_LOG_LIMIT) return;
    this.malformedLogged++;
    const last =
      this.malformedLogged === MALFORMED_LOG_LIMIT ? ' (further bad requests are only counted)' : '';
    this.log(`${what}${last}`);
  }

  private setLink(up: boolean, reason: string): void {
    if (up === this.linkUp) return;
    this.linkUp = up;
    this.metrics.linkChanges++;
    if (!up) this.dropPending();
    this.options.onLinkChange?.(up, reason);
    this.context?.configChanged();
    if (up) this.transmit();
  }

  // ---- receive ----

  /** A frame from the backend (the view is only valid now). */
  private receive(frame: Uint8Array): void {
    const payload = this.backend.vnetHeader ? frame.subarray(NET_HDR_SIZE) : frame;
    if (!this.context || !this.linkUp) {
      this.metrics.rxDroppedInactive++;
      return;
    }
    if (payload.length < ETH_HLEN || payload.length > MAX_FRAME) {
      this.log(`backend frame of ${payload.length} bytes dropped`);
      return;
    }
    if (!this.filter.accepts(payload)) {
      this.metrics.rxFiltered++;
      return;
    }
    if (this.pendingRx.length === 0 && !this.stopped && this.writeFrame(frame) !== 'no-room') {
      this.scheduleRxInterrupt();
      return;
    }
    if (this.pendingRxBytes + frame.length > MAX_PENDING_RX_BYTES) {
      this.metrics.rxOverflow++;
      return;
    }
    this.pendingRx.push(frame.slice());
    this.pendingRxBytes += frame.length;
    if (!this.receivePaused) {
      this.receivePaused = true;
      this.backend.pauseReceive();
    }
  }

  /** The driver added receive buffers: hand over the frames that waited. */
  private deliver(): void {
    if (this.stopped) return;
    let wrote = false;
    while (this.pendingRx.length > 0) {
      const frame = this.pendingRx[0]!;
      if (this.writeFrame(frame) === 'no-room') break;
      wrote = true;
      this.pendingRx.shift();
      this.pendingRxBytes -= frame.length;
    }
    if (wrote) this.scheduleRxInterrupt();
    if (this.pendingRx.length === 0 && this.receivePaused) {
      this.receivePaused = false;
      this.backend.resumeReceive();
    }
  }

  private dropPending(): void {
    this.metrics.rxDroppedInactive += this.pendingRx.length;
    this.pendingRx = [];
    this.pendingRxBytes = 0;
    if (this.receivePaused) {
      this.receivePaused = false;
      this.backend.resumeReceive();
    }
  }

  /**
   * Writes one frame (header first) into receive buffers: one chain, or with mergeable buffers as
   * many as it takes (num_buffers says how many). 'no-room' when the guest has too few buffers.
   */
  private writeFrame(frame: Uint8Array): 'written' | 'dropped' | 'no-room' {
    const context = this.context;
    const queue = context?.queues[RX_QUEUE];
    if (!context || !queue?.ready) return 'no-room';
    const payload = this.backend.vnetHeader ? frame.subarray(NET_HDR_SIZE) : frame;
    const total = NET_HDR_SIZE + payload.length;
    if (this.mergeable) {
      while (this.heldBytes < total) if (!this.holdChain(queue, context)) return 'no-room';
    } else if (this.held.length === 0 && !this.holdChain(queue, context)) {
      return 'no-room';
    }
    if (!this.mergeable && this.held[0]!.writableLength < total) {
      // The guest's buffers are too small for this frame (it did not ask for big ones): the frame
      // goes, the buffer stays for the next one.
      this.metrics.rxTooBig++;
      return 'dropped';
    }
    let count = 0;
    for (let room = 0; room < total; count++) room += this.held[count]!.writableLength;
    const header = new Uint8Array(NET_HDR_SIZE);
    if (this.backend.vnetHeader) header.set(frame.subarray(0, NET_HDR_SIZE));
    header[10] = count & 0xff;
    header[11] = count >> 8;
    const chains = this.held.splice(0, count);
    let offset = 0;
    chains.forEach((chain, index) => {
      this.heldBytes -= chain.writableLength;
      const writer = Writer.fromChain(context.memory, chain);
      if (index === 0) writer.write(header);
      const n = Math.min(writer.available, payload.length - offset);
      writer.write(payload.subarray(offset, offset + n));
      offset += n;
      queue.addUsed(chain.headIndex, writer.bytesWritten);
    });
    this.metrics.rxFrames++;
    this.metrics.rxBytes += payload.length;
    return 'written';
  }

  /** Pops one usable receive chain into `held`; false when the ring has none (kicks are on). */
  private holdChain(queue: Queue, context: VirtioDeviceContext): boolean {
    for (;;) {
      const next = queue.pop();
      if (next === undefined) {
        if (queue.enableNotification()) continue; // buffers came meanwhile
        return false;
      }
      if (next instanceof QueueError) {
        this.log(`receive: ${next.toString()}`);
        if (next.fatal) {
          context.needsReset(next.message);
          return false;
        }
        queue.addUsed(next.headIndex!, 0);
        this.scheduleRxInterrupt();
        continue;
      }
      if (next.readableLength > 0 || next.writableLength < NET_HDR_SIZE) {
        this.malformed(
          `receive chain ${next.headIndex}: ${next.readableLength} readable and ${next.writableLength} writable bytes (needs only writable, at least ${NET_HDR_SIZE})`,
        );
        queue.addUsed(next.headIndex, 0);
        this.scheduleRxInterrupt();
        continue;
      }
      this.held.push(next);
      this.heldBytes += next.writableLength;
      return true;
    }
  }

  /** One needsNotification check for all the frames written in this turn. */
  private scheduleRxInterrupt(): void {
    if (this.rxInterruptPending) return;
    this.rxInterruptPending = true;
    queueMicrotask(() => {
      this.rxInterruptPending = false;
      const context = this.context;
      if (context?.queues[RX_QUEUE]?.needsNotification()) context.interruptQueue(RX_QUEUE);
    });
  }

  // ---- transmit ----

  private transmit(): void {
    const context = this.context;
    const queue = context?.queues[TX_QUEUE];
    if (!context || !queue?.ready || this.stopped) return;
    const outcome = drainQueue(
      queue,
      (chain) => {
        if (this.linkUp && !this.backend.writable) return false; // resumes on the backend's writable()
        this.sendChain(chain, context);
        queue.addUsed(chain.headIndex, 0);
        return true;
      },
      (message) => this.log(`transmit: ${message}`),
    );
    if (outcome.fatal) context.needsReset(outcome.fatal.message);
    else if (queue.needsNotification()) context.interruptQueue(TX_QUEUE);
  }

  private sendChain(chain: DescriptorChain, context: VirtioDeviceContext): void {
    if (chain.writableLength > 0) {
      this.malformed(`transmit chain ${chain.headIndex} has ${chain.writableLength} writable bytes`);
      return;
    }
    try {
      const reader = Reader.fromChain(context.memory, chain);
      // A copy: the guest may rewrite its buffer after the check.
      const headerBytes = reader.readBytes(NET_HDR_SIZE);
      const frameLength = reader.remaining;
      if (frameLength < ETH_HLEN || frameLength > MAX_FRAME) {
        this.malformed(`transmit chain ${chain.headIndex}: a ${frameLength}-byte frame`);
        return;
      }
      const problem = checkTransmitHeader(parseNetHeader(headerBytes), frameLength, this.txOffloads);
      if (problem) {
        this.malformed(`transmit chain ${chain.headIndex}: ${problem}`);
        return;
      }
      const frame = reader.views();
      const sent = this.backend.send(this.backend.vnetHeader ? [headerBytes, ...frame] : frame);
      if (sent) {
        this.metrics.txFrames++;
        this.metrics.txBytes += frameLength;
      } else {
        this.metrics.txDropped++;
      }
    } catch (error) {
      if (!(error instanceof ChainError)) throw error;
      this.malformed(`transmit chain ${chain.headIndex}: ${error.message}`);
    }
  }

  // ---- control ----

  private control(): void {
    const context = this.context;
    const queue = context?.queues[CTRL_QUEUE];
    if (!context || !queue?.ready) return;
    const macAddrSet = hasFeature(context.features, VIRTIO_NET_F_CTRL_MAC_ADDR);
    const outcome = drainQueue(
      queue,
      (chain) => {
        let written = 0;
        try {
          const reader = Reader.fromChain(context.memory, chain);
          const writer = Writer.fromChain(context.memory, chain);
          if (writer.available < 1) throw new ChainError('short-write', 'no byte for the ack');
          const ackAt = writer.splitAt(writer.available - 1);
          const klass = reader.readU8();
          const command = reader.readU8();
          this.metrics.controlCommands++;
          let ack: number;
          try {
            ack = this.filter.command(klass, command, reader, macAddrSet);
          } catch (error) {
            if (!(error instanceof ChainError)) throw error;
            this.malformed(`control command ${klass}.${command}: ${error.message}`);
            ack = VIRTIO_NET_ERR;
          }
          ackAt.writeU8(ack);
          written = 1;
        } catch (error) {
          if (!(error instanceof ChainError)) throw error;
          this.malformed(`control chain ${chain.headIndex}: ${error.message}`);
        }
        queue.addUsed(chain.headIndex, written);
        return true;
      },
      (message) => this.log(`control: ${message}`),
    );
    if (outcome.fatal) context.needsReset(outcome.fatal.message);
    else if (queue.needsNotification()) context.interruptQueue(CTRL_QUEUE);
  }
}
