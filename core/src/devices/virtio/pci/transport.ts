// The virtio 1.x PCI transport ("modern" only, §4.1): a type-0 function with one 64-bit memory
// BAR holding the common configuration, ISR, device configuration and notification regions and
// the MSI-X table and PBA, each announced by a vendor-specific capability. The transport owns
// feature negotiation, device status and reset, queue configuration and interrupts; the device
// model (VirtioDevice) only sees a context once the driver sets DRIVER_OK.
//
// Kicks: while the device is active (DRIVER_OK), each queue's notify address has an ioeventfd
// through `kicks` (on KVM), so a guest's notify write never stops its vCPU; a write that reaches
// the BAR as an MMIO exit (no ioeventfd, or an access of another size) kicks the same way. As in
// QEMU and Firecracker, they are registered when the driver activates the device, not when the
// BAR is placed: KVM frees the I/O bus a registration replaces only after an SRCU grace period
// (~12 ms here), which a VM whose guest never uses the device would wait for at its exit.
// Interrupts: MSI-X vectors (irqfd on KVM), or INTx with the ISR register when the driver did not
// enable MSI-X.

import type { GuestMemory } from '../../../memory/guest-memory.js';
import type { BusDevice } from '../../bus.js';
import { fillValue, readValue } from '../../bus.js';
import type { IrqLine } from '../../irq.js';
import { type BarMapping, PciConfigSpace } from '../../pci/config-space.js';
import { type MsiSink, Msix } from '../../pci/msix.js';
import { Queue, type QueueState } from '../queue/index.js';
import {
  featureBit,
  hasFeature,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_VERSION_1,
  type VirtioDevice,
  type VirtioDeviceContext,
} from './device.js';

export const VIRTIO_PCI_VENDOR = 0x1af4;
/** Modern device IDs are 0x1040 + the virtio device type. */
export const VIRTIO_PCI_DEVICE_BASE = 0x1040;

export const STATUS_ACKNOWLEDGE = 1;
export const STATUS_DRIVER = 2;
export const STATUS_DRIVER_OK = 4;
export const STATUS_FEATURES_OK = 8;
export const STATUS_NEEDS_RESET = 0x40;
export const STATUS_FAILED = 0x80;

export const NO_VECTOR = 0xffff;

/** Layout of BAR 0. */
export const BAR_INDEX = 0;
export const COMMON_OFFSET = 0x0000;
export const COMMON_SIZE = 0x38;
export const ISR_OFFSET = 0x1000;
export const DEVICE_CONFIG_OFFSET = 0x2000;
export const NOTIFY_OFFSET = 0x3000;
export const NOTIFY_MULTIPLIER = 4;
export const MSIX_TABLE_OFFSET = 0x4000;
export const MSIX_PBA_OFFSET = 0x5000;
export const BAR_SIZE = 0x8000;
const REGION_SIZE = 0x1000;

/** virtio_pci_cap cfg_type values. */
export const CAP_COMMON = 1;
export const CAP_NOTIFY = 2;
export const CAP_ISR = 3;
export const CAP_DEVICE = 4;
export const CAP_PCI_CFG = 5;
const PCI_CAP_ID_VENDOR = 0x09;

/** Common configuration register offsets (§4.1.4.3). */
export const Common = {
  deviceFeatureSelect: 0x00,
  deviceFeature: 0x04,
  driverFeatureSelect: 0x08,
  driverFeature: 0x0c,
  configMsixVector: 0x10,
  numQueues: 0x12,
  deviceStatus: 0x14,
  configGeneration: 0x15,
  queueSelect: 0x16,
  queueSize: 0x18,
  queueMsixVector: 0x1a,
  queueEnable: 0x1c,
  queueNotifyOff: 0x1e,
  queueDesc: 0x20,
  queueDriver: 0x28,
  queueDevice: 0x30,
} as const;

const ISR_QUEUE = 1;
const ISR_CONFIG = 2;

/** Registers an ioeventfd for a notify address; returns the function that removes it. */
export interface KickRegistrar {
  register(address: number, length: number, onKick: () => void): () => void;
}

