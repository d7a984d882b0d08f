// Test support: a device's queues driven by TestDriver without the PCI transport, and a context
// that records interrupts, config changes and NEEDS_RESET.
import { allocateGuestRam } from '../../../kvm/kvm.js';
import { GuestMemory } from '../../../memory/guest-memory.js';
import { Queue } from '../queue/index.js';
import { layoutRings, TestDriver } from '../queue/test-driver.js';
import { featureBit, VIRTIO_F_VERSION_1, type VirtioDevice, type VirtioDeviceContext } from './device.js';

export interface DeviceHarness {
  memory: GuestMemory;
  queues: Queue[];
  drivers: TestDriver[];
  context: VirtioDeviceContext;
  interrupts: number[];
  configChanges: number;
  needsReset: string[];
  logs: string[];
}

/**
 * Lays out every queue of `device` in 4 MiB of RAM, enables them and activates the device. The RAM
 * is aligned as a machine's is, so a buffer's host address has the alignment of its guest address
 * (what O_DIRECT looks at), the same in every run.
 */
export function activateDevice(
  device: VirtioDevice,
  features = featureBit(VIRTIO_F_VERSION_1),
): DeviceHarness {
  const memory = new GuestMemory([{ gpa: 0, bytes: allocateGuestRam(4 << 20) }]);
  const queues: Queue[] = [];
  const drivers: TestDriver[] = [];
  device.queueSizes.forEach((size, index) => {
    const base = 0x10000 * (index + 1);
    const layout = layoutRings(base, size);
    const bufferBase = 0x100000 + index * 0x100000;
    const driver = new TestDriver(memory, layout, bufferBase, bufferBase + 0x100000);
    const queue = new Queue(memory, { maxSize: size });
    const problem = driver.configure(queue, { eventIdx: true, indirect: true });
    if (problem) throw new Error(problem);
    queues.push(queue);
    drivers.push(driver);
  });
  const harness: DeviceHarness = {
    memory,
    queues,
    drivers,
    interrupts: [],
    configChanges: 0,
    needsReset: [],
    logs: [],
    context: undefined as unknown as VirtioDeviceContext,
  };
  harness.context = {
    memory,
    queues,
    features,
    interruptQueue: (index) => harness.interrupts.push(index),
    configChanged: () => harness.configChanges++,
    needsReset: (reason) => harness.needsReset.push(reason),
    log: (message) => harness.logs.push(message),
  };
  device.activate(harness.context);
  return harness;
}

/** Waits (polling the event loop) until `predicate` holds, or fails after `ms`. */
export async function waitFor<T>(what: string, predicate: () => T | undefined, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = predicate();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
