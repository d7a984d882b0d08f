import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GuestMemory, GuestMemoryError } from './guest-memory.js';

function twoRegions(): GuestMemory {
  return new GuestMemory([
    { gpa: 0x1000_0000, bytes: new Uint8Array(0x1000) },
    { gpa: 0, bytes: new Uint8Array(0x2000) },
  ]);
}

describe('GuestMemory', () => {
  test('reads back what it writes, little-endian, in either region', () => {
    const mem = twoRegions();
    mem.writeU32(0x10, 0xdeadbeef);
    assert.equal(mem.readU8(0x10), 0xef);
    assert.equal(mem.readU16(0x12), 0xdead);
    mem.writeU64(0x1000_0ff8n, 0x0102030405060708n);
    assert.equal(mem.readU64(0x1000_0ff8), 0x0102030405060708n);
    assert.equal(mem.size, 0x3000);
  });

  test('refuses accesses that leave RAM or straddle a region edge', () => {
    const mem = twoRegions();
    assert.throws(() => mem.readU32(0x1ffe), GuestMemoryError);
    assert.throws(() => mem.readU8(0x2000), GuestMemoryError);
    assert.throws(() => mem.view(0x0fff_ffff, 2), GuestMemoryError);
    assert.throws(() => mem.readU64(-1), GuestMemoryError);
    assert.throws(() => mem.readU8(2n ** 64n - 1n), GuestMemoryError);
    assert.throws(() => mem.read(0, -1), GuestMemoryError);
    assert.throws(() => mem.view(0x1000_0000, 0x1001), GuestMemoryError);
    assert.equal(mem.contains(0x1000, 0x1000), true);
    assert.equal(mem.contains(0x1000, 0x1001), false);
  });

  test('views are live and reads are copies', () => {
    const mem = twoRegions();
    const view = mem.view(0x100, 4);
    const copy = mem.read(0x100, 4);
    mem.writeU32(0x100, 0x11223344);
    assert.deepEqual([...view], [0x44, 0x33, 0x22, 0x11]);
    assert.deepEqual([...copy], [0, 0, 0, 0]);
  });

  test('rejects overlapping regions', () => {
    assert.throws(
      () =>
        new GuestMemory([
          { gpa: 0, bytes: new Uint8Array(0x2000) },
          { gpa: 0x1000, bytes: new Uint8Array(0x1000) },
        ]),
      /overlap/,
    );
  });
});
