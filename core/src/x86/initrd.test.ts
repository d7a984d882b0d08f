import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GuestMemory } from '../memory/guest-memory.js';
import { encodeCmdline, placeInitrd, writeCmdline } from './initrd.js';
import { CMDLINE, CMDLINE_MAX } from './layout.js';

test('initrd goes as high as allowed, page-aligned', () => {
  const addr = placeInitrd(0x1800, { floor: 0x10_0000, ceiling: 0x800_0000, avoid: [] });
  assert.equal(addr, 0x800_0000 - 0x2000);
  assert.equal(addr % 0x1000, 0);
});

test('initrd never overlaps the kernel and respects the ceiling, for many sizes and layouts', () => {
  const kernel = { start: 0x10_0000, end: 0x300_0000 };
  for (const ceiling of [0x400_0000, 0x800_0000, 0x8000_0000]) {
    for (const size of [1, 0x1000, 0x12345, 0x100_0000, 0x7f_ffff]) {
      const avoid = [kernel, { start: ceiling - 0x20_0000, end: ceiling - 0x10_0000 }];
      let addr: number;
      try {
        addr = placeInitrd(size, { floor: 0x10_0000, ceiling, avoid });
      } catch (e) {
        assert.match((e as Error).message, /does not fit/);
        continue;
      }
      assert.ok(addr + size <= ceiling);
      assert.equal(addr % 0x1000, 0);
      for (const r of avoid) assert.ok(addr + size <= r.start || addr >= r.end, `size ${size} overlaps`);
    }
  }
});

test('an initrd that cannot fit beside the kernel is an error naming its size', () => {
  assert.throws(
    () =>
      placeInitrd(0x200_0000, {
        floor: 0x10_0000,
        ceiling: 0x300_0000,
        avoid: [{ start: 0x10_0000, end: 0x200_0000 }],
      }),
    /initrd of 32\.0 MiB does not fit/,
  );
});

test('command line is NUL-terminated and length-checked', () => {
  assert.deepEqual([...encodeCmdline('ro')], [0x72, 0x6f, 0]);
  assert.throws(() => encodeCmdline('x'.repeat(300), 255), /300 bytes; at most 255/);
  assert.throws(() => encodeCmdline('x'.repeat(CMDLINE_MAX)), /at most/);
  assert.throws(() => encodeCmdline('a\0b'), /NUL/);
  const mem = new GuestMemory([{ gpa: 0, bytes: new Uint8Array(0x10_0000).fill(0xaa) }]);
  const written = writeCmdline(mem, 'console=ttyS0');
  assert.deepEqual(written, { addr: CMDLINE, length: 13 });
  assert.equal(mem.readU8(CMDLINE + 13), 0);
  assert.equal(mem.readU8(CMDLINE + CMDLINE_MAX - 1), 0, 'stale bytes cleared');
});
