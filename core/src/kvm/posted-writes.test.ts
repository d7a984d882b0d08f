import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  POSTED_RING_SLOTS,
  PostedWriteFilter,
  PostedWriteRing,
  SPACE_MMIO,
  SPACE_PIO,
} from './posted-writes.js';

describe('posted writes', () => {
  test('the ring hands writes back in order with space, 64-bit address and data', () => {
    const ring = new PostedWriteRing();
    assert.equal(ring.post(SPACE_PIO, 0x3f8, Uint8Array.of(0x41)), 1);
    assert.equal(ring.post(SPACE_MMIO, 0x1_0000_1000, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)), 2);
    const seen: [number, number, number[]][] = [];
    assert.equal(
      ring.drain((space, address, data) => seen.push([space, address, [...data]])),
      2,
    );
    assert.deepEqual(seen, [
      [SPACE_PIO, 0x3f8, [0x41]],
      [SPACE_MMIO, 0x1_0000_1000, [1, 2, 3, 4, 5, 6, 7, 8]],
    ]);
    assert.equal(ring.pending, 0);
  });

  test('a full ring refuses, so the write is forwarded instead; draining frees it', () => {
    const ring = new PostedWriteRing();
    for (let i = 0; i < POSTED_RING_SLOTS; i++)
      assert.equal(ring.post(SPACE_PIO, i, Uint8Array.of(i & 0xff)), i + 1);
    assert.equal(ring.post(SPACE_PIO, 0, Uint8Array.of(0)), 0);
    const ports: number[] = [];
    ring.drain((_s, address) => ports.push(address));
    assert.deepEqual(
      ports,
      Array.from({ length: POSTED_RING_SLOTS }, (_, i) => i),
    );
    // Wraps around the slot array.
    assert.equal(ring.post(SPACE_PIO, 7, Uint8Array.of(7)), 1);
    ring.drain((_s, address) => assert.equal(address, 7));
  });

  test('a handler that throws does not wedge the ring', () => {
    const ring = new PostedWriteRing();
    ring.post(SPACE_PIO, 1, Uint8Array.of(1));
    ring.post(SPACE_PIO, 2, Uint8Array.of(2));
    assert.throws(() =>
      ring.drain(() => {
        throw new Error('device bug');
      }),
    );
    assert.equal(ring.pending, 1);
  });

  test('the filter admits configured ports and whole accesses inside MMIO ranges', () => {
    const filter = new PostedWriteFilter({ pio: [0x80], mmio: [{ start: 0xd000_0000, length: 0x1000 }] });
    assert.equal(filter.port(0x80), true);
    assert.equal(filter.port(0x81), false);
    assert.equal(filter.mmioAddress(0xd000_0ffc, 4), true);
    assert.equal(filter.mmioAddress(0xd000_0ffe, 4), false);
    assert.equal(new PostedWriteFilter(undefined).empty, true);
  });
});
