// Preparing guest memory to boot Linux: detects a bzImage (64-bit boot protocol) or an ELF vmlinux
// (PVH), loads it with its initrd and command line, writes the e820 map, MP and ACPI tables, and
// returns the register state the boot vCPU starts with.
import type { GuestMemory } from '../memory/guest-memory.js';
import { writeAcpiTables } from './acpi/tables.js';
import { hex } from './bytes.js';
import {
  buildBootParams,
  KernelImageError,
  kernelFootprint,
  looksLikeBzImage,
  parseBzImage,
} from './bzimage.js';
import { type BootCpuState, RFLAGS_RESERVED_ONE } from './cpu-state.js';
import { buildE820Map, type E820Entry } from './e820.js';
import { findPvhEntry, looksLikeElf, PT_LOAD, parseElf } from './elf.js';
import { formatSize, INITRD_FLOOR, placeInitrd, type Range, writeCmdline } from './initrd.js';
import {
  BIOS_AREA_END,
  BIOS_AREA_START,
  BOOT_STACK,
  IRQ_ACPI_SCI,
  KERNEL_LOAD,
  MAX_CPUS,
  PCIE_ECAM,
  PCIE_ECAM_SIZE,
  ramRegions,
  ZERO_PAGE,
} from './layout.js';
import { writeBootGdt, writeIdentityPageTables } from './long-mode.js';
import { writeMpTable } from './mptable.js';
import { pvhEntryState, writeStartInfo } from './pvh.js';

/** x86 COMMAND_LINE_SIZE: what a PVH-booted kernel copies (it has no header to say otherwise). */
export const PVH_CMDLINE_LIMIT = 2047;
/** Below this a kernel cannot even decompress; a clear message beats a silent hang. */
export const MIN_MEMORY = 16 * 1024 * 1024;

export interface LinuxBootOptions {
  kernel: Uint8Array;
  initrd?: Uint8Array;
  cmdline: string;
  /** Appended to `cmdline` (e.g. the CPUID profile's profileKernelArgs()). */
  extraCmdline?: readonly string[];
  cpus: number;
  memorySize: number;
  /** GSI of the ISA timer IRQ0 announced in MADT/MP: 2 (default, PC convention) or 0. */
  irq0Gsi?: 0 | 2;
  /** Publish MCFG and reserve the PCIe ECAM window; only when the machine serves ECAM MMIO. Default false. */
  pcieEcam?: boolean;
}

export interface LinuxBoot {
  format: 'bzImage' | 'pvh';
  entry: BootCpuState;
  /** The command line as written into the guest. */
  cmdline: string;
  e820: E820Entry[];
  /** Guest-physical range holding the kernel (for bzImage: including its decompression buffer). */
  kernel: Range;
  initrd?: { addr: number; size: number };
  rsdpAddr: number;
  /** For a bzImage: the boot protocol version, e.g. 0x020f. */
  protocolVersion?: number;
}

function validate(mem: GuestMemory, opts: LinuxBootOptions): number {
  if (opts.kernel.length === 0) throw new KernelImageError('kernel file is empty');
  if (!Number.isInteger(opts.cpus) || opts.cpus < 1 || opts.cpus > MAX_CPUS) {
    throw new RangeError(`--cpus must be 1..${MAX_CPUS}, got ${opts.cpus}`);
  }
  if (!Number.isSafeInteger(opts.memorySize) || opts.memorySize < MIN_MEMORY) {
    throw new RangeError(
      `guest memory ${formatSize(opts.memorySize)} is below the minimum ${formatSize(MIN_MEMORY)}`,
    );
  }
  for (const r of ramRegions(opts.memorySize)) {
    if (!mem.contains(r.gpa, r.size)) {
      throw new RangeError(
        `GuestMemory does not cover RAM ${hex(r.gpa)}+${hex(r.size)} of a ${formatSize(opts.memorySize)} machine`,
      );
    }
  }
  return ramRegions(opts.memorySize)[0]!.size;
}