export interface VirtioPciOptions {
  memory: GuestMemory;
  /** MSI-X delivery (KvmMsiSink on KVM). */
  msi: MsiSink;
  /** INTx line, used while the driver has not enabled MSI-X. */
  intx?: IrqLine;
  /** The GSI reported in the interrupt line register. */
  intxLine?: number;
  kicks?: KickRegistrar;
  log?: (message: string) => void;
}

/** A transport's state for snapshots: plain JSON (features as a hex string). */
export interface VirtioPciState {
  pciConfig: number[];
  msix: { table: number[]; pending: number[] };
  status: number;
  driverFeatures: string;
  deviceFeatureSelect: number;
  driverFeatureSelect: number;
  queueSelect: number;
  configGeneration: number;
  configVector: number;
  queueVectors: number[];
  isr: number;
  queues: QueueState[];
}

export interface TransportMetrics {
  kicks: number;
  kicksByExit: number;
  interrupts: number;
  resets: number;
  needsReset: number;
}

export class VirtioPciTransport {
  readonly config: PciConfigSpace;
  readonly msix: Msix;
  readonly queues: Queue[];
  readonly metrics: TransportMetrics = { kicks: 0, kicksByExit: 0, interrupts: 0, resets: 0, needsReset: 0 };

  private readonly offered: bigint;
  private driverFeatures = 0n;
  private deviceFeatureSelect = 0;
  private driverFeatureSelect = 0;
  private status = 0;
  private configGeneration = 0;
  private queueSelect = 0;
  private configVector = NO_VECTOR;
  private readonly queueVectors: number[];
  private isr = 0;
  private active = false;
  private unregisterKicks: (() => void)[] = [];
  private bar: BarMapping = undefined;
  /** Where the ioeventfds are now (undefined: none). */
  private kicksAt: number | undefined;
  private readonly log: (message: string) => void;

  constructor(
    readonly device: VirtioDevice,
    private readonly options: VirtioPciOptions,
  ) {
    this.log = options.log ?? ((message) => console.warn(message));
    this.offered =
      device.deviceFeatures |
      featureBit(VIRTIO_F_VERSION_1) |
      featureBit(VIRTIO_F_EVENT_IDX) |
      featureBit(VIRTIO_F_INDIRECT_DESC);
    this.queues = device.queueSizes.map((maxSize) => new Queue(options.memory, { maxSize }));
    this.queueVectors = this.queues.map(() => NO_VECTOR);

    this.config = new PciConfigSpace({
      vendor: VIRTIO_PCI_VENDOR,
      device: VIRTIO_PCI_DEVICE_BASE + device.deviceType,
      classCode: device.pciClass,
      revision: 1,
      subsystemVendor: VIRTIO_PCI_VENDOR,
      subsystem: 0x40,
      interruptPin: options.intx ? 1 : 0,
      interruptLine: options.intxLine ?? 0,
    });
    this.config.addBar({ index: BAR_INDEX, kind: 'mem64', size: BAR_SIZE, device: this.barDevice });
    this.addVirtioCap(CAP_COMMON, COMMON_OFFSET, COMMON_SIZE);
    this.addVirtioCap(CAP_ISR, ISR_OFFSET, 1);
    this.addVirtioCap(CAP_DEVICE, DEVICE_CONFIG_OFFSET, Math.max(device.configSize, 1));
    this.addVirtioCap(CAP_NOTIFY, NOTIFY_OFFSET, NOTIFY_MULTIPLIER * this.queues.length, NOTIFY_MULTIPLIER);
    this.addPciCfgWindow();
    this.msix = new Msix(
      this.config,
      this.queues.length + 1,
      { bar: BAR_INDEX, tableOffset: MSIX_TABLE_OFFSET, pbaOffset: MSIX_PBA_OFFSET },
      options.msi,
    );
    this.config.onBarChange = (index, _before, after) => {
      if (index !== BAR_INDEX) return;
      this.bar = after;
      this.placeKicks();
    };
    this.config.onCommandChange = () => this.updateIntx();
  }

  get deviceStatus(): number {
    return this.status;
  }

  get negotiatedFeatures(): bigint {
    return this.driverFeatures;
  }

  /** The whole of BAR 0 (the PCI root maps it where the guest put the BAR). */
  readonly barDevice: BusDevice = {
    read: (offset, data) => this.barRead(offset, data),
    write: (offset, data) => this.barWrite(offset, data),
  };

