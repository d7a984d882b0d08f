// PVH boot (xen/include/public/arch-x86/hvm/start_info.h): the hvm_start_info block and the
// flat 32-bit protected-mode state an ELF vmlinux's PHYS32_ENTRY expects.
import type { GuestMemory } from '../memory/guest-memory.js';
import { ByteWriter } from './bytes.js';
import {
  type BootCpuState,
  CR0_ET,
  CR0_PE,
  type DescriptorFields,
  encodeDescriptor,
  RFLAGS_RESERVED_ONE,
  type SpecialRegisters,
  segmentFromDescriptor,
} from './cpu-state.js';
import type { E820Entry } from './e820.js';
import { BOOT_GDT, BOOT_IDT, BOOT_STACK, PVH_START_INFO } from './layout.js';

export const HVM_START_MAGIC = 0x336e_c578;
const START_INFO_SIZE = 0x38;
const MODLIST_ENTRY_SIZE = 32;
const MEMMAP_ENTRY_SIZE = 24;
/** Where the module list and memory map follow the start info inside the PVH page. */
export const PVH_MODLIST = PVH_START_INFO + 0x40;
export const PVH_MEMMAP = PVH_START_INFO + 0x80;
const PVH_PAGE_END = PVH_START_INFO + 0x1000;

export interface StartInfoOptions {
  cmdlineAddr: number;
  initrd?: { addr: number; size: number };
  rsdpAddr?: number;
  e820: readonly E820Entry[];
}

/** Writes hvm_start_info (version 1), its module list and memory map at PVH_START_INFO; returns its address. */
export function writeStartInfo(mem: GuestMemory, opts: StartInfoOptions): number {
  const maxEntries = Math.floor((PVH_PAGE_END - PVH_MEMMAP) / MEMMAP_ENTRY_SIZE);
  if (opts.e820.length > maxEntries) {
    throw new Error(`PVH memory map has ${opts.e820.length} entries; room for ${maxEntries}`);
  }
  const info = new ByteWriter()
    .u32(HVM_START_MAGIC)
    .u32(1)
    .u32(0)
    .u32(opts.initrd ? 1 : 0)
    .u64(opts.initrd ? PVH_MODLIST : 0)
    .u64(opts.cmdlineAddr)
    .u64(opts.rsdpAddr ?? 0)
    .u64(PVH_MEMMAP)
    .u32(opts.e820.length)
    .u32(0)
    .finish();
  if (info.length !== START_INFO_SIZE) throw new Error('hvm_start_info layout mismatch');
  mem.fill(PVH_START_INFO, PVH_PAGE_END - PVH_START_INFO);
  mem.write(PVH_START_INFO, info);
  if (opts.initrd) {
    const mod = new ByteWriter().u64(opts.initrd.addr).u64(opts.initrd.size).u64(0).u64(0).finish();
    if (mod.length !== MODLIST_ENTRY_SIZE) throw new Error('hvm_modlist_entry layout mismatch');
    mem.write(PVH_MODLIST, mod);
  }
  const map = new ByteWriter();
  for (const e of opts.e820) map.u64(e.addr).u64(e.size).u32(e.type).u32(0);
  mem.write(PVH_MEMMAP, map.finish());
  return PVH_START_INFO;
}

/** Flat 4 GiB segments for the PVH entry: CS 0x08, data 0x10, a 32-bit busy TSS 0x18. */
const FLAT_CODE: DescriptorFields = { base: 0, limit: 0xf_ffff, access: 0x9b, flags: 0xc };
const FLAT_DATA: DescriptorFields = { base: 0, limit: 0xf_ffff, access: 0x93, flags: 0xc };
const BOOT_TSS: DescriptorFields = { base: 0, limit: 0x67, access: 0x8b, flags: 0x0 };
export const PVH_CODE_SELECTOR = 0x08;
export const PVH_DATA_SELECTOR = 0x10;
export const PVH_TSS_SELECTOR = 0x18;

/** Writes the PVH GDT at BOOT_GDT and returns the vCPU state for entering the kernel at `entry`. */
export function pvhEntryState(mem: GuestMemory, entry: number, startInfoAddr: number): BootCpuState {
  const gdt = [0n, encodeDescriptor(FLAT_CODE), encodeDescriptor(FLAT_DATA), encodeDescriptor(BOOT_TSS)];
  const bytes = new ByteWriter();
  for (const d of gdt) bytes.u64(d);
  mem.write(BOOT_GDT, bytes.finish());
  mem.fill(BOOT_IDT, 8);
  const data = segmentFromDescriptor(PVH_DATA_SELECTOR, FLAT_DATA);
  const sregs: SpecialRegisters = {
    cs: segmentFromDescriptor(PVH_CODE_SELECTOR, FLAT_CODE),
    ds: data,
    es: { ...data },
    fs: { ...data },
    gs: { ...data },
    ss: { ...data },
    tr: segmentFromDescriptor(PVH_TSS_SELECTOR, BOOT_TSS),
    gdt: { base: BOOT_GDT, limit: gdt.length * 8 - 1 },
    idt: { base: BOOT_IDT, limit: 0 },
    cr0: CR0_PE | CR0_ET,
    cr3: 0,
    cr4: 0,
    efer: 0,
  };
  return {
    mode: 'protected32',
    regs: { rip: entry, rsp: BOOT_STACK, rflags: RFLAGS_RESERVED_ONE, rsi: 0, rbx: startInfoAddr },
    sregs,
  };
}