function fullCmdline(opts: LinuxBootOptions): string {
  return [opts.cmdline.trim(), ...(opts.extraCmdline ?? [])].filter((s) => s.length > 0).join(' ');
}

/** What kind of kernel `image` is, or a KernelImageError saying why it is none. */
export function detectKernelFormat(image: Uint8Array): 'bzImage' | 'pvh' {
  if (looksLikeBzImage(image)) return 'bzImage';
  if (looksLikeElf(image)) return 'pvh';
  if (image.length >= 2 && image[0] === 0x1f && image[1] === 0x8b) {
    throw new KernelImageError(
      'not a Linux kernel: a gzip file (a compressed vmlinux?); use the bzImage (vmlinuz)',
    );
  }
  throw new KernelImageError(
    'not a Linux kernel: neither a bzImage (no HdrS magic at 0x202) nor an ELF vmlinux (no \\x7fELF magic)',
  );
}

/** Writes the firmware tables both boot paths share; returns the RSDP address and the e820 map. */
function writePlatformTables(
  mem: GuestMemory,
  opts: LinuxBootOptions,
): { rsdpAddr: number; e820: E820Entry[] } {
  const irq0Gsi = opts.irq0Gsi ?? 2;
  const ecam = opts.pcieEcam ?? false;
  const wiring = { cpus: opts.cpus, ioapicId: opts.cpus, irq0Gsi, sciIrq: IRQ_ACPI_SCI };
  writeMpTable(mem, wiring);
  const acpi = writeAcpiTables(mem, { ...wiring, ecam });
  const reserved: { addr: number; size: number }[] = [];
  if (acpi.range.addr < BIOS_AREA_START || acpi.range.addr + acpi.range.size > BIOS_AREA_END) {
    reserved.push(acpi.range);
  }
  if (ecam) reserved.push({ addr: PCIE_ECAM, size: PCIE_ECAM_SIZE });
  return { rsdpAddr: acpi.rsdpAddr, e820: buildE820Map(opts.memorySize, reserved) };
}

function loadInitrd(
  mem: GuestMemory,
  initrd: Uint8Array | undefined,
  ceiling: number,
  kernel: Range,
): { addr: number; size: number } | undefined {
  if (!initrd) return undefined;
  const addr = placeInitrd(initrd.length, { floor: INITRD_FLOOR, ceiling, avoid: [kernel] });
  mem.write(addr, initrd);
  return { addr, size: initrd.length };
}

/** Loads a bzImage for the 64-bit boot protocol. */
function bootBzImage(mem: GuestMemory, opts: LinuxBootOptions, lowRamEnd: number): LinuxBoot {
  const header = parseBzImage(opts.kernel);
  const footprint = kernelFootprint(header, KERNEL_LOAD);
  if (footprint.end > lowRamEnd) {
    throw new RangeError(
      `guest memory too small for this kernel: it needs RAM up to ${formatSize(footprint.end)} to decompress, the VM has ${formatSize(lowRamEnd)} below 4 GiB`,
    );
  }
  const kernel = { start: footprint.start, end: footprint.end };
  mem.write(KERNEL_LOAD, opts.kernel.subarray(header.payloadOffset));
  const cmdlineText = fullCmdline(opts);
  const cmdline = writeCmdline(mem, cmdlineText, header.cmdlineSize || undefined);
  const { rsdpAddr, e820 } = writePlatformTables(mem, opts);
  const ceiling = Math.min(lowRamEnd, header.initrdAddrMax + 1);
  const initrd = loadInitrd(mem, opts.initrd, ceiling, kernel);
  const params = buildBootParams(opts.kernel, header, {
    cmdlineAddr: cmdline.addr,
    cmdlineLength: cmdline.length,
    initrd,
    e820,
    rsdpAddr,
  });
  mem.write(ZERO_PAGE, params);
  const entry: BootCpuState = {
    mode: 'long64',
    // The 64-bit entry point sits 0x200 bytes into the protected-mode payload.
    regs: { rip: KERNEL_LOAD + 0x200, rsp: BOOT_STACK, rflags: RFLAGS_RESERVED_ONE, rsi: ZERO_PAGE, rbx: 0 },
  };
  // The 64-bit protocol wants __BOOT_CS/__BOOT_DS in a GDT and the kernel, zero page and command
  // line identity-mapped; bootSregs() (boot-vcpu.ts) points the vCPU at these.
  writeBootGdt(mem);
  writeIdentityPageTables(mem);
  const boot: LinuxBoot = {
    format: 'bzImage',
    entry,
    cmdline: cmdlineText,
    e820,
    kernel,
    rsdpAddr,
    protocolVersion: header.version,
  };
  if (initrd) boot.initrd = initrd;
  return boot;
}

