// A guest page-table walker: translates a guest-virtual (linear) address to guest-physical the
// way the vCPU's MMU would, for the few instructions the VMM carries out itself when the host's
// emulator cannot (see emulation-failure.ts). Covers no paging, 32-bit (4 KiB/4 MiB), PAE
// (4 KiB/2 MiB) and 4- and 5-level long mode (4 KiB/2 MiB/1 GiB). Page tables live in guest RAM,
// which the guest controls: every entry is read through GuestMemory and a table outside RAM is a
// clean failure, never an exception.
import { type GuestMemory, GuestMemoryError } from '../memory/guest-memory.js';

/** The control registers that decide how a linear address translates. */
export interface PagingState {
  cr0: bigint;
  cr3: bigint;
  cr4: bigint;
  efer: bigint;
}

export const CR0_WP = 1n << 16n;
export const CR0_PG = 1n << 31n;
export const CR4_PSE = 1n << 4n;
export const CR4_PAE = 1n << 5n;
export const CR4_LA57 = 1n << 12n;
export const EFER_LMA = 1n << 10n;

const PTE_PRESENT = 1n;
const PTE_WRITABLE = 1n << 1n;
const PTE_USER = 1n << 2n;
const PTE_ACCESSED = 1n << 5n;
const PTE_DIRTY = 1n << 6n;
const PTE_LARGE = 1n << 7n;
/** Physical address bits 51:12 of an entry. */
const PTE_ADDRESS = 0x000f_ffff_ffff_f000n;
const PAGE_SIZE = 4096n;

export interface Access {
  write?: boolean;
  /** A CPL3 access: the page must be a user page. */
  user?: boolean;
}

export type PageFaultReason = 'not-present' | 'read-only' | 'supervisor-only';

export type Translation =
  | { ok: true; gpa: bigint; pageSize: bigint }
  /** The CPU would raise #PF (errorCode as it would push it). */
  | { ok: false; kind: 'page-fault'; reason: PageFaultReason; level: string; errorCode: number }
  /** The CPU would raise #GP (or #SS for a stack access). */
  | { ok: false; kind: 'non-canonical' }
  /** A paging-structure entry points outside guest RAM: no CPU behaviour to mimic. */
  | { ok: false; kind: 'table-outside-ram'; level: string; tableGpa: bigint };

export type PagingMode = 'none' | '32-bit' | 'pae' | '4-level' | '5-level';

export function pagingMode(state: PagingState): PagingMode {
  if ((state.cr0 & CR0_PG) === 0n) return 'none';
  if ((state.cr4 & CR4_PAE) === 0n) return '32-bit';
  if ((state.efer & EFER_LMA) === 0n) return 'pae';
  return (state.cr4 & CR4_LA57) !== 0n ? '5-level' : '4-level';
}

/** True when bits 63..(width-1) of a 64-bit address are all equal. */
export function isCanonical(address: bigint, width: 48 | 57): boolean {
  const top = BigInt.asUintN(64, address) >> BigInt(width - 1);
  return top === 0n || top === (1n << BigInt(65 - width)) - 1n;
}

interface Level {
  name: string;
  /** Bit position of the lowest address bit this level's index covers. */
  shift: bigint;
  /** Page size when this level's entry has PS set (0: PS is not a leaf here). */
  largePage: bigint;
}

const LONG_MODE_LEVELS: Level[] = [
  { name: 'PML5E', shift: 48n, largePage: 0n },
  { name: 'PML4E', shift: 39n, largePage: 0n },
  { name: 'PDPTE', shift: 30n, largePage: 1n << 30n },
  { name: 'PDE', shift: 21n, largePage: 1n << 21n },
  { name: 'PTE', shift: 12n, largePage: 0n },
];

function faultCode(reason: PageFaultReason, access: Access): number {
  return (reason === 'not-present' ? 0 : 1) | (access.write ? 2 : 0) | (access.user ? 4 : 0);
}

function pageFault(reason: PageFaultReason, level: string, access: Access): Translation {
  return { ok: false, kind: 'page-fault', reason, level, errorCode: faultCode(reason, access) };
}

/** Reads a paging-structure entry, or undefined when it lies outside guest RAM. */
function readEntry(memory: GuestMemory, gpa: bigint, size: 4 | 8): bigint | undefined {
  try {
    return size === 8 ? memory.readU64(gpa) : BigInt(memory.readU32(gpa));
  } catch (error) {
    if (error instanceof GuestMemoryError) return undefined;
    throw error;
  }
}

