// The e820 memory map the guest kernel trusts for what is RAM: built from the machine's RAM
// regions with the legacy low-memory holes and any firmware/device ranges carved out.
import { hex } from './bytes.js';
import { BIOS_AREA_END, BIOS_AREA_START, EBDA_END, EBDA_START, ramRegions } from './layout.js';

export const E820_RAM = 1;
export const E820_RESERVED = 2;
export const E820_ACPI = 3;
export const E820_NVS = 4;

export interface E820Entry {
  addr: number;
  size: number;
  type: number;
}

export interface AddressRange {
  addr: number;
  size: number;
}

/** Removes `hole` from each range, splitting ranges it falls inside. */
function subtract(ranges: AddressRange[], hole: AddressRange): AddressRange[] {
  const holeEnd = hole.addr + hole.size;
  const out: AddressRange[] = [];
  for (const r of ranges) {
    const end = r.addr + r.size;
    if (holeEnd <= r.addr || hole.addr >= end) {
      out.push(r);
      continue;
    }
    if (hole.addr > r.addr) out.push({ addr: r.addr, size: hole.addr - r.addr });
    if (holeEnd < end) out.push({ addr: holeEnd, size: end - holeEnd });
  }
  return out;
}

/**
 * The e820 map for a machine with `memorySize` bytes of RAM laid out by `ramRegions`: RAM below the
 * EBDA, the EBDA and BIOS area reserved, RAM from 1 MiB to the MMIO hole and above 4 GiB, and each
 * of `reserved` (e.g. PCIe ECAM, ACPI tables outside the BIOS area) marked with its type and
 * removed from RAM. Sorted by address, no overlaps.
 */
export function buildE820Map(
  memorySize: number,
  reserved: readonly (AddressRange & { type?: number })[] = [],
): E820Entry[] {
  const lowHoles: (AddressRange & { type?: number })[] = [
    { addr: EBDA_START, size: EBDA_END - EBDA_START },
    { addr: BIOS_AREA_START, size: BIOS_AREA_END - BIOS_AREA_START },
  ];
  // 0xA0000..0xE0000 (VGA window, option ROMs) is neither RAM nor reserved: a plain hole, as on a PC.
  let ram: AddressRange[] = ramRegions(memorySize).map((r) => ({ addr: r.gpa, size: r.size }));
  ram = subtract(ram, { addr: EBDA_START, size: BIOS_AREA_END - EBDA_START });
  const special = [...lowHoles, ...reserved];
  for (const s of reserved) ram = subtract(ram, s);
  const entries: E820Entry[] = [
    ...ram.map((r) => ({ addr: r.addr, size: r.size, type: E820_RAM })),
    ...special.map((s) => ({ addr: s.addr, size: s.size, type: s.type ?? E820_RESERVED })),
  ].filter((e) => e.size > 0);
  entries.sort((a, b) => a.addr - b.addr);
  for (let i = 1; i < entries.length; i++) {
    const prev = entries[i - 1]!;
    if (prev.addr + prev.size > entries[i]!.addr) {
      throw new Error(`e820: reserved ranges overlap at ${hex(entries[i]!.addr)}`);
    }
  }
  return entries;
}
