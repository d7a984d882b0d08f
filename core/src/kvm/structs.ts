// Byte layouts of the KVM structs Vireo moves through the addon (x86-64, little-endian), as
// pure encode/decode functions. 64-bit fields are bigint.

export const REGS_SIZE = 144;
export const SREGS_SIZE = 312;
export const FPU_SIZE = 416;
export const LAPIC_SIZE = 1024;
export const VCPU_EVENTS_SIZE = 64;
export const CPUID_ENTRY_SIZE = 40;
export const MSR_ENTRY_SIZE = 16;
export const IRQ_ROUTING_ENTRY_SIZE = 48;
export const CLOCK_DATA_SIZE = 48;

export interface Regs {
  rax: bigint;
  rbx: bigint;
  rcx: bigint;
  rdx: bigint;
  rsi: bigint;
  rdi: bigint;
  rsp: bigint;
  rbp: bigint;
  r8: bigint;
  r9: bigint;
  r10: bigint;
  r11: bigint;
  r12: bigint;
  r13: bigint;
  r14: bigint;
  r15: bigint;
  rip: bigint;
  rflags: bigint;
}

const REG_ORDER = [
  'rax',
  'rbx',
  'rcx',
  'rdx',
  'rsi',
  'rdi',
  'rsp',
  'rbp',
  'r8',
  'r9',
  'r10',
  'r11',
  'r12',
  'r13',
  'r14',
  'r15',
  'rip',
  'rflags',
] as const satisfies readonly (keyof Regs)[];

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function need(bytes: Uint8Array, size: number, what: string): void {
  if (bytes.length < size) throw new RangeError(`${what}: need ${size} bytes, got ${bytes.length}`);
}

/** All registers zero except the always-one bit 1 of RFLAGS. */
export function emptyRegs(): Regs {
  const regs = {} as Regs;
  for (const name of REG_ORDER) regs[name] = 0n;
  regs.rflags = 2n;
  return regs;
}

export function decodeRegs(bytes: Uint8Array): Regs {
  need(bytes, REGS_SIZE, 'kvm_regs');
  const dv = view(bytes);
  const regs = {} as Regs;
  REG_ORDER.forEach((name, i) => {
    regs[name] = dv.getBigUint64(i * 8, true);
  });
  return regs;
}

export function encodeRegs(regs: Regs, bytes = new Uint8Array(REGS_SIZE)): Uint8Array {
  need(bytes, REGS_SIZE, 'kvm_regs');
  const dv = view(bytes);
  REG_ORDER.forEach((name, i) => {
    dv.setBigUint64(i * 8, BigInt.asUintN(64, regs[name]), true);
  });
  return bytes;
}

export interface Segment {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
  avl: number;
  unusable: number;
}

export interface DescriptorTable {
  base: bigint;
  limit: number;
}

export interface Sregs {
  cs: Segment;
  ds: Segment;
  es: Segment;
  fs: Segment;
  gs: Segment;
  ss: Segment;
  tr: Segment;
  ldt: Segment;
  gdt: DescriptorTable;
  idt: DescriptorTable;
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  efer: bigint;
  apicBase: bigint;
  /** Pending external interrupt as a 256-bit bitmap (four 64-bit words). */
  interruptBitmap: [bigint, bigint, bigint, bigint];
}

const SEGMENT_ORDER = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;
const SEGMENT_SIZE = 24;
const DTABLE_OFFSET = 8 * SEGMENT_SIZE;
const CR_OFFSET = DTABLE_OFFSET + 2 * 16;
const CR_ORDER = ['cr0', 'cr2', 'cr3', 'cr4', 'cr8', 'efer', 'apicBase'] as const;
const BITMAP_OFFSET = CR_OFFSET + CR_ORDER.length * 8;

function decodeSegment(dv: DataView, o: number): Segment {
  return {
    base: dv.getBigUint64(o, true),
    limit: dv.getUint32(o + 8, true),
    selector: dv.getUint16(o + 12, true),
    type: dv.getUint8(o + 14),
    present: dv.getUint8(o + 15),
    dpl: dv.getUint8(o + 16),
    db: dv.getUint8(o + 17),
    s: dv.getUint8(o + 18),
    l: dv.getUint8(o + 19),
    g: dv.getUint8(o + 20),
    avl: dv.getUint8(o + 21),
    unusable: dv.getUint8(o + 22),
  };
}

