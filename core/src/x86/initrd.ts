// Placing the initrd and the command line in guest memory.
import type { GuestMemory } from '../memory/guest-memory.js';
import { alignDown, hex } from './bytes.js';
import { KernelImageError } from './bzimage.js';
import { CMDLINE, CMDLINE_MAX, KERNEL_LOAD } from './layout.js';

const PAGE = 0x1000;

export interface Range {
  start: number;
  /** One past the last byte. */
  end: number;
}

export interface InitrdPlacement {
  /** First byte that may hold the initrd (nothing is placed below it). */
  floor: number;
  /** One past the last byte the initrd may use: min(RAM end, initrd_addr_max + 1). */
  ceiling: number;
  /** Ranges the initrd must not overlap (the kernel and what it decompresses into). */
  avoid: readonly Range[];
}

/**
 * The highest page-aligned address where `size` bytes fit below `ceiling`, above `floor` and
 * outside every `avoid` range: the kernel reclaims memory below the initrd first, and a high
 * initrd stays clear of the kernel's decompression buffer.
 */
export function placeInitrd(size: number, placement: InitrdPlacement): number {
  if (size <= 0) throw new KernelImageError('initrd is empty');
  const avoid = [...placement.avoid].sort((a, b) => b.start - a.start);
  let addr = alignDown(placement.ceiling - size, PAGE);
  while (addr >= placement.floor) {
    const end = addr + size;
    const blocker = avoid.find((r) => addr < r.end && end > r.start);
    if (!blocker) return addr;
    addr = alignDown(blocker.start - size, PAGE);
  }
  throw new KernelImageError(
    `initrd of ${formatSize(size)} does not fit in guest RAM between ${hex(placement.floor)} and ${hex(placement.ceiling)} beside the kernel: give the VM more memory`,
  );
}

export function formatSize(bytes: number): string {
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
  if (bytes >= 1 << 10) return `${(bytes / (1 << 10)).toFixed(1)} KiB`;
  return `${bytes} bytes`;
}

/** Lowest address an initrd may take: above the boot structures and the conventional kernel load address. */
export const INITRD_FLOOR = KERNEL_LOAD;

/**
 * Encodes the command line (UTF-8, NUL-terminated) and checks it against `limit` bytes (the
 * kernel's cmdline_size, without the NUL) and the CMDLINE_MAX area.
 */
export function encodeCmdline(cmdline: string, limit = CMDLINE_MAX - 1): Uint8Array {
  if (cmdline.includes('\0')) throw new KernelImageError('kernel command line contains a NUL character');
  const text = new TextEncoder().encode(cmdline);
  const max = Math.min(limit, CMDLINE_MAX - 1);
  if (text.length > max) {
    throw new KernelImageError(`kernel command line is ${text.length} bytes; at most ${max} allowed`);
  }
  const out = new Uint8Array(text.length + 1);
  out.set(text);
  return out;
}

/** Writes the encoded command line at CMDLINE; returns its address and length without the NUL. */
export function writeCmdline(
  mem: GuestMemory,
  cmdline: string,
  limit?: number,
): { addr: number; length: number } {
  const bytes = encodeCmdline(cmdline, limit);
  mem.fill(CMDLINE, CMDLINE_MAX);
  mem.write(CMDLINE, bytes);
  return { addr: CMDLINE, length: bytes.length - 1 };
}
