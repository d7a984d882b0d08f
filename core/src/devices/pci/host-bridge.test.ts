import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fillValue, readValue } from '../bus.js';
import { FixedConfigSpace, PciRoot } from './host-bridge.js';

function configRead(root: PciRoot, slot: number, register: number, size: number): number {
  const address = new Uint8Array(4);
  fillValue(address, (0x8000_0000 | (slot << 11) | (register & 0xfc)) >>> 0);
  root.addressPort.write(0, address);
  const data = new Uint8Array(size);
  root.dataPort.read(register & 3, data);
  return readValue(data);
}

test('the host bridge answers at 00:00.0 with its ids and class', () => {
  const root = new PciRoot();
  assert.equal(configRead(root, 0, 0, 4), 0x1237_8086);
  assert.equal(configRead(root, 0, 0x0a, 2), 0x0600);
  assert.equal(configRead(root, 0, 0x02, 2), 0x1237, 'word read at a byte offset');
  assert.equal(configRead(root, 0, 0x01, 1), 0x80);
});

test('empty slots and other buses read all-ones', () => {
  const root = new PciRoot();
  assert.equal(configRead(root, 5, 0, 2), 0xffff);
  const address = new Uint8Array(4);
  fillValue(address, 0x8001_0000);
  root.addressPort.write(0, address);
  const data = new Uint8Array(4);
  root.dataPort.read(0, data);
  assert.equal(readValue(data), 0xffff_ffff);
});

test('without the enable bit nothing is selected; the address reads back', () => {
  const root = new PciRoot();
  root.addressPort.write(0, Uint8Array.of(0, 0, 0, 0));
  const data = new Uint8Array(2);
  root.dataPort.read(0, data);
  assert.equal(readValue(data), 0xffff);
  root.addressPort.write(0, Uint8Array.of(0x04, 0x08, 0x00, 0x80));
  const back = new Uint8Array(4);
  root.addressPort.read(0, back);
  assert.equal(readValue(back), 0x8000_0804);
});

test('attached functions are reached and slots are checked', () => {
  const root = new PciRoot();
  root.attach(3, new FixedConfigSpace({ vendor: 0x1af4, device: 0x1042, classCode: 0x010000 }));
  assert.equal(configRead(root, 3, 0, 4), 0x1042_1af4);
  assert.throws(() => root.attach(3, new FixedConfigSpace({ vendor: 1, device: 1, classCode: 0 })), /taken/);
  assert.throws(
    () => root.attach(0, new FixedConfigSpace({ vendor: 1, device: 1, classCode: 0 })),
    /outside/,
  );
});
