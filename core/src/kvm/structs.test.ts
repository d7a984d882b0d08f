import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  CLOCK_REALTIME,
  decodeClockData,
  decodeCpuid2,
  decodeMsrs,
  decodeRegs,
  decodeSregs,
  decodeVcpuEvents,
  defaultIrqchipRoutes,
  emptyRegs,
  encodeClockData,
  encodeCpuid2,
  encodeGsiRouting,
  encodeMsrs,
  encodeRegs,
  encodeSregs,
  encodeVcpuEvents,
  LapicReg,
  lapicRead,
  lapicVirtualWire,
  lapicWrite,
  SREGS_SIZE,
} from './structs.js';

describe('KVM struct layouts', () => {
  test('regs round-trip and sit in kvm_regs order (rip at 128, rflags at 136)', () => {
    const regs = emptyRegs();
    regs.rax = 1n;
    regs.r15 = 0xffff_ffff_ffff_fffen;
    regs.rip = 0x10_0000n;
    const bytes = encodeRegs(regs);
    const dv = new DataView(bytes.buffer);
    assert.equal(dv.getBigUint64(0, true), 1n);
    assert.equal(dv.getBigUint64(120, true), 0xffff_ffff_ffff_fffen);
    assert.equal(dv.getBigUint64(128, true), 0x10_0000n);
    assert.equal(dv.getBigUint64(136, true), 2n);
    assert.deepEqual(decodeRegs(bytes), regs);
  });

  test('sregs round-trip with segments, tables and control registers at their offsets', () => {
    const bytes = new Uint8Array(SREGS_SIZE);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff;
    // Padding bytes are not represented; zero them so the round trip is byte-exact.
    for (let s = 0; s < 8; s++) bytes[s * 24 + 23] = 0;
    for (let t = 0; t < 2; t++) bytes.fill(0, 192 + t * 16 + 10, 192 + t * 16 + 16);
    const sregs = decodeSregs(bytes);
    assert.deepEqual(encodeSregs(sregs), bytes);
    const cr3 = new DataView(bytes.buffer).getBigUint64(224 + 16, true);
    assert.equal(sregs.cr3, cr3);
    assert.equal(sregs.cs.selector, new DataView(bytes.buffer).getUint16(12, true));
  });

  test('clock data: clock at 0, flags at 8, realtime at 16, host TSC at 24', () => {
    const data = { clock: 0x1_2345_6789n, flags: CLOCK_REALTIME, realtime: 0xfeed_beefn, hostTsc: 7n };
    const bytes = encodeClockData(data);
    const dv = new DataView(bytes.buffer);
    assert.equal(bytes.length, 48);
    assert.equal(dv.getBigUint64(0, true), 0x1_2345_6789n);
    assert.equal(dv.getUint32(8, true), 4);
    assert.equal(dv.getBigUint64(16, true), 0xfeed_beefn);
    assert.equal(dv.getBigUint64(24, true), 7n);
    assert.deepEqual(decodeClockData(bytes), data);
  });

  test('vcpu events put the exception at offset 0 and the payload at 56', () => {
    const events = decodeVcpuEvents(new Uint8Array(64));
    events.exception = { injected: 1, nr: 3, hasErrorCode: 0, pending: 0, errorCode: 0 };
    events.exceptionPayload = 0x1234n;
    const bytes = encodeVcpuEvents(events);
    assert.equal(bytes[0], 1);
    assert.equal(bytes[1], 3);
    assert.equal(new DataView(bytes.buffer).getBigUint64(56, true), 0x1234n);
    assert.deepEqual(decodeVcpuEvents(bytes), events);
  });

  test('cpuid2 and msrs encode counts and entries', () => {
    const entries = [
      { function: 1, index: 0, flags: 0, eax: 0x806f8, ebx: 0x0100_0800, ecx: 0x8000_0000, edx: 5 },
    ];
    const bytes = encodeCpuid2(entries);
    assert.equal(bytes.length, 8 + 40);
    assert.deepEqual(decodeCpuid2(bytes), entries);
    const msrs = encodeMsrs([
      { index: 0xc000_0080, value: 0x500n },
      { index: 0x10, value: 1n },
    ]);
    assert.deepEqual(decodeMsrs(msrs, 1), [{ index: 0xc000_0080, value: 0x500n }]);
  });

  test('GSI routing entries are 48 bytes with type and MSI fields in the union', () => {
    const bytes = encodeGsiRouting([
      { gsi: 24, kind: 'msi', addressLo: 0xfee0_0000, addressHi: 0, data: 0x4041 },
    ]);
    const dv = new DataView(bytes.buffer);
    assert.equal(dv.getUint32(0, true), 1);
    assert.equal(dv.getUint32(8, true), 24);
    assert.equal(dv.getUint32(12, true), 2);
    assert.equal(dv.getUint32(24, true), 0xfee0_0000);
    assert.equal(dv.getUint32(32, true), 0x4041);
    const isa = defaultIrqchipRoutes();
    assert.ok(isa.some((r) => r.kind === 'irqchip' && r.gsi === 0 && r.irqchip === 2 && r.pin === 2));
    assert.ok(!isa.some((r) => r.kind === 'irqchip' && r.gsi === 2 && r.irqchip === 0));
  });

  test('virtual wire unmasks LINT0 as ExtINT and LINT1 as NMI', () => {
    const lapic = new Uint8Array(1024);
    lapicWrite(lapic, LapicReg.LVT_LINT0, 0x1_0000);
    lapicWrite(lapic, LapicReg.LVT_LINT1, 0x1_0000);
    lapicVirtualWire(lapic);
    assert.equal(lapicRead(lapic, LapicReg.LVT_LINT0), 0x700);
    assert.equal(lapicRead(lapic, LapicReg.LVT_LINT1), 0x400);
  });
});