  /** Snapshot (take it with the vCPUs paused and the device quiesced: no request in flight). */
  state(): VirtioPciState {
    return {
      pciConfig: this.config.state(),
      msix: this.msix.state(),
      status: this.status,
      driverFeatures: this.driverFeatures.toString(16),
      deviceFeatureSelect: this.deviceFeatureSelect,
      driverFeatureSelect: this.driverFeatureSelect,
      queueSelect: this.queueSelect,
      configGeneration: this.configGeneration,
      configVector: this.configVector,
      queueVectors: [...this.queueVectors],
      isr: this.isr,
      queues: this.queues.map((q) => q.state()),
    };
  }

  /**
   * Loads a snapshot into a freshly built transport for the same device. Returns why it cannot
   * be used (the transport is then reset), or undefined. A device that was running is
   * re-activated and looks at its queues at once.
   */
  restore(state: VirtioPciState): string | undefined {
    if (state.queues.length !== this.queues.length || state.queueVectors.length !== this.queues.length) {
      return `state has ${state.queues.length} queues, ${this.device.name} has ${this.queues.length}`;
    }
    if (!/^[0-9a-f]{1,16}$/.test(state.driverFeatures)) return `bad feature word '${state.driverFeatures}'`;
    try {
      this.config.restore(state.pciConfig);
      this.msix.restore(state.msix);
    } catch (error) {
      this.reset();
      return (error as Error).message;
    }
    this.driverFeatures = BigInt(`0x${state.driverFeatures}`);
    this.deviceFeatureSelect = state.deviceFeatureSelect >>> 0;
    this.driverFeatureSelect = state.driverFeatureSelect >>> 0;
    this.queueSelect = state.queueSelect & 0xffff;
    this.configGeneration = state.configGeneration & 0xff;
    this.configVector = this.validVector(state.configVector);
    state.queueVectors.forEach((v, i) => {
      this.queueVectors[i] = this.validVector(v);
    });
    this.isr = state.isr & 3;
    for (const [i, queueState] of state.queues.entries()) {
      const problem = this.queues[i]!.restore(queueState);
      if (problem !== undefined) {
        this.reset();
        return `queue ${i}: ${problem}`;
      }
    }
    this.status = state.status & 0xff;
    this.active = false;
    this.placeKicks();
    if (this.status & STATUS_DRIVER_OK && !(this.status & STATUS_NEEDS_RESET)) this.activate();
    this.updateIntx();
    return undefined;
  }

  /** The VM is ending. */
  close(): void {
    this.active = false;
    this.placeKicks();
    this.device.close();
  }

  private addVirtioCap(type: number, offset: number, length: number, multiplier?: number): void {
    const body = new Uint8Array(multiplier === undefined ? 14 : 18);
    const v = new DataView(body.buffer);
    v.setUint8(0, body.length + 2); // cap_len counts the id/next header
    v.setUint8(1, type);
    v.setUint8(2, BAR_INDEX);
    v.setUint32(6, offset, true);
    v.setUint32(10, length, true);
    if (multiplier !== undefined) v.setUint32(14, multiplier, true);
    this.config.addCapability(PCI_CAP_ID_VENDOR, body);
  }

  /**
   * VIRTIO_PCI_CAP_PCI_CFG: a window into BAR 0 through config space, for drivers that cannot map
   * the BAR (firmware). The driver writes bar, offset and length, then reads or writes the data.
   */
  private addPciCfgWindow(): void {
    const body = new Uint8Array(18);
    body[0] = 20; // cap_len
    body[1] = CAP_PCI_CFG;
    const writeMask = new Uint8Array(18);
    writeMask[2] = 0xff; // bar
    writeMask.fill(0xff, 6, 18); // offset, length, pci_cfg_data
    let at = 0;
    const field = (bodyOffset: number, size: number) => this.config.configRead(at + 2 + bodyOffset, size);
    const window = (): { offset: number; length: number } | undefined => {
      const offset = field(6, 4);
      const length = field(10, 4);
      if (field(2, 1) !== BAR_INDEX || ![1, 2, 4].includes(length)) return undefined;
      if (offset % length !== 0 || offset + length > BAR_SIZE) return undefined;
      return { offset, length };
    };
    const DATA = 16; // pci_cfg_data, relative to the capability
    at = this.config.addCapability(PCI_CAP_ID_VENDOR, body, {
      writeMask,
      onWrite: (offset, size) => {
        if (offset + size <= DATA || offset >= DATA + 4) return;
        const w = window();
        if (!w) return;
        this.barWrite(w.offset, this.config.bytes.slice(at + DATA, at + DATA + w.length));
      },
      onRead: (offset, size) => {
        if (offset + size <= DATA || offset >= DATA + 4) return;
        const w = window();
        if (!w) return;
        const data = new Uint8Array(w.length);
        this.barRead(w.offset, data);
        this.config.bytes.set(data, at + DATA);
      },
    });
  }