/**
 * Sets accessed (and for a write the leaf's dirty) bits as the CPU does, with an atomic OR so a
 * concurrent update of the entry by another vCPU is not lost.
 */
function markEntry(memory: GuestMemory, gpa: bigint, size: 4 | 8, bits: bigint): void {
  const bytes = memory.view(gpa, size);
  if (bytes.byteOffset % size !== 0) return;
  if (size === 8) Atomics.or(new BigUint64Array(bytes.buffer, bytes.byteOffset, 1), 0, bits);
  else Atomics.or(new Uint32Array(bytes.buffer, bytes.byteOffset, 1), 0, Number(bits));
}

interface Walk {
  tableGpa: bigint;
  levels: Level[];
  entrySize: 4 | 8;
  /** Entry bits that hold the next table's (or a 4 KiB page's) address. */
  addressMask: bigint;
  /** Large-page base address from a leaf entry with PS set. */
  largeBase: (entry: bigint, level: Level) => bigint;
}

function walk(memory: GuestMemory, state: PagingState, linear: bigint, access: Access, w: Walk): Translation {
  let table = w.tableGpa;
  let writable = true;
  let user = true;
  const visited: bigint[] = [];
  for (const level of w.levels) {
    const indexBits = w.entrySize === 8 ? 9n : 10n;
    const index = (linear >> level.shift) & ((1n << indexBits) - 1n);
    const entryGpa = table + index * BigInt(w.entrySize);
    const entry = readEntry(memory, entryGpa, w.entrySize);
    if (entry === undefined)
      return { ok: false, kind: 'table-outside-ram', level: level.name, tableGpa: table };
    if ((entry & PTE_PRESENT) === 0n) return pageFault('not-present', level.name, access);
    writable &&= (entry & PTE_WRITABLE) !== 0n;
    user &&= (entry & PTE_USER) !== 0n;
    visited.push(entryGpa);
    const leaf = level.shift === 12n || (level.largePage !== 0n && (entry & PTE_LARGE) !== 0n);
    if (!leaf) {
      table = entry & w.addressMask;
      continue;
    }
    if (access.user && !user) return pageFault('supervisor-only', level.name, access);
    const writeProtected = access.user || (state.cr0 & CR0_WP) !== 0n;
    if (access.write && !writable && writeProtected) return pageFault('read-only', level.name, access);
    const pageSize = level.shift === 12n ? PAGE_SIZE : level.largePage;
    const base = level.shift === 12n ? entry & w.addressMask : w.largeBase(entry, level);
    for (const gpa of visited.slice(0, -1)) markEntry(memory, gpa, w.entrySize, PTE_ACCESSED);
    markEntry(memory, entryGpa, w.entrySize, PTE_ACCESSED | (access.write ? PTE_DIRTY : 0n));
    return { ok: true, gpa: base + (linear & (pageSize - 1n)), pageSize };
  }
  throw new Error('unreachable: the last paging level is always a leaf');
}

/** Translates one linear address (the byte at `linear`) to guest-physical. */
export function translate(
  memory: GuestMemory,
  state: PagingState,
  linear: bigint,
  access: Access = {},
): Translation {
  const mode = pagingMode(state);
  switch (mode) {
    case 'none':
      return { ok: true, gpa: BigInt.asUintN(32, linear), pageSize: PAGE_SIZE };
    case '32-bit': {
      const address = BigInt.asUintN(32, linear);
      return walk(memory, state, address, access, {
        tableGpa: state.cr3 & 0xffff_f000n,
        levels: [
          { name: 'PDE', shift: 22n, largePage: (state.cr4 & CR4_PSE) !== 0n ? 1n << 22n : 0n },
          { name: 'PTE', shift: 12n, largePage: 0n },
        ],
        entrySize: 4,
        addressMask: 0xffff_f000n,
        // PSE-36: bits 16:13 of a 4 MiB PDE are physical address bits 35:32.
        largeBase: (entry) => (entry & 0xffc0_0000n) | (((entry >> 13n) & 0xfn) << 32n),
      });
    }
    case 'pae': {
      const address = BigInt.asUintN(32, linear);
      const pdpteGpa = (state.cr3 & 0xffff_ffe0n) + (address >> 30n) * 8n;
      const pdpte = readEntry(memory, pdpteGpa, 8);
      if (pdpte === undefined)
        return { ok: false, kind: 'table-outside-ram', level: 'PDPTE', tableGpa: pdpteGpa };
      if ((pdpte & PTE_PRESENT) === 0n) return pageFault('not-present', 'PDPTE', access);
      return walk(memory, state, address, access, {
        tableGpa: pdpte & PTE_ADDRESS,
        levels: LONG_MODE_LEVELS.slice(3),
        entrySize: 8,
        addressMask: PTE_ADDRESS,
        largeBase: (entry, level) => entry & PTE_ADDRESS & ~(level.largePage - 1n),
      });
    }
    case '4-level':
    case '5-level': {
      const fiveLevel = mode === '5-level';
      if (!isCanonical(linear, fiveLevel ? 57 : 48)) return { ok: false, kind: 'non-canonical' };
      return walk(memory, state, BigInt.asUintN(64, linear), access, {
        tableGpa: state.cr3 & PTE_ADDRESS,
        levels: fiveLevel ? LONG_MODE_LEVELS : LONG_MODE_LEVELS.slice(1),
        entrySize: 8,
        addressMask: PTE_ADDRESS,
        largeBase: (entry, level) => entry & PTE_ADDRESS & ~(level.largePage - 1n),
      });
    }
  }
}

