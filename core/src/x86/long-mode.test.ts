import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeSregs } from '../kvm/structs.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { BOOT_GDT, BOOT_PD, BOOT_PDPT, BOOT_PML4 } from './layout.js';
import { BOOT_CS, BOOT_DS, encodeSegmentDescriptor, setupLongMode } from './long-mode.js';

function memory(): GuestMemory {
  return new GuestMemory([{ gpa: 0, bytes: new Uint8Array(1 << 20) }]);
}

describe('long-mode entry', () => {
  test('descriptors match the well-known flat 64-bit code and data encodings', () => {
    assert.equal(
      encodeSegmentDescriptor({ base: 0, limit: 0xf_ffff, type: 0xb, dpl: 0, long: true, big: false }),
      0x00af_9b00_0000_ffffn,
    );
    assert.equal(
      encodeSegmentDescriptor({ base: 0, limit: 0xf_ffff, type: 0x3, dpl: 0, long: false, big: true }),
      0x00cf_9300_0000_ffffn,
    );
  });

  test('writes the boot GDT and identity-maps 4 GiB with 2 MiB pages', () => {
    const mem = memory();
    setupLongMode(mem, decodeSregs(new Uint8Array(312)), { rip: 0x10_0000, rsp: 0x8ff0, rsi: 0x7000 });
    assert.equal(mem.readU64(BOOT_GDT + BOOT_CS), 0x00af_9b00_0000_ffffn);
    assert.equal(mem.readU64(BOOT_GDT + BOOT_DS), 0x00cf_9300_0000_ffffn);
    assert.equal(mem.readU64(BOOT_PML4) & ~0xfffn, BigInt(BOOT_PDPT));
    for (let g = 0; g < 4; g++) {
      assert.equal(mem.readU64(BOOT_PDPT + g * 8) & ~0xfffn, BigInt(BOOT_PD + g * 0x1000));
    }
    // The last 2 MiB page below 4 GiB maps itself, present, writable, large.
    const last = mem.readU64(BOOT_PD + 3 * 0x1000 + 511 * 8);
    assert.equal(last & ~0xfffn, 0xffe0_0000n);
    assert.equal(last & 0x83n, 0x83n);
  });

  test('1 GiB pages map straight from the PDPT', () => {
    const mem = memory();
    setupLongMode(mem, decodeSregs(new Uint8Array(312)), { rip: 0, rsp: 0 }, { pageSize: '1G' });
    assert.equal(mem.readU64(BOOT_PDPT + 3 * 8) & ~0xfffn, 0xc000_0000n);
    assert.equal(mem.readU64(BOOT_PDPT + 3 * 8) & 0x80n, 0x80n);
  });

  test('registers: 64-bit CS, paging with PAE and LME/LMA, RSI as given', () => {
    const { sregs, regs } = setupLongMode(memory(), decodeSregs(new Uint8Array(312)), {
      rip: 0x10_0200,
      rsp: 0x8ff0,
      rsi: 0x7000,
    });
    assert.equal(sregs.cs.selector, BOOT_CS);
    assert.equal(sregs.cs.l, 1);
    assert.equal(sregs.cs.db, 0);
    assert.equal(sregs.ss.selector, BOOT_DS);
    assert.equal(sregs.cr0 & 0x8000_0001n, 0x8000_0001n);
    assert.equal(sregs.cr3, BigInt(BOOT_PML4));
    assert.equal(sregs.cr4 & 0x20n, 0x20n);
    assert.equal(sregs.efer, 0x500n);
    assert.equal(regs.rip, 0x10_0200n);
    assert.equal(regs.rsi, 0x7000n);
    assert.equal(regs.rflags, 2n);
  });
});