  /** Puts the ioeventfds where the BAR is while the device is active, and removes them otherwise. */
  private placeKicks(): void {
    const kicks = this.options.kicks;
    const wanted = kicks && this.active && this.bar ? this.bar.address : undefined;
    if (wanted === this.kicksAt) return;
    for (const unregister of this.unregisterKicks) unregister();
    this.unregisterKicks = [];
    this.kicksAt = wanted;
    if (!kicks || wanted === undefined) return;
    this.queues.forEach((_queue, index) => {
      const address = wanted + NOTIFY_OFFSET + NOTIFY_MULTIPLIER * index;
      try {
        this.unregisterKicks.push(kicks.register(address, 2, () => this.kick(index, false)));
      } catch (error) {
        // The MMIO exit path still delivers the kick, only slower.
        this.log(`${this.device.name}: no ioeventfd for queue ${index}: ${(error as Error).message}`);
      }
    });
  }

  private barRead(offset: number, data: Uint8Array): void {
    const region = offset - (offset % REGION_SIZE);
    const inner = offset - region;
    switch (region) {
      case COMMON_OFFSET:
        fillValue(data, this.commonRead(inner, data.length));
        return;
      case ISR_OFFSET:
        fillValue(data, inner === 0 ? this.readIsr() : 0);
        return;
      case DEVICE_CONFIG_OFFSET:
        if (inner + data.length > this.device.configSize) data.fill(0);
        else this.device.readConfig(inner, data);
        return;
      case MSIX_TABLE_OFFSET:
        this.msix.tableDevice.read(inner, data);
        return;
      case MSIX_PBA_OFFSET:
        this.msix.pbaDevice.read(inner, data);
        return;
      default:
        data.fill(0);
    }
  }

  private barWrite(offset: number, data: Uint8Array): void {
    const region = offset - (offset % REGION_SIZE);
    const inner = offset - region;
    switch (region) {
      case COMMON_OFFSET:
        this.commonWrite(inner, data.length, readValue(data));
        return;
      case DEVICE_CONFIG_OFFSET:
        if (inner + data.length <= this.device.configSize) this.device.writeConfig(inner, data);
        return;
      case NOTIFY_OFFSET: {
        const index = Math.floor(inner / NOTIFY_MULTIPLIER);
        if (index < this.queues.length) this.kick(index, true);
        return;
      }
      case MSIX_TABLE_OFFSET:
        this.msix.tableDevice.write(inner, data);
        return;
      default:
      // ISR and PBA are read-only.
    }
  }

  private get selectedQueue(): Queue | undefined {
    return this.queues[this.queueSelect];
  }