function encodeSegment(dv: DataView, o: number, s: Segment): void {
  dv.setBigUint64(o, BigInt.asUintN(64, s.base), true);
  dv.setUint32(o + 8, s.limit >>> 0, true);
  dv.setUint16(o + 12, s.selector, true);
  dv.setUint8(o + 14, s.type);
  dv.setUint8(o + 15, s.present);
  dv.setUint8(o + 16, s.dpl);
  dv.setUint8(o + 17, s.db);
  dv.setUint8(o + 18, s.s);
  dv.setUint8(o + 19, s.l);
  dv.setUint8(o + 20, s.g);
  dv.setUint8(o + 21, s.avl);
  dv.setUint8(o + 22, s.unusable);
  dv.setUint8(o + 23, 0);
}

export function decodeSregs(bytes: Uint8Array): Sregs {
  need(bytes, SREGS_SIZE, 'kvm_sregs');
  const dv = view(bytes);
  const sregs = {} as Sregs;
  SEGMENT_ORDER.forEach((name, i) => {
    sregs[name] = decodeSegment(dv, i * SEGMENT_SIZE);
  });
  sregs.gdt = { base: dv.getBigUint64(DTABLE_OFFSET, true), limit: dv.getUint16(DTABLE_OFFSET + 8, true) };
  sregs.idt = {
    base: dv.getBigUint64(DTABLE_OFFSET + 16, true),
    limit: dv.getUint16(DTABLE_OFFSET + 24, true),
  };
  CR_ORDER.forEach((name, i) => {
    sregs[name] = dv.getBigUint64(CR_OFFSET + i * 8, true);
  });
  sregs.interruptBitmap = [0, 1, 2, 3].map((i) =>
    dv.getBigUint64(BITMAP_OFFSET + i * 8, true),
  ) as Sregs['interruptBitmap'];
  return sregs;
}

export function encodeSregs(sregs: Sregs, bytes = new Uint8Array(SREGS_SIZE)): Uint8Array {
  need(bytes, SREGS_SIZE, 'kvm_sregs');
  const dv = view(bytes);
  SEGMENT_ORDER.forEach((name, i) => {
    encodeSegment(dv, i * SEGMENT_SIZE, sregs[name]);
  });
  for (const [i, table] of [sregs.gdt, sregs.idt].entries()) {
    const o = DTABLE_OFFSET + i * 16;
    dv.setBigUint64(o, BigInt.asUintN(64, table.base), true);
    dv.setUint16(o + 8, table.limit, true);
    dv.setUint16(o + 10, 0, true);
    dv.setUint32(o + 12, 0, true);
  }
  CR_ORDER.forEach((name, i) => {
    dv.setBigUint64(CR_OFFSET + i * 8, BigInt.asUintN(64, sregs[name]), true);
  });
  sregs.interruptBitmap.forEach((word, i) => {
    dv.setBigUint64(BITMAP_OFFSET + i * 8, word, true);
  });
  return bytes;
}

export interface Fpu {
  /** Eight 16-byte x87 register slots. */
  fpr: Uint8Array;
  fcw: number;
  fsw: number;
  ftwx: number;
  lastOpcode: number;
  lastIp: bigint;
  lastDp: bigint;
  /** Sixteen 16-byte XMM registers. */
  xmm: Uint8Array;
  mxcsr: number;
}

export function decodeFpu(bytes: Uint8Array): Fpu {
  need(bytes, FPU_SIZE, 'kvm_fpu');
  const dv = view(bytes);
  return {
    fpr: bytes.slice(0, 128),
    fcw: dv.getUint16(128, true),
    fsw: dv.getUint16(130, true),
    ftwx: dv.getUint8(132),
    lastOpcode: dv.getUint16(134, true),
    lastIp: dv.getBigUint64(136, true),
    lastDp: dv.getBigUint64(144, true),
    xmm: bytes.slice(152, 408),
    mxcsr: dv.getUint32(408, true),
  };
}

export function encodeFpu(fpu: Fpu, bytes = new Uint8Array(FPU_SIZE)): Uint8Array {
  need(bytes, FPU_SIZE, 'kvm_fpu');
  const dv = view(bytes);
  bytes.fill(0);
  bytes.set(fpu.fpr.subarray(0, 128), 0);
  dv.setUint16(128, fpu.fcw, true);
  dv.setUint16(130, fpu.fsw, true);
  dv.setUint8(132, fpu.ftwx);
  dv.setUint16(134, fpu.lastOpcode, true);
  dv.setBigUint64(136, fpu.lastIp, true);
  dv.setBigUint64(144, fpu.lastDp, true);
  bytes.set(fpu.xmm.subarray(0, 256), 152);
  dv.setUint32(408, fpu.mxcsr, true);
  return bytes;
}

