import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type BarMapping,
  COMMAND_MEMORY,
  PCI_BAR0,
  PCI_CAPABILITY_POINTER,
  PCI_COMMAND,
  PCI_STATUS,
  PciConfigSpace,
} from './config-space.js';

function space(): PciConfigSpace {
  return new PciConfigSpace({
    vendor: 0x1af4,
    device: 0x1042,
    classCode: 0x018000,
    revision: 1,
    interruptPin: 1,
  });
}

test('identity registers read back and are read-only', () => {
  const s = space();
  assert.equal(s.configRead(0, 4), 0x1042_1af4);
  assert.equal(s.configRead(0x08, 4), 0x0180_0001);
  assert.equal(s.configRead(0x3d, 1), 1);
  s.configWrite(0, 4, 0xdead_beef);
  assert.equal(s.configRead(0, 4), 0x1042_1af4);
});

test('a 32-bit memory BAR sizes by writing all-ones', () => {
  const s = space();
  s.addBar({ index: 1, kind: 'mem32', size: 0x1000 });
  s.configWrite(PCI_BAR0 + 4, 4, 0xffff_ffff);
  assert.equal(s.configRead(PCI_BAR0 + 4, 4), 0xffff_f000);
  s.configWrite(PCI_BAR0 + 4, 4, 0xc000_1234);
  assert.equal(s.configRead(PCI_BAR0 + 4, 4), 0xc000_1000, 'low bits below the size are not writable');
  assert.equal(s.barAddress(1), 0xc000_1000);
});

test('a 64-bit prefetchable BAR spans two registers and reports its type bits', () => {
  const s = space();
  s.addBar({ index: 0, kind: 'mem64', size: 0x8000, prefetchable: true });
  assert.equal(s.configRead(PCI_BAR0, 4), 0b1100);
  s.configWrite(PCI_BAR0, 4, 0xffff_ffff);
  s.configWrite(PCI_BAR0 + 4, 4, 0xffff_ffff);
  assert.equal(s.configRead(PCI_BAR0, 4), 0xffff_800c);
  assert.equal(s.configRead(PCI_BAR0 + 4, 4), 0xffff_ffff);
  s.configWrite(PCI_BAR0, 4, 0x0);
  s.configWrite(PCI_BAR0 + 4, 4, 0x1);
  assert.equal(s.barAddress(0), 0x1_0000_0000);
  assert.throws(() => s.addBar({ index: 1, kind: 'mem32', size: 0x1000 }), /taken/);
});

test('BAR mappings follow the command register and moves, and are reported', () => {
  const s = space();
  s.addBar({ index: 0, kind: 'mem64', size: 0x4000 });
  const changes: [number, BarMapping, BarMapping][] = [];
  s.onBarChange = (index, before, after) => changes.push([index, before, after]);
  s.setBarAddress(0, 0xc000_0000);
  assert.equal(changes.length, 0, 'no decoding before memory space is enabled');
  s.configWrite(PCI_COMMAND, 2, COMMAND_MEMORY);
  assert.deepEqual(changes.pop(), [0, undefined, { address: 0xc000_0000, size: 0x4000 }]);
  assert.deepEqual(s.barPlacements(), [
    { index: 0, space: 'memory', address: 0xc000_0000, size: 0x4000, device: undefined },
  ]);
  // Sizing with decoding on (some guests do): all-ones is no placement.
  s.configWrite(PCI_BAR0, 4, 0xffff_ffff);
  s.configWrite(PCI_BAR0 + 4, 4, 0xffff_ffff);
  assert.equal(s.barMapping(0), undefined);
  s.configWrite(PCI_BAR0, 4, 0xc001_0000);
  s.configWrite(PCI_BAR0 + 4, 4, 0);
  assert.deepEqual(s.barMapping(0), { address: 0xc001_0000, size: 0x4000 });
  s.configWrite(PCI_COMMAND, 2, 0);
  assert.deepEqual(changes.at(-1), [0, { address: 0xc001_0000, size: 0x4000 }, undefined]);
});

test('capabilities form a list from 0x34 and honour their write masks', () => {
  const s = space();
  assert.equal(s.configRead(PCI_STATUS, 2) & 0x10, 0);
  const writes: number[] = [];
  const a = s.addCapability(0x09, Uint8Array.of(4, 1, 2, 3));
  const b = s.addCapability(0x11, new Uint8Array(10), {
    writeMask: Uint8Array.of(0, 0xc0),
    onWrite: (o) => writes.push(o),
  });
  assert.equal(s.configRead(PCI_STATUS, 2) & 0x10, 0x10);
  assert.equal(s.configRead(PCI_CAPABILITY_POINTER, 1), a);
  assert.equal(s.configRead(a, 1), 0x09);
  assert.equal(s.configRead(a + 1, 1), b);
  assert.equal(s.configRead(b + 1, 1), 0, 'the list ends');
  assert.equal(b % 4, 0);
  s.configWrite(b + 2, 2, 0xffff);
  assert.equal(s.configRead(b + 2, 2), 0xc000);
  assert.deepEqual(writes, [2]);
  s.configWrite(a + 4, 2, 0xffff);
  assert.equal(s.configRead(a + 4, 2), 0x0302, 'read-only capability body');
  assert.equal(s.configRead(a, 4), 0x0104_0000 | (b << 8) | 0x09);
});

test('misaligned or oversized accesses read all-ones and write nothing', () => {
  const s = space();
  assert.equal(s.configRead(0x01, 2), 0xffff);
  assert.equal(s.configRead(0xfe, 4), 0xffff_ffff);
  s.configWrite(PCI_COMMAND + 1, 2, 0xffff);
  assert.equal(s.configRead(PCI_COMMAND, 2), 0);
});