  private commonRead(offset: number, size: number): number {
    // A register read at its own offset and size; 64-bit fields also as two dwords.
    const q = this.selectedQueue;
    const half = (value: number, high: boolean) => (high ? Math.floor(value / 2 ** 32) : value % 2 ** 32);
    switch (offset) {
      case Common.deviceFeatureSelect:
        return this.deviceFeatureSelect;
      case Common.deviceFeature:
        return this.deviceFeatureSelect > 1
          ? 0
          : Number((this.offered >> BigInt(32 * this.deviceFeatureSelect)) & 0xffff_ffffn);
      case Common.driverFeatureSelect:
        return this.driverFeatureSelect;
      case Common.driverFeature:
        return this.driverFeatureSelect > 1
          ? 0
          : Number((this.driverFeatures >> BigInt(32 * this.driverFeatureSelect)) & 0xffff_ffffn);
      case Common.configMsixVector:
        return this.configVector;
      case Common.numQueues:
        return this.queues.length;
      case Common.deviceStatus:
        if (size === 1) return this.status;
        // A dword read at 0x14 covers status, generation and queue_select.
        return this.status | (this.configGeneration << 8) | (this.queueSelect << 16);
      case Common.configGeneration:
        return this.configGeneration;
      case Common.queueSelect:
        return this.queueSelect;
      case Common.queueSize:
        return q ? q.size : 0;
      case Common.queueMsixVector:
        return q ? this.queueVectors[this.queueSelect]! : NO_VECTOR;
      case Common.queueEnable:
        return q?.ready ? 1 : 0;
      case Common.queueNotifyOff:
        return q ? this.queueSelect : 0;
      case Common.queueDesc:
      case Common.queueDesc + 4:
        return q ? half(q.descTableAddress, offset !== Common.queueDesc) : 0;
      case Common.queueDriver:
      case Common.queueDriver + 4:
        return q ? half(q.availRingAddress, offset !== Common.queueDriver) : 0;
      case Common.queueDevice:
      case Common.queueDevice + 4:
        return q ? half(q.usedRingAddress, offset !== Common.queueDevice) : 0;
      default:
        return 0;
    }
  }

  private commonWrite(offset: number, size: number, value: number): void {
    const q = this.selectedQueue;
    const setHalf = (current: number, high: boolean) => {
      if (size === 8) return value;
      const low = current % 2 ** 32;
      const hi = Math.floor(current / 2 ** 32);
      return high ? (value >>> 0) * 2 ** 32 + low : hi * 2 ** 32 + (value >>> 0);
    };
    switch (offset) {
      case Common.deviceFeatureSelect:
        this.deviceFeatureSelect = value >>> 0;
        return;
      case Common.driverFeatureSelect:
        this.driverFeatureSelect = value >>> 0;
        return;
      case Common.driverFeature: {
        if (this.status & STATUS_FEATURES_OK || this.driverFeatureSelect > 1) return;
        const shift = BigInt(32 * this.driverFeatureSelect);
        this.driverFeatures =
          (this.driverFeatures & ~(0xffff_ffffn << shift)) | (BigInt(value >>> 0) << shift);
        return;
      }
      case Common.configMsixVector:
        this.configVector = this.validVector(value);
        return;
      case Common.deviceStatus:
        this.writeStatus(value & 0xff);
        return;
      case Common.queueSelect:
        this.queueSelect = value & 0xffff;
        return;
      case Common.queueSize:
        if (q && !q.ready) q.size = value & 0xffff;
        return;
      case Common.queueMsixVector:
        if (q) this.queueVectors[this.queueSelect] = this.validVector(value);
        return;
      case Common.queueEnable:
        if (q && (value & 0xffff) === 1 && !q.ready) this.enableQueue(q, this.queueSelect);
        return;
      case Common.queueDesc:
      case Common.queueDesc + 4:
        if (q) q.descTableAddress = setHalf(q.descTableAddress, offset !== Common.queueDesc);
        return;
      case Common.queueDriver:
      case Common.queueDriver + 4:
        if (q) q.availRingAddress = setHalf(q.availRingAddress, offset !== Common.queueDriver);
        return;
      case Common.queueDevice:
      case Common.queueDevice + 4:
        if (q) q.usedRingAddress = setHalf(q.usedRingAddress, offset !== Common.queueDevice);
        return;
      default:
      // Read-only or unknown: ignored.
    }
  }

  /** A vector number the table has, else NO_VECTOR (the driver reads that back as a refusal). */
  private validVector(value: number): number {
    const v = value & 0xffff;
    return v < this.msix.vectors ? v : NO_VECTOR;
  }

  private enableQueue(q: Queue, index: number): void {
    q.eventIdx = hasFeature(this.driverFeatures, VIRTIO_F_EVENT_IDX);
    q.indirectDescriptors = hasFeature(this.driverFeatures, VIRTIO_F_INDIRECT_DESC);
    const problem = q.enable();
    if (problem !== undefined) this.setNeedsReset(`queue ${index}: ${problem}`);
  }