/** The reset FPU state: x87 control word 0x37f, MXCSR 0x1f80 (all exceptions masked). */
export function resetFpu(): Fpu {
  return {
    fpr: new Uint8Array(128),
    fcw: 0x37f,
    fsw: 0,
    ftwx: 0,
    lastOpcode: 0,
    lastIp: 0n,
    lastDp: 0n,
    xmm: new Uint8Array(256),
    mxcsr: 0x1f80,
  };
}

export interface VcpuEvents {
  exception: { injected: number; nr: number; hasErrorCode: number; pending: number; errorCode: number };
  interrupt: { injected: number; nr: number; soft: number; shadow: number };
  nmi: { injected: number; pending: number; masked: number };
  sipiVector: number;
  /** KVM_VCPUEVENT_VALID_* bits saying which optional fields KVM_SET_VCPU_EVENTS should apply. */
  flags: number;
  smi: { smm: number; pending: number; smmInsideNmi: number; latchedInit: number };
  tripleFaultPending: number;
  exceptionHasPayload: number;
  exceptionPayload: bigint;
}

export const VCPUEVENT_VALID_NMI_PENDING = 0x1;
export const VCPUEVENT_VALID_SIPI_VECTOR = 0x2;
export const VCPUEVENT_VALID_SHADOW = 0x4;
export const VCPUEVENT_VALID_SMM = 0x8;
export const VCPUEVENT_VALID_PAYLOAD = 0x10;

export function decodeVcpuEvents(bytes: Uint8Array): VcpuEvents {
  need(bytes, VCPU_EVENTS_SIZE, 'kvm_vcpu_events');
  const dv = view(bytes);
  const u8 = (o: number) => dv.getUint8(o);
  return {
    exception: {
      injected: u8(0),
      nr: u8(1),
      hasErrorCode: u8(2),
      pending: u8(3),
      errorCode: dv.getUint32(4, true),
    },
    interrupt: { injected: u8(8), nr: u8(9), soft: u8(10), shadow: u8(11) },
    nmi: { injected: u8(12), pending: u8(13), masked: u8(14) },
    sipiVector: dv.getUint32(16, true),
    flags: dv.getUint32(20, true),
    smi: { smm: u8(24), pending: u8(25), smmInsideNmi: u8(26), latchedInit: u8(27) },
    tripleFaultPending: u8(28),
    exceptionHasPayload: u8(55),
    exceptionPayload: dv.getBigUint64(56, true),
  };
}

export function encodeVcpuEvents(e: VcpuEvents, bytes = new Uint8Array(VCPU_EVENTS_SIZE)): Uint8Array {
  need(bytes, VCPU_EVENTS_SIZE, 'kvm_vcpu_events');
  bytes.fill(0);
  const dv = view(bytes);
  const u8 = (o: number, v: number) => dv.setUint8(o, v);
  u8(0, e.exception.injected);
  u8(1, e.exception.nr);
  u8(2, e.exception.hasErrorCode);
  u8(3, e.exception.pending);
  dv.setUint32(4, e.exception.errorCode, true);
  u8(8, e.interrupt.injected);
  u8(9, e.interrupt.nr);
  u8(10, e.interrupt.soft);
  u8(11, e.interrupt.shadow);
  u8(12, e.nmi.injected);
  u8(13, e.nmi.pending);
  u8(14, e.nmi.masked);
  dv.setUint32(16, e.sipiVector, true);
  dv.setUint32(20, e.flags, true);
  u8(24, e.smi.smm);
  u8(25, e.smi.pending);
  u8(26, e.smi.smmInsideNmi);
  u8(27, e.smi.latchedInit);
  u8(28, e.tripleFaultPending);
  u8(55, e.exceptionHasPayload);
  dv.setBigUint64(56, e.exceptionPayload, true);
  return bytes;
}

