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

test('a removed mapping is not answered from the lookup cache; addresses above 4 GiB work', () => {
  const bus = new Bus();
  const dev = recorder();
  const base = 0x1_c000_0000;
  bus.register(base, 0x4000, dev, 'bar0');
  bus.register(0xc000_0000, 0x1000, recorder(), 'bar1');
  const data = new Uint8Array(8);
  assert.equal(bus.read(base + 0x10, data), true, 'an 8-byte access');
  assert.equal(readValue(data.subarray(0, 4)), 0x110);
  assert.equal(bus.read(base + 0x20, new Uint8Array(4)), true, 'second access: cached mapping');
  bus.unregister(base, dev);
  const untouched = Uint8Array.of(1, 2, 3, 4);
  assert.equal(bus.read(base + 0x20, untouched), false);
  assert.deepEqual([...untouched], [1, 2, 3, 4], 'unclaimed reads leave the buffer to the caller');
  assert.equal(bus.read(0xc000_0ffc, new Uint8Array(4)), true);
});

test('mappings registered out of order are found by binary search', () => {
  const bus = new Bus();
  const bases = [0x70, 0x3f8, 0x60, 0xcf8, 0x64, 0x600, 0x604, 0x608, 0xcfc];
  for (const b of bases) bus.register(b, b === 0x3f8 ? 8 : 4, recorder(), `at${b.toString(16)}`);
  assert.deepEqual(
    bus.describe().map((m) => m.base),
    [...bases].sort((a, b) => a - b),
  );
  for (const b of bases) assert.equal(bus.write(b + 1, Uint8Array.of(0)), true, `0x${b.toString(16)}`);
  assert.equal(bus.read(0x68, new Uint8Array(1)), false);
});