  private writeStatus(value: number): void {
    if (value === 0) {
      this.reset();
      return;
    }
    let next = value | (this.status & STATUS_NEEDS_RESET);
    if (next & STATUS_FEATURES_OK && !(this.status & STATUS_FEATURES_OK)) {
      const problem = this.checkFeatures();
      if (problem) {
        this.log(`${this.device.name}: features refused: ${problem}`);
        next &= ~STATUS_FEATURES_OK;
      }
    }
    const wasOk = (this.status & STATUS_DRIVER_OK) !== 0;
    this.status = next;
    if (next & STATUS_DRIVER_OK && !wasOk && !(next & STATUS_FAILED)) {
      if (!(next & STATUS_FEATURES_OK)) {
        this.setNeedsReset('DRIVER_OK without FEATURES_OK');
        return;
      }
      this.activate();
    }
  }

  private checkFeatures(): string | undefined {
    const extra = this.driverFeatures & ~this.offered;
    if (extra !== 0n) return `driver accepted features the device did not offer (0x${extra.toString(16)})`;
    if (!hasFeature(this.driverFeatures, VIRTIO_F_VERSION_1))
      return 'VIRTIO_F_VERSION_1 not accepted (legacy drivers are not supported)';
    return undefined;
  }

  private activate(): void {
    if (this.active || this.status & STATUS_NEEDS_RESET) return;
    this.active = true;
    this.placeKicks();
    const context: VirtioDeviceContext = {
      memory: this.options.memory,
      queues: this.queues,
      features: this.driverFeatures,
      interruptQueue: (index) => this.interruptQueue(index),
      configChanged: () => this.configChanged(),
      needsReset: (reason) => this.setNeedsReset(reason),
      log: (message) => this.log(`${this.device.name}: ${message}`),
    };
    try {
      this.device.activate(context);
    } catch (error) {
      this.setNeedsReset(`activation failed: ${(error as Error).message}`);
    }
  }

  private kick(index: number, byExit: boolean): void {
    this.metrics.kicks++;
    if (byExit) this.metrics.kicksByExit++;
    if (!this.active || this.status & STATUS_NEEDS_RESET) return;
    try {
      this.device.queueNotify(index);
    } catch (error) {
      // A device bug, not the guest's: keep the VM running, stop this device.
      this.setNeedsReset(`queue ${index} handler failed: ${(error as Error).stack ?? error}`);
    }
  }

  private interruptQueue(index: number): void {
    this.metrics.interrupts++;
    if (this.msix.enabled) {
      this.msix.notify(this.queueVectors[index] ?? NO_VECTOR);
      return;
    }
    this.isr |= ISR_QUEUE;
    this.updateIntx();
  }

  private configChanged(): void {
    this.configGeneration = (this.configGeneration + 1) & 0xff;
    if (!(this.status & STATUS_DRIVER_OK)) return;
    if (this.msix.enabled) {
      this.msix.notify(this.configVector);
      return;
    }
    this.isr |= ISR_CONFIG;
    this.updateIntx();
  }

  /** DEVICE_NEEDS_RESET: the device stops until the driver resets it. */
  setNeedsReset(reason: string): void {
    this.log(`${this.device.name}: needs reset: ${reason}`);
    if (this.status & STATUS_NEEDS_RESET) return;
    this.metrics.needsReset++;
    this.status |= STATUS_NEEDS_RESET;
    if (this.active) {
      this.active = false;
      this.placeKicks();
      this.device.reset();
    }
    this.configChanged();
  }

  private readIsr(): number {
    const value = this.isr;
    this.isr = 0;
    this.updateIntx();
    return value;
  }

  private updateIntx(): void {
    const asserted = this.isr !== 0 && !this.msix.enabled;
    this.config.setInterruptStatus(asserted);
    this.options.intx?.set(asserted && !this.config.intxDisabled);
  }

  private reset(): void {
    this.metrics.resets++;
    if (this.active) this.device.reset();
    this.active = false;
    this.placeKicks();
    for (const q of this.queues) q.reset();
    this.queueVectors.fill(NO_VECTOR);
    this.configVector = NO_VECTOR;
    this.driverFeatures = 0n;
    this.deviceFeatureSelect = 0;
    this.driverFeatureSelect = 0;
    this.queueSelect = 0;
    this.status = 0;
    this.isr = 0;
    this.updateIntx();
  }
}