export interface CpuidEntry {
  function: number;
  index: number;
  /** KVM_CPUID_FLAG_* (bit 0: the index is significant). */
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

/** KVM_CPUID_FLAG_SIGNIFCANT_INDEX: the entry applies only to its sub-leaf `index`. */
export const CPUID_FLAG_SIGNIFICANT_INDEX = 1;

/** Decodes a struct kvm_cpuid2 (nent, padding, entries). */
export function decodeCpuid2(bytes: Uint8Array): CpuidEntry[] {
  need(bytes, 8, 'kvm_cpuid2');
  const dv = view(bytes);
  const count = dv.getUint32(0, true);
  need(bytes, 8 + count * CPUID_ENTRY_SIZE, 'kvm_cpuid2');
  const entries: CpuidEntry[] = [];
  for (let i = 0; i < count; i++) {
    const o = 8 + i * CPUID_ENTRY_SIZE;
    entries.push({
      function: dv.getUint32(o, true),
      index: dv.getUint32(o + 4, true),
      flags: dv.getUint32(o + 8, true),
      eax: dv.getUint32(o + 12, true),
      ebx: dv.getUint32(o + 16, true),
      ecx: dv.getUint32(o + 20, true),
      edx: dv.getUint32(o + 24, true),
    });
  }
  return entries;
}

export function encodeCpuid2(entries: readonly CpuidEntry[]): Uint8Array {
  const bytes = new Uint8Array(8 + entries.length * CPUID_ENTRY_SIZE);
  const dv = view(bytes);
  dv.setUint32(0, entries.length, true);
  entries.forEach((e, i) => {
    const o = 8 + i * CPUID_ENTRY_SIZE;
    dv.setUint32(o, e.function >>> 0, true);
    dv.setUint32(o + 4, e.index >>> 0, true);
    dv.setUint32(o + 8, e.flags >>> 0, true);
    dv.setUint32(o + 12, e.eax >>> 0, true);
    dv.setUint32(o + 16, e.ebx >>> 0, true);
    dv.setUint32(o + 20, e.ecx >>> 0, true);
    dv.setUint32(o + 24, e.edx >>> 0, true);
  });
  return bytes;
}

export interface MsrEntry {
  index: number;
  value: bigint;
}

/** A struct kvm_msrs for the given entries (values ignored by KVM_GET_MSRS). */
export function encodeMsrs(entries: readonly MsrEntry[]): Uint8Array {
  const bytes = new Uint8Array(8 + entries.length * MSR_ENTRY_SIZE);
  const dv = view(bytes);
  dv.setUint32(0, entries.length, true);
  entries.forEach((e, i) => {
    const o = 8 + i * MSR_ENTRY_SIZE;
    dv.setUint32(o, e.index >>> 0, true);
    dv.setBigUint64(o + 8, BigInt.asUintN(64, e.value), true);
  });
  return bytes;
}

/** The first `count` entries of a struct kvm_msrs. */
export function decodeMsrs(bytes: Uint8Array, count?: number): MsrEntry[] {
  need(bytes, 8, 'kvm_msrs');
  const dv = view(bytes);
  const n = Math.min(count ?? dv.getUint32(0, true), (bytes.length - 8) / MSR_ENTRY_SIZE);
  const entries: MsrEntry[] = [];
  for (let i = 0; i < n; i++) {
    const o = 8 + i * MSR_ENTRY_SIZE;
    entries.push({ index: dv.getUint32(o, true), value: dv.getBigUint64(o + 8, true) });
  }
  return entries;
}

/** KVM_GET_CLOCK reports the clock as stable across vCPUs (the master clock is in use). */
export const CLOCK_TSC_STABLE = 2;
/** `realtime` is valid; given to KVM_SET_CLOCK, KVM adds the realtime elapsed since then. */
export const CLOCK_REALTIME = 1 << 2;
/** `hostTsc` is valid (KVM_GET_CLOCK only). */
export const CLOCK_HOST_TSC = 1 << 3;

/** struct kvm_clock_data: the guest's kvmclock in nanoseconds and what else KVM reported with it. */
export interface ClockData {
  clock: bigint;
  flags: number;
  realtime: bigint;
  hostTsc: bigint;
}

export function decodeClockData(bytes: Uint8Array): ClockData {
  need(bytes, CLOCK_DATA_SIZE, 'kvm_clock_data');
  const dv = view(bytes);
  return {
    clock: dv.getBigUint64(0, true),
    flags: dv.getUint32(8, true),
    realtime: dv.getBigUint64(16, true),
    hostTsc: dv.getBigUint64(24, true),
  };
}

export function encodeClockData(data: ClockData, bytes = new Uint8Array(CLOCK_DATA_SIZE)): Uint8Array {
  bytes.fill(0);
  const dv = view(bytes);
  dv.setBigUint64(0, BigInt.asUintN(64, data.clock), true);
  dv.setUint32(8, data.flags >>> 0, true);
  dv.setBigUint64(16, BigInt.asUintN(64, data.realtime), true);
  dv.setBigUint64(24, BigInt.asUintN(64, data.hostTsc), true);
  return bytes;
}

export type GsiRoute =
  | { gsi: number; kind: 'irqchip'; irqchip: number; pin: number }
  | { gsi: number; kind: 'msi'; addressLo: number; addressHi: number; data: number };

/** A struct kvm_irq_routing holding every route (KVM_SET_GSI_ROUTING replaces the whole table). */
export function encodeGsiRouting(routes: readonly GsiRoute[]): Uint8Array {
  const bytes = new Uint8Array(8 + routes.length * IRQ_ROUTING_ENTRY_SIZE);
  const dv = view(bytes);
  dv.setUint32(0, routes.length, true);
  routes.forEach((r, i) => {
    const o = 8 + i * IRQ_ROUTING_ENTRY_SIZE;
    dv.setUint32(o, r.gsi, true);
    if (r.kind === 'irqchip') {
      dv.setUint32(o + 4, 1, true);
      dv.setUint32(o + 16, r.irqchip, true);
      dv.setUint32(o + 20, r.pin, true);
    } else {
      dv.setUint32(o + 4, 2, true);
      dv.setUint32(o + 16, r.addressLo >>> 0, true);
      dv.setUint32(o + 20, r.addressHi >>> 0, true);
      dv.setUint32(o + 24, r.data >>> 0, true);
    }
  });
  return bytes;
}

/** The default ISA routing KVM sets up with its irqchip: GSI 0-15 to both PICs, 0-23 to the IOAPIC. */
export function defaultIrqchipRoutes(): GsiRoute[] {
  const routes: GsiRoute[] = [];
  for (let gsi = 0; gsi < 24; gsi++) {
    if (gsi < 16 && gsi !== 2) {
      routes.push({ gsi, kind: 'irqchip', irqchip: gsi < 8 ? 0 : 1, pin: gsi % 8 });
    }
    // ISA IRQ 0 (the PIT) enters the IOAPIC at pin 2.
    routes.push({ gsi, kind: 'irqchip', irqchip: 2, pin: gsi === 0 ? 2 : gsi });
  }
  return routes;
}

/** LAPIC register offsets inside struct kvm_lapic_state (the APIC page). */
export const LapicReg = {
  ID: 0x20,
  VERSION: 0x30,
  TPR: 0x80,
  EOI: 0xb0,
  LDR: 0xd0,
  DFR: 0xe0,
  SVR: 0xf0,
  ICR_LOW: 0x300,
  ICR_HIGH: 0x310,
  LVT_TIMER: 0x320,
  LVT_LINT0: 0x350,
  LVT_LINT1: 0x360,
  LVT_ERROR: 0x370,
} as const;

export function lapicRead(lapic: Uint8Array, reg: number): number {
  return view(lapic).getUint32(reg, true);
}

export function lapicWrite(lapic: Uint8Array, reg: number, value: number): void {
  view(lapic).setUint32(reg, value >>> 0, true);
}

const LVT_DELIVERY_MASK = 0x700;
const LVT_MASKED = 0x1_0000;
const DELIVERY_NMI = 0x400;
const DELIVERY_EXTINT = 0x700;

/**
 * Puts the LAPIC in virtual-wire mode, as firmware does: LINT0 delivers the PIC's interrupts
 * (ExtINT) and LINT1 NMIs. Without it KVM does not hand 8259 interrupts to the vCPU.
 */
export function lapicVirtualWire(lapic: Uint8Array): void {
  const lint0 = lapicRead(lapic, LapicReg.LVT_LINT0);
  lapicWrite(lapic, LapicReg.LVT_LINT0, (lint0 & ~(LVT_DELIVERY_MASK | LVT_MASKED)) | DELIVERY_EXTINT);
  const lint1 = lapicRead(lapic, LapicReg.LVT_LINT1);
  lapicWrite(lapic, LapicReg.LVT_LINT1, (lint1 & ~(LVT_DELIVERY_MASK | LVT_MASKED)) | DELIVERY_NMI);
}
