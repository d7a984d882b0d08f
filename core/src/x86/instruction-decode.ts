// Decoding just enough of an x86 instruction to carry it out in the VMM: prefixes, the opcode and
// a ModRM operand with its SIB byte and displacement, and the effective address of a memory
// operand. Pure; the bytes come from KVM's emulation-failure report (at most 15).
import type { Regs, Sregs } from '../kvm/structs.js';

/** 64-bit mode, or 32-bit protected/compatibility mode (16-bit code is not handled). */
export type CpuMode = 64 | 32;

export type SegmentName = 'es' | 'cs' | 'ss' | 'ds' | 'fs' | 'gs';

/** General-purpose registers in encoding order (ModRM.reg/rm, SIB.base/index, plus REX bit 3). */
export const GPR_NAMES = [
  'rax',
  'rcx',
  'rdx',
  'rbx',
  'rsp',
  'rbp',
  'rsi',
  'rdi',
  'r8',
  'r9',
  'r10',
  'r11',
  'r12',
  'r13',
  'r14',
  'r15',
] as const satisfies readonly (keyof Regs)[];

const SEGMENT_PREFIXES: Record<number, SegmentName> = {
  38: 'es',
  46: 'cs',
  54: 'ss',
  62: 'ds',
  100: 'fs',
  101: 'gs',
};

export interface Prefixes {
  lock: boolean;
  /** The last of F2/F3, or 0. */
  repeat: 0 | 0xf2 | 0xf3;
  operandSize: boolean;
  addressSize: boolean;
  segment: SegmentName | undefined;
  /** The REX byte (0x40-0x4f) right before the opcode, or 0. */
  rex: number;
}

export interface MemoryOperand {
  /** Base register number (0-15), 'rip' for RIP-relative, or undefined for none. */
  base: number | 'rip' | undefined;
  index: number | undefined;
  scale: 1 | 2 | 4 | 8;
  /** Sign-extended displacement. */
  displacement: bigint;
  segment: SegmentName;
  addressBits: 32 | 64;
}

export interface ModRm {
  mod: number;
  /** ModRM.reg with REX.R. */
  reg: number;
  /** ModRM.rm with REX.B (for a register operand). */
  rm: number;
  memory: MemoryOperand | undefined;
}

export interface DecodedInstruction {
  prefixes: Prefixes;
  /** Opcode bytes, escape bytes included (e.g. [0x0f, 0xae]). */
  opcode: number[];
  modrm: ModRm | undefined;
  length: number;
}

/** The CPU mode a vCPU's code segment runs in, or undefined for 16-bit code. */
export function cpuMode(sregs: Sregs): CpuMode | undefined {
  if ((sregs.efer & (1n << 10n)) !== 0n && sregs.cs.l) return 64;
  if ((sregs.cr0 & 1n) !== 0n && sregs.cs.db) return 32;
  return undefined;
}

export function decodePrefixes(bytes: Uint8Array, mode: CpuMode): { prefixes: Prefixes; next: number } {
  const prefixes: Prefixes = {
    lock: false,
    repeat: 0,
    operandSize: false,
    addressSize: false,
    segment: undefined,
    rex: 0,
  };
  let i = 0;
  for (; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === 0xf0) prefixes.lock = true;
    else if (b === 0xf2 || b === 0xf3) prefixes.repeat = b;
    else if (b === 0x66) prefixes.operandSize = true;
    else if (b === 0x67) prefixes.addressSize = true;
    else if (b in SEGMENT_PREFIXES) prefixes.segment = SEGMENT_PREFIXES[b];
    else if (mode === 64 && (b & 0xf0) === 0x40) {
      // A REX prefix counts only right before the opcode; one followed by a legacy prefix is ignored.
      prefixes.rex = b;
      continue;
    } else break;
    prefixes.rex = 0;
  }
  return { prefixes, next: i };
}

