import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Bus, type BusDevice, fillValue, readValue } from './bus.js';

function recorder(): BusDevice & { writes: [number, number][] } {
  const writes: [number, number][] = [];
  return {
    writes,
    read: (offset, data) => fillValue(data, 0x100 + offset),
    write: (offset, data) => writes.push([offset, readValue(data)]),
  };
}

test('dispatches to the device with offsets from its base', () => {
  const bus = new Bus();
  const a = recorder();
  const b = recorder();
  bus.register(0x3f8, 8, a, 'com1');
  bus.register(0x60, 1, b, 'i8042');
  const data = new Uint8Array(2);
  assert.equal(bus.read(0x3fa, data), true);
  assert.equal(readValue(data), 0x102);
  assert.equal(bus.write(0x3ff, Uint8Array.of(7)), true);
  assert.deepEqual(a.writes, [[7, 7]]);
  assert.equal(bus.write(0x60, Uint8Array.of(1)), true);
  assert.deepEqual(b.writes, [[0, 1]]);
});

test('nothing mapped, or an access running past the end, is not claimed', () => {
  const bus = new Bus();
  bus.register(0x3f8, 8, recorder(), 'com1');
  assert.equal(bus.read(0x3f0, new Uint8Array(1)), false);
  assert.equal(bus.read(0x400, new Uint8Array(1)), false);
  assert.equal(bus.read(0x3fe, new Uint8Array(4)), false);
});

test('refuses overlaps and re-registers after unregister', () => {
  const bus = new Bus();
  const dev = recorder();
  bus.register(0x1000, 0x100, dev, 'bar0');
  assert.throws(() => bus.register(0x10ff, 1, recorder(), 'other'), /overlaps bar0/);
  assert.equal(bus.unregister(0x1000, dev), true);
  bus.register(0x2000, 0x100, dev, 'bar0');
  assert.equal(bus.read(0x1000, new Uint8Array(1)), false);
  assert.equal(bus.read(0x2004, new Uint8Array(4)), true);
  assert.deepEqual(bus.describe(), [{ name: 'bar0', base: 0x2000, length: 0x100 }]);
});