/** Loads an ELF vmlinux with a PVH entry note. */
function bootPvh(mem: GuestMemory, opts: LinuxBootOptions, lowRamEnd: number): LinuxBoot {
  const elf = parseElf(opts.kernel);
  const pvhEntry = findPvhEntry(opts.kernel, elf);
  if (pvhEntry === undefined) {
    throw new KernelImageError(
      'ELF kernel has no PVH entry (no Xen PHYS32_ENTRY note): build it with CONFIG_PVH=y or boot the bzImage',
    );
  }
  const loads = elf.segments.filter((s) => s.type === PT_LOAD && s.memsz > 0);
  if (loads.length === 0) throw new KernelImageError('malformed ELF: no loadable segments');
  let start = Number.POSITIVE_INFINITY;
  let end = 0;
  for (const seg of loads) {
    const segEnd = seg.paddr + seg.memsz;
    if (seg.paddr < KERNEL_LOAD) {
      throw new KernelImageError(
        `ELF segment at ${hex(seg.paddr)} overlaps the boot area below ${hex(KERNEL_LOAD)}`,
      );
    }
    if (segEnd > lowRamEnd) {
      throw new RangeError(
        `guest memory too small for this kernel: a segment ends at ${formatSize(segEnd)}, the VM has ${formatSize(lowRamEnd)} below 4 GiB`,
      );
    }
    start = Math.min(start, seg.paddr);
    end = Math.max(end, segEnd);
  }
  if (pvhEntry < start || pvhEntry >= end) {
    throw new KernelImageError(`PVH entry ${hex(pvhEntry)} lies outside the kernel's loaded segments`);
  }
  for (const seg of loads) {
    mem.write(seg.paddr, opts.kernel.subarray(seg.offset, seg.offset + seg.filesz));
    mem.fill(seg.paddr + seg.filesz, seg.memsz - seg.filesz);
  }
  const kernel = { start, end };
  const cmdlineText = fullCmdline(opts);
  const cmdline = writeCmdline(mem, cmdlineText, PVH_CMDLINE_LIMIT);
  const { rsdpAddr, e820 } = writePlatformTables(mem, opts);
  const initrd = loadInitrd(mem, opts.initrd, lowRamEnd, kernel);
  const startInfo = writeStartInfo(mem, { cmdlineAddr: cmdline.addr, initrd, rsdpAddr, e820 });
  const boot: LinuxBoot = {
    format: 'pvh',
    entry: pvhEntryState(mem, pvhEntry, startInfo),
    cmdline: cmdlineText,
    e820,
    kernel,
    rsdpAddr,
  };
  if (initrd) boot.initrd = initrd;
  return boot;
}

/**
 * Prepares `mem` to boot Linux from `opts.kernel` (a bzImage or an ELF vmlinux with a PVH note)
 * and returns the boot vCPU's starting state. Secondary vCPUs wait for INIT/SIPI from the kernel.
 * Throws KernelImageError for a file that is not a bootable kernel and RangeError for machine
 * settings that cannot work (both before any guest state matters).
 */
export function prepareLinuxBoot(mem: GuestMemory, opts: LinuxBootOptions): LinuxBoot {
  const lowRamEnd = validate(mem, opts);
  const format = detectKernelFormat(opts.kernel);
  return format === 'bzImage' ? bootBzImage(mem, opts, lowRamEnd) : bootPvh(mem, opts, lowRamEnd);
}
