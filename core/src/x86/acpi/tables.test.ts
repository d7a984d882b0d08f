import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { GuestMemory } from '../../memory/guest-memory.js';
import { byteSum } from '../bytes.js';
import {
  ACPI_RSDP,
  IOAPIC_BASE,
  PCIE_ECAM,
  PORT_ACPI_PM_TIMER,
  PORT_ACPI_PM1A_CONTROL,
  PORT_ACPI_PM1A_EVENT,
  pciIntxGsi,
} from '../layout.js';
import {
  buildDsdt,
  buildDsdtAml,
  buildFadt,
  buildMadt,
  buildMcfg,
  FADT_HW_REDUCED_ACPI,
  FADT_PWR_BUTTON,
  writeAcpiTables,
} from './tables.js';

function newMemory(): GuestMemory {
  return new GuestMemory([{ gpa: 0, bytes: new Uint8Array(0x20_0000) }]);
}

const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at, true);
const u16 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint16(at, true);
const u64 = (b: Uint8Array, at: number) =>
  Number(new DataView(b.buffer, b.byteOffset).getBigUint64(at, true));
const sig = (b: Uint8Array, at = 0) => String.fromCharCode(...b.subarray(at, at + 4));

const options = { cpus: 4, ioapicId: 4, irq0Gsi: 2 as const, sciIrq: 9, ecam: true };

test('every table and the RSDP checksum to zero, and the XSDT reaches them all', () => {
  const mem = newMemory();
  const placed = writeAcpiTables(mem, options);
  assert.equal(placed.rsdpAddr, ACPI_RSDP);
  const rsdp = mem.read(ACPI_RSDP, 36);
  assert.equal(String.fromCharCode(...rsdp.subarray(0, 8)), 'RSD PTR ');
  assert.equal(byteSum(rsdp, 0, 20), 0);
  assert.equal(byteSum(rsdp, 0, 36), 0);
  assert.equal(rsdp[15], 2);
  const xsdtAddr = u64(rsdp, 24);
  const xsdt = mem.read(xsdtAddr, u32(mem.read(xsdtAddr, 8), 4));
  assert.equal(sig(xsdt), 'XSDT');
  const pointed = Array.from({ length: (xsdt.length - 36) / 8 }, (_, i) => u64(xsdt, 36 + 8 * i));
  const signatures = pointed.map((a) => sig(mem.read(a, 4)));
  assert.deepEqual(signatures, ['FACP', 'APIC', 'MCFG']);
  for (const t of placed.tables) {
    const bytes = mem.read(t.addr, t.length);
    if (t.signature === 'FACS') continue; // FACS has no checksum
    assert.equal(u32(bytes, 4), t.length, `${t.signature} length`);
    assert.equal(byteSum(bytes), 0, `${t.signature} checksum`);
  }
  const fadt = mem.read(pointed[0]!, 276);
  const dsdtAddr = u32(fadt, 40);
  assert.equal(u64(fadt, 140), dsdtAddr);
  assert.equal(sig(mem.read(dsdtAddr, 4)), 'DSDT');
  assert.equal(u32(fadt, 36), 0, 'FACS only through X_FIRMWARE_CTRL');
  assert.equal(sig(mem.read(u64(fadt, 132), 4)), 'FACS');
  assert.equal(u64(fadt, 132) % 64, 0);
});

test('without ECAM there is no MCFG and no ECAM device in the DSDT', () => {
  const mem = newMemory();
  const placed = writeAcpiTables(mem, { ...options, ecam: false });
  assert.ok(!placed.tables.some((t) => t.signature === 'MCFG'));
  assert.ok(!Buffer.from(buildDsdtAml({ ecam: false })).includes('ECAM'));
  assert.ok(Buffer.from(buildDsdtAml({ ecam: true })).includes('ECAM'));
});

