import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GuestMemory } from '../memory/guest-memory.js';
import { byteSum } from './bytes.js';
import { BDA_EBDA_SEGMENT, EBDA_START, IOAPIC_BASE, MP_CONFIG_OVERFLOW } from './layout.js';
import { buildMpConfigTable, writeMpTable } from './mptable.js';

function parse(table: Uint8Array) {
  const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
  const count = dv.getUint16(34, true);
  const entries: { type: number; at: number }[] = [];
  let at = 44;
  for (let i = 0; i < count; i++) {
    const type = table[at]!;
    entries.push({ type, at });
    at += type === 0 ? 20 : 8;
  }
  assert.equal(at, dv.getUint16(4, true), 'entries fill the base table exactly');
  return { dv, entries };
}

test('one processor entry per vCPU, CPU 0 the bootstrap processor', () => {
  for (const cpus of [1, 2, 8, 100]) {
    const table = buildMpConfigTable({ cpus, ioapicId: cpus, irq0Gsi: 2, sciIrq: 9 });
    assert.equal(byteSum(table), 0);
    const { dv, entries } = parse(table);
    const cpuEntries = entries.filter((e) => e.type === 0);
    assert.equal(cpuEntries.length, cpus);
    cpuEntries.forEach((e, i) => {
      assert.equal(dv.getUint8(e.at + 1), i);
      assert.equal(dv.getUint8(e.at + 3), i === 0 ? 3 : 1);
    });
    const ioapic = entries.find((e) => e.type === 2)!;
    assert.equal(dv.getUint32(ioapic.at + 4, true), IOAPIC_BASE);
    assert.equal(dv.getUint8(ioapic.at + 1), cpus);
  }
});

test('ISA IRQs reach the IOAPIC: IRQ0 on pin 2 (or 0), SCI level-triggered, local interrupts', () => {
  for (const irq0Gsi of [0, 2] as const) {
    const { dv, entries } = parse(buildMpConfigTable({ cpus: 2, ioapicId: 2, irq0Gsi, sciIrq: 9 }));
    const io = entries
      .filter((e) => e.type === 3)
      .map((e) => ({
        irq: dv.getUint8(e.at + 5),
        pin: dv.getUint8(e.at + 7),
        flags: dv.getUint16(e.at + 2, true),
      }));
    assert.equal(io.find((x) => x.irq === 0)!.pin, irq0Gsi);
    assert.equal(io.find((x) => x.irq === 9)!.flags, 0x0d);
    const pins = io.map((x) => x.pin);
    assert.equal(new Set(pins).size, pins.length, 'no pin claimed twice');
    assert.equal(io.length, irq0Gsi === 2 ? 15 : 16);
    assert.equal(entries.filter((e) => e.type === 4).length, 2);
    assert.equal(entries.filter((e) => e.type === 1).length, 2);
  }
});

test('floating pointer in the EBDA points at a checksummed table; BDA points at the EBDA', () => {
  const mem = new GuestMemory([{ gpa: 0, bytes: new Uint8Array(0x10_0000) }]);
  const small = writeMpTable(mem, { cpus: 4, ioapicId: 4, irq0Gsi: 2, sciIrq: 9 });
  const fp = mem.read(EBDA_START, 16);
  assert.equal(String.fromCharCode(...fp.subarray(0, 4)), '_MP_');
  assert.equal(byteSum(fp), 0);
  assert.equal(new DataView(fp.buffer).getUint32(4, true), small);
  assert.equal(small, EBDA_START + 16);
  assert.equal(mem.readU16(BDA_EBDA_SEGMENT), EBDA_START >> 4);
  const len = mem.readU16(small + 4);
  assert.equal(byteSum(mem.read(small, len)), 0);
  // Too many CPUs for the 1 KiB EBDA: the table moves to the BIOS area.
  const big = writeMpTable(mem, { cpus: 64, ioapicId: 64, irq0Gsi: 2, sciIrq: 9 });
  assert.equal(big, MP_CONFIG_OVERFLOW);
  assert.equal(mem.readU32(EBDA_START + 4), MP_CONFIG_OVERFLOW);
  assert.throws(() => writeMpTable(mem, { cpus: 0, ioapicId: 0, irq0Gsi: 2, sciIrq: 9 }), /1\.\.254/);
});
