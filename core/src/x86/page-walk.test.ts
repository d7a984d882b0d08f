import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GuestMemory } from '../memory/guest-memory.js';
import {
  CR0_PG,
  CR0_WP,
  CR4_LA57,
  CR4_PAE,
  CR4_PSE,
  EFER_LMA,
  isCanonical,
  type PagingState,
  readLinear,
  translate,
  writeLinear,
} from './page-walk.js';

const P = 1n;
const RW = 2n;
const US = 4n;
const PS = 0x80n;
const ACCESSED = 0x20n;
const DIRTY = 0x40n;
const NX = 1n << 63n;

const KIB4 = 0x1000n;
const MIB2 = 0x20_0000n;
const GIB1 = 0x4000_0000n;

/** A guest with 16 MiB of RAM and a page-table builder that allocates tables from 8 MiB up. */
class Guest {
  readonly memory = new GuestMemory([{ gpa: 0, bytes: new Uint8Array(16 << 20) }]);
  private nextTable = 0x80_0000n;
  readonly root: bigint;

  constructor(readonly levels: 4 | 5 = 4) {
    this.root = this.table();
  }

  table(): bigint {
    const gpa = this.nextTable;
    this.nextTable += KIB4;
    return gpa;
  }

  state(extra: Partial<PagingState> = {}): PagingState {
    return {
      cr0: CR0_PG | CR0_WP | 1n,
      cr3: this.root,
      cr4: CR4_PAE | (this.levels === 5 ? CR4_LA57 : 0n),
      efer: EFER_LMA | 0x100n,
      ...extra,
    };
  }

  /** Maps one page of `size` at `va` to `pa`; returns the leaf entry's address. */
  map(va: bigint, pa: bigint, size: bigint, flags = P | RW): bigint {
    const shifts = this.levels === 5 ? [48n, 39n, 30n, 21n, 12n] : [39n, 30n, 21n, 12n];
    const leafShift = size === GIB1 ? 30n : size === MIB2 ? 21n : 12n;
    let table = this.root;
    for (const shift of shifts) {
      const entryGpa = table + ((va >> shift) & 0x1ffn) * 8n;
      if (shift === leafShift) {
        this.memory.writeU64(entryGpa, pa | flags | (shift === 12n ? 0n : PS));
        return entryGpa;
      }
      let entry = this.memory.readU64(entryGpa);
      if ((entry & P) === 0n) {
        entry = this.table() | P | RW | US;
        this.memory.writeU64(entryGpa, entry);
      }
      table = entry & 0x000f_ffff_ffff_f000n;
    }
    throw new Error('bad size');
  }
}