/** Decodes the ModRM byte at `offset` with its SIB and displacement; undefined if the bytes run out. */
export function decodeModRm(
  bytes: Uint8Array,
  offset: number,
  mode: CpuMode,
  prefixes: Prefixes,
): { modrm: ModRm; next: number } | undefined {
  const modrmByte = bytes[offset];
  if (modrmByte === undefined) return undefined;
  const rex = prefixes.rex;
  const mod = modrmByte >> 6;
  const reg = ((modrmByte >> 3) & 7) | (rex & 4 ? 8 : 0);
  const rmLow = modrmByte & 7;
  const rm = rmLow | (rex & 1 ? 8 : 0);
  let next = offset + 1;
  if (mod === 3) return { modrm: { mod, reg, rm, memory: undefined }, next };

  const addressBits: 16 | 32 | 64 =
    mode === 64 ? (prefixes.addressSize ? 32 : 64) : prefixes.addressSize ? 16 : 32;
  if (addressBits === 16) return undefined;

  let base: number | 'rip' | undefined;
  let index: number | undefined;
  let scale: 1 | 2 | 4 | 8 = 1;
  let displacementSize = mod === 1 ? 1 : mod === 2 ? 4 : 0;
  if (rmLow === 4) {
    const sib = bytes[next++];
    if (sib === undefined) return undefined;
    scale = (1 << (sib >> 6)) as 1 | 2 | 4 | 8;
    const indexNumber = ((sib >> 3) & 7) | (rex & 2 ? 8 : 0);
    index = indexNumber === 4 ? undefined : indexNumber;
    const baseLow = sib & 7;
    if (baseLow === 5 && mod === 0) {
      base = undefined;
      displacementSize = 4;
    } else base = baseLow | (rex & 1 ? 8 : 0);
  } else if (rmLow === 5 && mod === 0) {
    base = mode === 64 ? 'rip' : undefined;
    displacementSize = 4;
  } else base = rm;

  if (next + displacementSize > bytes.length) return undefined;
  let displacement = 0n;
  const view = new DataView(bytes.buffer, bytes.byteOffset + next, displacementSize);
  if (displacementSize === 1) displacement = BigInt(view.getInt8(0));
  if (displacementSize === 4) displacement = BigInt(view.getInt32(0, true));
  next += displacementSize;

  // Stack-based addressing defaults to SS (it matters only outside 64-bit mode).
  const stackBased = base === 4 || base === 5;
  const segment = prefixes.segment ?? (stackBased ? 'ss' : 'ds');
  return {
    modrm: { mod, reg, rm, memory: { base, index, scale, displacement, segment, addressBits } },
    next,
  };
}

/**
 * Decodes a two-byte-opcode instruction `0F xx` followed by ModRM and no immediate (the 0F AE and
 * 0F 01 groups). Undefined for anything else or when the bytes run out.
 */
export function decodeTwoByteModRm(bytes: Uint8Array, mode: CpuMode): DecodedInstruction | undefined {
  const { prefixes, next } = decodePrefixes(bytes, mode);
  if (bytes[next] !== 0x0f) return undefined;
  const second = bytes[next + 1];
  if (second === undefined || second === 0x38 || second === 0x3a) return undefined;
  const decoded = decodeModRm(bytes, next + 2, mode, prefixes);
  if (!decoded) return undefined;
  return { prefixes, opcode: [0x0f, second], modrm: decoded.modrm, length: decoded.next };
}

/**
 * The linear address of a memory operand: segment base + base + index * scale + displacement,
 * wrapped to the address size. `nextRip` is the address of the following instruction (the base of
 * RIP-relative addressing). In 64-bit mode only FS and GS have bases.
 */
export function linearAddress(
  operand: MemoryOperand,
  regs: Regs,
  sregs: Sregs,
  mode: CpuMode,
  nextRip: bigint,
): bigint {
  const reg = (n: number) => regs[GPR_NAMES[n]!];
  let offset = operand.displacement;
  if (operand.base === 'rip') offset += nextRip;
  else if (operand.base !== undefined) offset += reg(operand.base);
  if (operand.index !== undefined) offset += reg(operand.index) * BigInt(operand.scale);
  offset = BigInt.asUintN(operand.addressBits, offset);
  const segmentBase =
    mode === 64 && operand.segment !== 'fs' && operand.segment !== 'gs' ? 0n : sregs[operand.segment].base;
  return mode === 64 ? BigInt.asUintN(64, segmentBase + offset) : BigInt.asUintN(32, segmentBase + offset);
}
