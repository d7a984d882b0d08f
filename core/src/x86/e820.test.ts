import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildE820Map, E820_RAM, E820_RESERVED, type E820Entry } from './e820.js';
import {
  BIOS_AREA_START,
  EBDA_START,
  MMIO_HOLE_END,
  MMIO_HOLE_START,
  PCIE_ECAM,
  ramRegions,
} from './layout.js';

function assertSortedDisjoint(map: E820Entry[]): void {
  for (let i = 1; i < map.length; i++) {
    assert.ok(map[i - 1]!.addr + map[i - 1]!.size <= map[i]!.addr, `overlap at entry ${i}`);
  }
}

function ramBytes(map: E820Entry[]): number {
  return map.filter((e) => e.type === E820_RAM).reduce((n, e) => n + e.size, 0);
}

test('small machine: low RAM, EBDA and BIOS reserved, RAM from 1 MiB to the end', () => {
  const size = 256 << 20;
  const map = buildE820Map(size);
  assert.deepEqual(map, [
    { addr: 0, size: EBDA_START, type: E820_RAM },
    { addr: EBDA_START, size: 0xa_0000 - EBDA_START, type: E820_RESERVED },
    { addr: BIOS_AREA_START, size: 0x2_0000, type: E820_RESERVED },
    { addr: 0x10_0000, size: size - 0x10_0000, type: E820_RAM },
  ]);
});

test('RAM entries cover exactly the machine RAM minus the legacy area, for many sizes', () => {
  for (const size of [16 << 20, 1 << 30, MMIO_HOLE_START, MMIO_HOLE_START + (1 << 20), 8 * 2 ** 30]) {
    const map = buildE820Map(size, [{ addr: PCIE_ECAM, size: 0x1000_0000 }]);
    assertSortedDisjoint(map);
    assert.equal(ramBytes(map), size - (0x10_0000 - EBDA_START), `size ${size}`);
    // Every RAM entry lies inside a machine RAM region.
    for (const e of map.filter((x) => x.type === E820_RAM)) {
      assert.ok(ramRegions(size).some((r) => e.addr >= r.gpa && e.addr + e.size <= r.gpa + r.size));
    }
    // Nothing is RAM inside the MMIO hole.
    assert.ok(
      !map.some((e) => e.type === E820_RAM && e.addr < MMIO_HOLE_END && e.addr + e.size > MMIO_HOLE_START),
    );
  }
});

test('a reserved range inside RAM is carved out of it', () => {
  const map = buildE820Map(64 << 20, [{ addr: 0x200_0000, size: 0x1000, type: 3 }]);
  assertSortedDisjoint(map);
  assert.ok(map.some((e) => e.addr === 0x200_0000 && e.type === 3));
  assert.equal(ramBytes(map), (64 << 20) - (0x10_0000 - EBDA_START) - 0x1000);
});

test('overlapping reserved ranges are an error', () => {
  assert.throws(
    () =>
      buildE820Map(64 << 20, [
        { addr: 0xd000_0000, size: 0x2000 },
        { addr: 0xd000_1000, size: 0x2000 },
      ]),
    /overlap/,
  );
});