test('FADT: revision 6, fixed I/O blocks, SCI 9, fixed power button, not hardware-reduced', () => {
  const fadt = buildFadt(0xe1100, 0xe1000, 9);
  assert.equal(fadt.length, 276);
  assert.equal(fadt[8], 6);
  assert.equal(u16(fadt, 46), 9);
  assert.equal(u32(fadt, 48), 0, 'no SMI command port: always in ACPI mode');
  assert.equal(u32(fadt, 56), PORT_ACPI_PM1A_EVENT);
  assert.equal(u32(fadt, 64), PORT_ACPI_PM1A_CONTROL);
  assert.equal(u32(fadt, 76), PORT_ACPI_PM_TIMER);
  assert.deepEqual([fadt[88], fadt[89], fadt[91]], [4, 2, 4]);
  const flags = u32(fadt, 112);
  assert.equal(flags & FADT_PWR_BUTTON, 0);
  assert.equal(flags & FADT_HW_REDUCED_ACPI, 0);
  assert.equal(u16(fadt, 109) & 0x2, 0x2, '8042 present');
  // X_PM1a_CNT_BLK: SystemIO, 16 bits, at the control port.
  assert.deepEqual([fadt[172], fadt[173]], [1, 16]);
  assert.equal(u64(fadt, 176), PORT_ACPI_PM1A_CONTROL);
  assert.equal(u64(fadt, 152), PORT_ACPI_PM1A_EVENT);
  assert.equal(u64(fadt, 212), PORT_ACPI_PM_TIMER);
});

function madtEntries(madt: Uint8Array): { type: number; body: Uint8Array }[] {
  const out = [];
  for (let at = 44; at < madt.length; at += madt[at + 1]!) {
    out.push({ type: madt[at]!, body: madt.subarray(at, at + madt[at + 1]!) });
  }
  return out;
}

test('MADT: one enabled LAPIC per vCPU, the IOAPIC at GSI 0, IRQ0 and SCI overrides', () => {
  for (const cpus of [1, 3, 64]) {
    const madt = buildMadt({ cpus, ioapicId: cpus, irq0Gsi: 2, sciIrq: 9 });
    assert.equal(byteSum(madt), 0);
    const entries = madtEntries(madt);
    const lapics = entries.filter((e) => e.type === 0);
    assert.equal(lapics.length, cpus);
    assert.deepEqual(
      lapics.map((e) => e.body[3]),
      Array.from({ length: cpus }, (_, i) => i),
    );
    assert.ok(lapics.every((e) => u32(e.body, 4) === 1));
    const ioapic = entries.filter((e) => e.type === 1);
    assert.equal(ioapic.length, 1);
    assert.equal(u32(ioapic[0]!.body, 4), IOAPIC_BASE);
    assert.equal(u32(ioapic[0]!.body, 8), 0);
    const overrides = entries
      .filter((e) => e.type === 2)
      .map((e) => [e.body[3], u32(e.body, 4), u16(e.body, 8)]);
    assert.deepEqual(overrides, [
      [0, 2, 0],
      [9, 9, 0x0d],
    ]);
  }
  const noOverride = madtEntries(buildMadt({ cpus: 1, ioapicId: 1, irq0Gsi: 0, sciIrq: 9 }));
  assert.equal(noOverride.filter((e) => e.type === 2).length, 1);
});

test('MCFG describes the ECAM for segment 0, buses 0-255', () => {
  const mcfg = buildMcfg();
  assert.equal(mcfg.length, 60);
  assert.equal(u64(mcfg, 44), PCIE_ECAM);
  assert.deepEqual([u16(mcfg, 52), mcfg[54], mcfg[55]], [0, 0, 255]);
});

test('DSDT contains _S5_ and the PCI root bridge names', () => {
  const dsdt = Buffer.from(buildDsdt({ ecam: true }));
  assert.ok(dsdt.includes(Buffer.from([0x08, 0x5f, 0x53, 0x35, 0x5f, 0x12])));
  assert.ok(dsdt.includes(Buffer.from([0x0c, 0x41, 0xd0, 0x0a, 0x03])), 'PNP0A03');
  for (const n of ['PCI0', '_BBN', '_SEG', '_UID', '_CRS']) assert.ok(dsdt.includes(n), n);
});

const iasl = spawnSync('iasl', ['-v'], { encoding: 'utf8' });
const iaslSkip = iasl.error ? 'iasl not installed (Debian package acpica-tools)' : false;