/** A failed access to linear memory: where, and why. */
export type LinearAccessFailure = Exclude<Translation, { ok: true }> & { linear: bigint };

/** Human-readable reason for a failed translation, for log lines and fatal messages. */
export function describeFailure(failure: LinearAccessFailure): string {
  const at = `guest-virtual 0x${failure.linear.toString(16)}`;
  switch (failure.kind) {
    case 'non-canonical':
      return `${at} is not canonical`;
    case 'page-fault':
      return `${at}: page fault (${failure.reason} at ${failure.level}, error code ${failure.errorCode})`;
    case 'table-outside-ram':
      return `${at}: ${failure.level} table at guest-physical 0x${failure.tableGpa.toString(16)} is outside guest RAM`;
  }
}

/**
 * Translates every page of [linear, linear+length): the pieces of an access that may straddle
 * page boundaries, as guest-physical ranges. Fails on the first untranslatable or out-of-RAM page.
 */
export function translateRange(
  memory: GuestMemory,
  state: PagingState,
  linear: bigint,
  length: number,
  access: Access = {},
): { ok: true; pieces: { gpa: bigint; length: number }[] } | { ok: false; failure: LinearAccessFailure } {
  const wrap = pagingMode(state) === 'none' || pagingMode(state) === '32-bit' || pagingMode(state) === 'pae';
  const pieces: { gpa: bigint; length: number }[] = [];
  let done = 0;
  while (done < length) {
    const at = wrap ? BigInt.asUintN(32, linear + BigInt(done)) : BigInt.asUintN(64, linear + BigInt(done));
    const result = translate(memory, state, at, access);
    if (!result.ok) return { ok: false, failure: { ...result, linear: at } };
    const inPage = Number(PAGE_SIZE - (at & (PAGE_SIZE - 1n)));
    const size = Math.min(inPage, length - done);
    if (!memory.contains(result.gpa, size)) {
      return {
        ok: false,
        failure: { ok: false, kind: 'table-outside-ram', level: 'page', tableGpa: result.gpa, linear: at },
      };
    }
    pieces.push({ gpa: result.gpa, length: size });
    done += size;
  }
  return { ok: true, pieces };
}

/** Reads guest-virtual bytes, page by page. */
export function readLinear(
  memory: GuestMemory,
  state: PagingState,
  linear: bigint,
  length: number,
  access: Access = {},
): { ok: true; bytes: Uint8Array } | { ok: false; failure: LinearAccessFailure } {
  const range = translateRange(memory, state, linear, length, { ...access, write: false });
  if (!range.ok) return range;
  const bytes = new Uint8Array(length);
  let offset = 0;
  for (const piece of range.pieces) {
    bytes.set(memory.view(piece.gpa, piece.length), offset);
    offset += piece.length;
  }
  return { ok: true, bytes };
}

/** Writes guest-virtual bytes; nothing is written unless every page translates for writing. */
export function writeLinear(
  memory: GuestMemory,
  state: PagingState,
  linear: bigint,
  data: Uint8Array,
  access: Access = {},
): { ok: true } | { ok: false; failure: LinearAccessFailure } {
  const range = translateRange(memory, state, linear, data.length, { ...access, write: true });
  if (!range.ok) return range;
  let offset = 0;
  for (const piece of range.pieces) {
    memory.write(piece.gpa, data.subarray(offset, offset + piece.length));
    offset += piece.length;
  }
  return { ok: true };
}
