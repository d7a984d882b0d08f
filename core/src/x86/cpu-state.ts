// The register state a boot path hands the vCPU, as plain data: the machine turns it into
// KVM_SET_REGS / KVM_SET_SREGS. Segment fields mirror struct kvm_segment.

export interface SegmentState {
  selector: number;
  base: number;
  limit: number;
  /** Descriptor type nibble (e.g. 0xb: code execute/read accessed; 0x3: data read/write accessed). */
  type: number;
  present: number;
  dpl: number;
  /** Default operand size: 1 for 32-bit segments. */
  db: number;
  /** Code or data (1) versus system (0) descriptor. */
  s: number;
  /** 64-bit code segment. */
  l: number;
  /** Limit counted in 4 KiB pages. */
  g: number;
  avl: number;
}

export interface DescriptorTableState {
  base: number;
  limit: number;
}

export interface SpecialRegisters {
  cs: SegmentState;
  ds: SegmentState;
  es: SegmentState;
  fs: SegmentState;
  gs: SegmentState;
  ss: SegmentState;
  tr: SegmentState;
  gdt: DescriptorTableState;
  idt: DescriptorTableState;
  cr0: number;
  cr3: number;
  cr4: number;
  efer: number;
}

export interface BootRegisters {
  rip: number;
  rsp: number;
  rflags: number;
  rsi: number;
  rbx: number;
}

/**
 * Where and how the boot vCPU starts. boot-vcpu.ts turns it into KVM registers.
 * - `long64` (bzImage 64-bit boot protocol): the GDT and identity page tables are already in
 *   guest memory (long-mode.ts); `sregs` is absent and bootSregs() derives them.
 * - `protected32` (PVH): `sregs` is complete (flat 32-bit segments, CR0.PE only, no paging).
 */
export interface BootCpuState {
  mode: 'long64' | 'protected32';
  regs: BootRegisters;
  sregs?: SpecialRegisters;
}

/** The flags register value with only the always-one bit 1 set (interrupts off). */
export const RFLAGS_RESERVED_ONE = 0x2;
export const CR0_PE = 0x1;
export const CR0_ET = 0x10;

export interface DescriptorFields {
  base: number;
  limit: number;
  /** Access byte: P, DPL, S and type. */
  access: number;
  /** Flags nibble: G, D/B, L, AVL. */
  flags: number;
}

/** The 8-byte GDT descriptor for the given fields. */
export function encodeDescriptor(d: DescriptorFields): bigint {
  const base = BigInt(d.base >>> 0);
  const limit = BigInt(d.limit & 0xf_ffff);
  return (
    (limit & 0xffffn) |
    ((base & 0xff_ffffn) << 16n) |
    (BigInt(d.access & 0xff) << 40n) |
    ((limit >> 16n) << 48n) |
    (BigInt(d.flags & 0xf) << 52n) |
    ((base >> 24n) << 56n)
  );
}

/** The kvm_segment view of a descriptor loaded with `selector`. */
export function segmentFromDescriptor(selector: number, d: DescriptorFields): SegmentState {
  const g = (d.flags >> 3) & 1;
  return {
    selector,
    base: d.base,
    // KVM wants the byte-granular limit, as the CPU caches it.
    limit: g ? d.limit * 0x1000 + 0xfff : d.limit,
    type: d.access & 0xf,
    present: (d.access >> 7) & 1,
    dpl: (d.access >> 5) & 3,
    s: (d.access >> 4) & 1,
    db: (d.flags >> 2) & 1,
    l: (d.flags >> 1) & 1,
    g,
    avl: d.flags & 1,
  };
}
