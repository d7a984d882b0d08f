// 64-bit entry state: a flat GDT, identity page tables for the first 4 GiB and the registers for
// entering at a given RIP/RSP in long mode at CPL0, as the Linux 64-bit boot protocol wants it
// (CS = __BOOT_CS 0x10, DS/ES/SS = __BOOT_DS 0x18, paging on, identity-mapped).
import type { Regs, Segment, Sregs } from '../kvm/structs.js';
import { emptyRegs } from '../kvm/structs.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { encodeDescriptor } from './cpu-state.js';
import { BOOT_GDT, BOOT_IDT, BOOT_PD, BOOT_PDPT, BOOT_PML4 } from './layout.js';

export const BOOT_CS = 0x10;
export const BOOT_DS = 0x18;
/** GDT entries written at BOOT_GDT: null, null, 64-bit code, data. */
export const BOOT_GDT_ENTRIES = 4;

export const CR0_PE = 0x1n;
export const CR0_ET = 0x10n;
export const CR0_NE = 0x20n;
export const CR0_PG = 0x8000_0000n;
export const CR4_PAE = 0x20n;
export const EFER_LME = 0x100n;
export const EFER_LMA = 0x400n;

const PTE_PRESENT = 0x1n;
const PTE_WRITE = 0x2n;
// User-accessible, so test guests can drop to CPL3 on these tables (the kernel replaces them).
const PTE_USER = 0x4n;
const PTE_LARGE = 0x80n;
const PTE_FLAGS = PTE_PRESENT | PTE_WRITE | PTE_USER;

const GiB = 1n << 30n;
const TWO_MiB = 1n << 21n;

export interface SegmentDescriptorFields {
  base: number;
  limit: number;
  /** Type nibble: 0xb code execute/read accessed, 0x3 data read/write accessed. */
  type: number;
  dpl: number;
  /** 64-bit code segment. */
  long: boolean;
  /** 32-bit default operand size (must be false when long). */
  big: boolean;
}

/** The 8-byte code/data descriptor (S=1, present, 4 KiB granularity). */
export function encodeSegmentDescriptor(d: SegmentDescriptorFields): bigint {
  return encodeDescriptor({
    base: d.base,
    limit: d.limit,
    access: 0x80 | ((d.dpl & 3) << 5) | 0x10 | (d.type & 0xf),
    flags: 0x8 | (d.big ? 0x4 : 0) | (d.long ? 0x2 : 0),
  });
}

function flatSegment(selector: number, type: number, long: boolean): Segment {
  return {
    base: 0n,
    limit: 0xffff_ffff,
    selector,
    type,
    present: 1,
    dpl: 0,
    db: long ? 0 : 1,
    s: 1,
    l: long ? 1 : 0,
    g: 1,
    avl: 0,
    unusable: 0,
  };
}

/** Writes the boot GDT at BOOT_GDT and an empty IDT at BOOT_IDT. */
export function writeBootGdt(memory: GuestMemory): void {
  const entries = [
    0n,
    0n,
    encodeSegmentDescriptor({ base: 0, limit: 0xf_ffff, type: 0xb, dpl: 0, long: true, big: false }),
    encodeSegmentDescriptor({ base: 0, limit: 0xf_ffff, type: 0x3, dpl: 0, long: false, big: true }),
  ];
  entries.forEach((entry, i) => {
    memory.writeU64(BOOT_GDT + i * 8, entry);
  });
  memory.writeU64(BOOT_IDT, 0n);
}

/**
 * Identity-maps [0, 4 GiB) at BOOT_PML4: 2 MiB pages through four page directories at BOOT_PD,
 * or with `pageSize: '1G'` 1 GiB pages straight from the PDPT (needs CPUID pdpe1gb).
 */
export function writeIdentityPageTables(memory: GuestMemory, options: { pageSize?: '2M' | '1G' } = {}): void {
  memory.fill(BOOT_PML4, 4096);
  memory.fill(BOOT_PDPT, 4096);
  memory.writeU64(BOOT_PML4, BigInt(BOOT_PDPT) | PTE_FLAGS);
  for (let g = 0; g < 4; g++) {
    if (options.pageSize === '1G') {
      memory.writeU64(BOOT_PDPT + g * 8, (BigInt(g) * GiB) | PTE_FLAGS | PTE_LARGE);
      continue;
    }
    const pd = BOOT_PD + g * 4096;
    memory.writeU64(BOOT_PDPT + g * 8, BigInt(pd) | PTE_FLAGS);
    for (let i = 0; i < 512; i++) {
      memory.writeU64(pd + i * 8, (BigInt(g) * GiB + BigInt(i) * TWO_MiB) | PTE_FLAGS | PTE_LARGE);
    }
  }
}

/** `base` (the vCPU's current special registers) switched to 64-bit long mode on the boot tables. */
export function longModeSregs(base: Sregs): Sregs {
  const data = flatSegment(BOOT_DS, 0x3, false);
  return {
    ...base,
    cs: flatSegment(BOOT_CS, 0xb, true),
    ds: data,
    es: data,
    fs: data,
    gs: data,
    ss: data,
    gdt: { base: BigInt(BOOT_GDT), limit: BOOT_GDT_ENTRIES * 8 - 1 },
    idt: { base: BigInt(BOOT_IDT), limit: 7 },
    cr0: CR0_PE | CR0_ET | CR0_NE | CR0_PG,
    cr3: BigInt(BOOT_PML4),
    cr4: CR4_PAE,
    efer: EFER_LME | EFER_LMA,
  };
}

export interface LongModeEntry {
  rip: number | bigint;
  rsp: number | bigint;
  /** The Linux boot protocol passes the zero page here. */
  rsi?: number | bigint;
}

/** General registers for the entry: interrupts off, everything else zero. */
export function longModeRegs(entry: LongModeEntry): Regs {
  const regs = emptyRegs();
  regs.rip = BigInt(entry.rip);
  regs.rsp = BigInt(entry.rsp);
  regs.rsi = BigInt(entry.rsi ?? 0);
  regs.rflags = 2n;
  return regs;
}

/** Writes GDT/IDT and page tables into guest memory and returns the vCPU state for the entry. */
export function setupLongMode(
  memory: GuestMemory,
  base: Sregs,
  entry: LongModeEntry,
  options: { pageSize?: '2M' | '1G' } = {},
): { sregs: Sregs; regs: Regs } {
  writeBootGdt(memory);
  writeIdentityPageTables(memory, options);
  return { sregs: longModeSregs(base), regs: longModeRegs(entry) };
}
