import assert from 'node:assert/strict';
import { test } from 'node:test';
import { activateDevice } from '../pci/test-context.js';
import { VirtioRng } from './device.js';

test('each writable buffer is filled with random bytes and the driver is interrupted', () => {
  const device = new VirtioRng();
  const h = activateDevice(device);
  const driver = h.drivers[0]!;
  const a = driver.addChain([], [64]);
  const b = driver.addChain([], [16, 48], { indirect: true });
  device.queueNotify(0);
  const used = [driver.takeUsed(), driver.takeUsed()];
  assert.deepEqual(used, [
    { id: a.head, len: 64 },
    { id: b.head, len: 64 },
  ]);
  const bytes = driver.memory.read(a.writable[0]!.addr, 64);
  assert.ok(new Set(bytes).size > 16, 'not all zeros or a constant');
  assert.deepEqual(h.interrupts, [0]);
  assert.equal(device.metrics.bytes, 128);
});

test('a chain with only readable buffers is completed with length 0', () => {
  const device = new VirtioRng();
  const driver = activateDevice(device).drivers[0]!;
  const c = driver.addChain([new Uint8Array(8)], []);
  device.queueNotify(0);
  assert.deepEqual(driver.takeUsed(), { id: c.head, len: 0 });
});