test('iasl disassembles the DSDT, and recompiling gives back the same AML', { skip: iaslSkip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vireo-dsdt-'));
  try {
    writeFileSync(join(dir, 'dsdt.dat'), buildDsdt({ ecam: true }));
    const run = spawnSync('iasl', ['-d', 'dsdt.dat'], { cwd: dir, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr + run.stdout);
    const dsl = readFileSync(join(dir, 'dsdt.dsl'), 'utf8');
    assert.match(dsl, /Name \(_S5, Package \(0x04\)/);
    assert.match(dsl, /EisaId \("PNP0A03"\)/);
    assert.match(dsl, /WordBusNumber/);
    assert.match(dsl, /0xDFFFFFFF/);
    assert.match(dsl, /EisaId \("PNP0C02"\)/);
    // Without iasl's optimizations, its compiler encodes the disassembly exactly as we did.
    const compile = spawnSync('iasl', ['-oa', '-p', 'again', 'dsdt.dsl'], { cwd: dir, encoding: 'utf8' });
    assert.equal(compile.status, 0, compile.stderr + compile.stdout);
    const again = readFileSync(join(dir, 'again.aml'));
    assert.deepEqual([...again.subarray(36)], [...buildDsdt({ ecam: true }).subarray(36)]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('iasl decodes FADT, MADT and MCFG without complaint', { skip: iaslSkip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vireo-acpi-'));
  try {
    const tables = {
      facp: buildFadt(0xe_1100, 0xe_1000, 9),
      apic: buildMadt({ cpus: 3, ioapicId: 3, irq0Gsi: 2, sciIrq: 9 }),
      mcfg: buildMcfg(),
    };
    for (const [file, bytes] of Object.entries(tables)) {
      writeFileSync(join(dir, `${file}.dat`), bytes);
      const run = spawnSync('iasl', ['-d', `${file}.dat`], { cwd: dir, encoding: 'utf8' });
      assert.equal(run.status, 0, run.stderr + run.stdout);
      const dsl = readFileSync(join(dir, `${file}.dsl`), 'utf8');
      assert.doesNotMatch(dsl + run.stdout + run.stderr, /error|warning|incorrect checksum/i, file);
    }
    const madt = readFileSync(join(dir, 'apic.dsl'), 'utf8');
    assert.equal(madt.match(/\[Processor Local APIC\]/g)?.length, 3);
    assert.match(readFileSync(join(dir, 'facp.dsl'), 'utf8'), /Control Method Power Button \(V1\) : 0/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the DSDT _PRT routes every slot and INTx pin to GSI 16-19 with the swizzle', { skip: iaslSkip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vireo-prt-'));
  try {
    writeFileSync(join(dir, 'dsdt.dat'), buildDsdt({ ecam: false }));
    const run = spawnSync('iasl', ['-d', 'dsdt.dat'], { cwd: dir, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr + run.stdout);
    const dsl = readFileSync(join(dir, 'dsdt.dsl'), 'utf8');
    assert.match(dsl, /Name \(_PRT, Package \(0x7C\)/, '31 slots x 4 pins');
    const value = (text: string) => (text === 'Zero' ? 0 : text === 'One' ? 1 : Number(text));
    const routes = new Map<string, number>();
    for (const m of dsl.matchAll(/Package \(0x04\)\s*\{\s*(\w+),\s*(\w+),\s*(\w+),\s*(\w+)\s*\}/g)) {
      const [address, pin, source, gsi] = m.slice(1).map(value) as [number, number, number, number];
      assert.equal(address & 0xffff, 0xffff, 'any function of the slot');
      assert.equal(source, 0, 'a GSI, not a link device');
      const key = `${address >>> 16}/${pin}`;
      assert.ok(!routes.has(key), `${key} listed once`);
      routes.set(key, gsi);
    }
    assert.equal(routes.size, 124);
    // INTA# of slots 1, 2, 3, 4, 5 -> GSI 16, 17, 18, 19, 16; INTB# of slot 1 -> 17; INTD# of slot 4 -> 18.
    assert.deepEqual(
      ['1/0', '2/0', '3/0', '4/0', '5/0', '1/1', '4/3', '31/0'].map((key) => routes.get(key)),
      [16, 17, 18, 19, 16, 17, 18, 18],
    );
    for (const [key, gsi] of routes)
      assert.equal(gsi, pciIntxGsi(Number(key.split('/')[0]), Number(key.split('/')[1])));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
