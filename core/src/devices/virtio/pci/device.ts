// What a virtio device model gives the PCI transport, and what the transport gives it back.

import type { GuestMemory } from '../../../memory/guest-memory.js';
import type { Queue } from '../queue/index.js';

export const VIRTIO_ID_NET = 1;
export const VIRTIO_ID_BLOCK = 2;
export const VIRTIO_ID_CONSOLE = 3;
export const VIRTIO_ID_RNG = 4;

/** Feature bits every Vireo device offers (virtio 1.x §6). */
export const VIRTIO_F_INDIRECT_DESC = 28n;
export const VIRTIO_F_EVENT_IDX = 29n;
export const VIRTIO_F_VERSION_1 = 32n;

export function featureBit(bit: bigint | number): bigint {
  return 1n << BigInt(bit);
}

export function hasFeature(features: bigint, bit: bigint | number): boolean {
  return (features & featureBit(bit)) !== 0n;
}

/** Handed to a device when the driver sets DRIVER_OK. */
export interface VirtioDeviceContext {
  readonly memory: GuestMemory;
  /** One per queue the device declared; those the driver did not enable are not ready. */
  readonly queues: readonly Queue[];
  /** The features the driver accepted. */
  readonly features: bigint;
  /** Interrupts the driver for queue `index` (call after queue.needsNotification() said so). */
  interruptQueue(index: number): void;
  /** The device configuration changed (the transport bumps config_generation and interrupts). */
  configChanged(): void;
  /** The device cannot go on until the driver resets it: sets DEVICE_NEEDS_RESET with a log line. */
  needsReset(reason: string): void;
  log(message: string): void;
}

export interface VirtioDevice {
  /** Virtio device ID (VIRTIO_ID_*). */
  readonly deviceType: number;
  /** For logs: "virtio-blk vda". */
  readonly name: string;
  /** The maximum size of each queue; their number is the device's queue count. */
  readonly queueSizes: readonly number[];
  /** Device-specific feature bits offered (the transport adds VERSION_1, EVENT_IDX, INDIRECT_DESC). */
  readonly deviceFeatures: bigint;
  /** Bytes of device-specific configuration. */
  readonly configSize: number;
  /** PCI class code (24-bit) to present. */
  readonly pciClass: number;
  readConfig(offset: number, data: Uint8Array): void;
  writeConfig(offset: number, data: Uint8Array): void;
  /** DRIVER_OK: start serving the queues (kicks may have arrived before: look at every queue). */
  activate(context: VirtioDeviceContext): void;
  /** The driver kicked queue `index` (after activate). */
  queueNotify(index: number): void;
  /** Device reset: forget the context, drop in-flight work (its completions must not reach the rings). */
  reset(): void;
  /** The VM is ending: release files and timers. */
  close(): void;
  /** Resolves once no request is in flight (the vCPUs are paused; nothing new arrives). */
  quiesce?(): Promise<void>;
}