describe('guest page walker', () => {
  test('4-level: 4 KiB, 2 MiB and 1 GiB pages keep the offset inside the page', () => {
    const g = new Guest();
    g.map(0xffff_ffff_8104_0000n, 0x2_3000n, KIB4);
    g.map(0xffff_8880_0020_0000n, 0x40_0000n, MIB2);
    g.map(0x40_0000_0000n, 0x4000_0000n, GIB1);
    const s = g.state();
    assert.deepEqual(translate(g.memory, s, 0xffff_ffff_8104_0b5en), {
      ok: true,
      gpa: 0x2_3b5en,
      pageSize: KIB4,
    });
    assert.deepEqual(translate(g.memory, s, 0xffff_8880_0031_2345n), {
      ok: true,
      gpa: 0x51_2345n,
      pageSize: MIB2,
    });
    assert.deepEqual(translate(g.memory, s, 0x40_1234_5678n), {
      ok: true,
      gpa: 0x5234_5678n,
      pageSize: GIB1,
    });
  });

  test('large-page PAT bit (bit 12) and NX are not part of the address', () => {
    const g = new Guest();
    const pde = g.map(0x20_0000n, 0x60_0000n, MIB2);
    g.memory.writeU64(pde, g.memory.readU64(pde) | 0x1000n | NX);
    const result = translate(g.memory, g.state(), 0x20_0010n);
    assert.deepEqual(result, { ok: true, gpa: 0x60_0010n, pageSize: MIB2 });
  });

  test('a non-present entry at any level is a page fault naming the level', () => {
    const g = new Guest();
    const pte = g.map(0x1000n, 0x5000n, KIB4);
    const s = g.state();
    const missingPml4 = translate(g.memory, s, 0x7f00_0000_0000n);
    assert.equal(missingPml4.ok, false);
    assert.ok(!missingPml4.ok && missingPml4.kind === 'page-fault');
    assert.equal(missingPml4.level, 'PML4E');
    assert.equal(missingPml4.reason, 'not-present');
    const missingPde = translate(g.memory, s, 0x4000_0000n);
    assert.ok(!missingPde.ok && missingPde.kind === 'page-fault' && missingPde.level === 'PDPTE');
    g.memory.writeU64(pte, 0x5000n);
    const missingPte = translate(g.memory, s, 0x1000n, { write: true });
    assert.ok(!missingPte.ok && missingPte.kind === 'page-fault');
    assert.equal(missingPte.level, 'PTE');
    assert.equal(missingPte.errorCode, 2, 'write to a non-present page');
  });

  test('write protection: read-only pages fault with CR0.WP or from CPL3; user accesses need U/S', () => {
    const g = new Guest();
    g.map(0x1000n, 0x5000n, KIB4, P);
    g.map(0x2000n, 0x6000n, KIB4, P | RW);
    const s = g.state();
    assert.equal(translate(g.memory, s, 0x1000n).ok, true);
    const readOnly = translate(g.memory, s, 0x1000n, { write: true });
    assert.ok(!readOnly.ok && readOnly.kind === 'page-fault' && readOnly.reason === 'read-only');
    assert.equal(readOnly.errorCode, 3);
    assert.equal(translate(g.memory, g.state({ cr0: CR0_PG | 1n }), 0x1000n, { write: true }).ok, true);
    const user = translate(g.memory, s, 0x2000n, { user: true });
    assert.ok(!user.ok && user.kind === 'page-fault' && user.reason === 'supervisor-only');
    assert.equal(user.errorCode, 5);
  });

  test('non-canonical addresses are refused before any table is read', () => {
    const g = new Guest();
    assert.deepEqual(translate(g.memory, g.state(), 0x0000_8000_0000_0000n), {
      ok: false,
      kind: 'non-canonical',
    });
    assert.equal(isCanonical(0xffff_8000_0000_0000n, 48), true);
    assert.equal(isCanonical(0x00ff_8000_0000_0000n, 57), true);
    assert.equal(isCanonical(0x0100_0000_0000_0000n, 57), false);
  });

  test('5-level paging walks PML5', () => {
    const g = new Guest(5);
    g.map(0x00ff_0000_0000_1000n, 0x7000n, KIB4);
    assert.deepEqual(translate(g.memory, g.state(), 0x00ff_0000_0000_1abcn), {
      ok: true,
      gpa: 0x7abcn,
      pageSize: KIB4,
    });
    assert.equal(
      translate(g.memory, g.state({ cr4: CR4_PAE }), 0x00ff_0000_0000_1abcn).ok,
      false,
      'needs LA57',
    );
  });

  test('a table pointing outside guest RAM fails cleanly', () => {
    const g = new Guest();
    g.memory.writeU64(g.root, 0x10_0000_0000n | P | RW);
    const result = translate(g.memory, g.state(), 0x1000n);
    assert.ok(!result.ok && result.kind === 'table-outside-ram');
    assert.equal(result.tableGpa, 0x10_0000_0000n);
  });

  test('the walk sets accessed bits, and dirty on the leaf for a write', () => {
    const g = new Guest();
    const pte = g.map(0x3000n, 0x9000n, KIB4);
    translate(g.memory, g.state(), 0x3000n);
    assert.equal(g.memory.readU64(pte) & (ACCESSED | DIRTY), ACCESSED);
    assert.equal(g.memory.readU64(g.root) & ACCESSED, ACCESSED);
    translate(g.memory, g.state(), 0x3000n, { write: true });
    assert.equal(g.memory.readU64(pte) & (ACCESSED | DIRTY), ACCESSED | DIRTY);
  });

  test('paging off: linear is physical', () => {
    const g = new Guest();
    assert.deepEqual(translate(g.memory, { cr0: 1n, cr3: 0n, cr4: 0n, efer: 0n }, 0x12_3456n), {
      ok: true,
      gpa: 0x12_3456n,
      pageSize: KIB4,
    });
  });

  test('32-bit paging: 4 KiB pages and PSE 4 MiB pages', () => {
    const memory = new GuestMemory([{ gpa: 0, bytes: new Uint8Array(16 << 20) }]);
    const pd = 0x10_0000;
    const pt = 0x10_1000;
    memory.writeU32(pd + (0xc000_0000 >>> 22) * 4, pt | 3);
    memory.writeU32(pt + 5 * 4, 0x7000 | 3);
    memory.writeU32(pd + (0xc040_0000 >>> 22) * 4, 0x80_0000 | 0x83);
    const state = { cr0: CR0_PG | 1n, cr3: BigInt(pd), cr4: CR4_PSE, efer: 0n };
    assert.deepEqual(translate(memory, state, 0xc000_5123n), { ok: true, gpa: 0x7123n, pageSize: KIB4 });
    assert.deepEqual(translate(memory, state, 0xc041_2345n), {
      ok: true,
      gpa: 0x81_2345n,
      pageSize: 0x40_0000n,
    });
    assert.equal(translate(memory, state, 0xc080_0000n).ok, false);
  });

  test('PAE paging: PDPTE, then 2 MiB and 4 KiB pages', () => {
    const memory = new GuestMemory([{ gpa: 0, bytes: new Uint8Array(16 << 20) }]);
    const pdpt = 0x10_0020;
    const pd = 0x10_1000;
    const pt = 0x10_2000;
    memory.writeU64(pdpt + 3 * 8, BigInt(pd) | P);
    memory.writeU64(pd + 0 * 8, BigInt(pt) | P | RW);
    memory.writeU64(pt + 1 * 8, 0x9000n | P | RW);
    memory.writeU64(pd + 1 * 8, 0xa0_0000n | P | RW | PS);
    const state = { cr0: CR0_PG | 1n, cr3: BigInt(pdpt), cr4: CR4_PAE, efer: 0n };
    assert.deepEqual(translate(memory, state, 0xc000_1004n), { ok: true, gpa: 0x9004n, pageSize: KIB4 });
    assert.deepEqual(translate(memory, state, 0xc020_0008n), { ok: true, gpa: 0xa0_0008n, pageSize: MIB2 });
    assert.equal(translate(memory, state, 0x8000_0000n).ok, false, 'PDPTE 2 not present');
  });

  test('reads and writes straddling two pages use each page own frame', () => {
    const g = new Guest();
    g.map(0x1000n, 0x5000n, KIB4);
    g.map(0x2000n, 0xc000n, KIB4);
    g.memory.write(0x5ffen, Uint8Array.of(1, 2));
    g.memory.write(0xc000n, Uint8Array.of(3, 4));
    const read = readLinear(g.memory, g.state(), 0x1ffen, 4);
    assert.deepEqual(read, { ok: true, bytes: Uint8Array.of(1, 2, 3, 4) });
    assert.deepEqual(writeLinear(g.memory, g.state(), 0x1fffn, Uint8Array.of(9, 8, 7)), { ok: true });
    assert.deepEqual(g.memory.read(0x5fffn, 1), Uint8Array.of(9));
    assert.deepEqual(g.memory.read(0xc000n, 2), Uint8Array.of(8, 7));
  });

  test('a straddling write whose second page is read-only writes nothing', () => {
    const g = new Guest();
    g.map(0x1000n, 0x5000n, KIB4);
    g.map(0x2000n, 0xc000n, KIB4, P);
    const result = writeLinear(g.memory, g.state(), 0x1ffen, Uint8Array.of(1, 2, 3, 4));
    assert.ok(!result.ok && result.failure.kind === 'page-fault');
    assert.equal(result.failure.linear, 0x2000n);
    assert.deepEqual(g.memory.read(0x5ffen, 2), Uint8Array.of(0, 0));
    const unmapped = readLinear(g.memory, g.state(), 0x2ffen, 4);
    assert.ok(
      !unmapped.ok && unmapped.failure.kind === 'page-fault' && unmapped.failure.reason === 'not-present',
    );
  });
});
