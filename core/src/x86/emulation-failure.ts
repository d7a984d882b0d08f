// KVM_EXIT_INTERNAL_ERROR with suberror 1 (emulation failure): KVM's instruction emulator could
// not run an instruction. On hosts that emulate all guest CPL0 code (see DESIGN: PVM) this
// happens in a stock kernel; a few instructions a VMM can stand in for, the rest end the VM with
// a message that names the bytes and the CPU state.
import type { Regs, Sregs, VcpuEvents } from '../kvm/structs.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { type CpuMode, cpuMode, decodeTwoByteModRm, linearAddress } from './instruction-decode.js';
import { describeFailure, type LinearAccessFailure, readLinear, writeLinear } from './page-walk.js';

/** KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES in data[0]. */
export const EMULATION_FLAG_INSTRUCTION_BYTES = 1n;

/**
 * The instruction bytes KVM fetched, from internal.data: data[0] = flags, data[1] low byte = the
 * byte count, then the bytes (up to 15) through data[1..3]. Undefined when KVM gave none.
 */
export function emulationFailureBytes(data: readonly bigint[]): Uint8Array | undefined {
  if (data.length < 2) return undefined;
  const raw = new Uint8Array(24);
  const dv = new DataView(raw.buffer);
  for (let i = 1; i < 4; i++) dv.setBigUint64((i - 1) * 8, data[i] ?? 0n, true);
  const count = Math.min(raw[0]!, 15);
  if (count === 0) return undefined;
  return raw.slice(1, 1 + count);
}

export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
}

const LEGACY_PREFIXES = new Set([0xf0, 0xf2, 0xf3, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65, 0x66, 0x67]);

/** The opcode bytes after legacy and REX prefixes. */
export function stripPrefixes(bytes: Uint8Array): { prefixes: Uint8Array; opcode: Uint8Array } {
  let i = 0;
  while (i < bytes.length && LEGACY_PREFIXES.has(bytes[i]!)) i++;
  if (i < bytes.length && (bytes[i]! & 0xf0) === 0x40) i++;
  return { prefixes: bytes.subarray(0, i), opcode: bytes.subarray(i) };
}

const FENCES: Record<number, string> = { 5: 'lfence', 6: 'mfence', 7: 'sfence' };

/** A name for instructions known to trip emulating hosts, for the error message. */
export function instructionName(bytes: Uint8Array): string | undefined {
  const { prefixes, opcode } = stripPrefixes(bytes);
  const [b0, b1, b2] = opcode;
  const reg = b2 === undefined ? -1 : (b2 >> 3) & 7;
  const locked = prefixes.includes(0xf0) ? 'lock ' : '';
  const rexW = prefixes.length > 0 && (prefixes[prefixes.length - 1]! & 0xf8) === 0x48;
  if (b0 === 0xcc) return 'int3';
  if (b0 === 0x9b) return 'fwait';
  if (b0 !== 0x0f) return undefined;
  if (b1 === 0xc7 && reg === 1) return `${locked}${rexW ? 'cmpxchg16b' : 'cmpxchg8b'}`;
  if (b1 === 0xae) {
    const names = ['fxsave', 'fxrstor', 'ldmxcsr', 'stmxcsr', 'xsave', 'xrstor', 'xsaveopt', 'clflush'];
    if (b2 !== undefined && b2 >> 6 !== 3) return names[reg];
    if (b2 !== undefined && reg >= 5) return FENCES[reg];
  }
  if (b1 === 0x01 && b2 === 0xca) return 'clac';
  if (b1 === 0x01 && b2 === 0xcb) return 'stac';
  if (b1 === 0x01 && b2 === 0xd0) return 'xgetbv';
  if (b1 === 0x01 && b2 === 0xd1) return 'xsetbv';
  if (b1 === 0x0b) return 'ud2';
  if (b1 === 0xb8) return 'popcnt';
  return undefined;
}

export type EmulationAction =
  /** Advance RIP past the `int3` and inject #BP, as the CPU would have. */
  | { kind: 'inject-breakpoint'; length: number }
  /** Advance RIP past an instruction that has no effect here. */
  | { kind: 'skip'; length: number; name: string }
  | { kind: 'fatal'; name: string | undefined };

/**
 * What to do about an instruction the host's emulator could not run, judged from its bytes alone
 * (instructions that need CPU state or memory are `handleEmulationFailure`'s). Pure.
 */
export function decideEmulationFailure(bytes: Uint8Array | undefined, mode: CpuMode = 64): EmulationAction {
  if (!bytes || bytes.length === 0) return { kind: 'fatal', name: undefined };
  if (bytes[0] === 0xcc) return { kind: 'inject-breakpoint', length: 1 };
  // fwait only waits for pending x87 exceptions; with none pending it does nothing.
  if (bytes[0] === 0x9b) return { kind: 'skip', length: 1, name: 'fwait' };
  const decoded = decodeTwoByteModRm(bytes, mode);
  // A fence orders this vCPU's memory accesses; the exit that brought us here already did.
  if (
    decoded?.opcode[1] === 0xae &&
    decoded.modrm?.mod === 3 &&
    !decoded.prefixes.lock &&
    !decoded.prefixes.operandSize &&
    decoded.prefixes.repeat === 0
  ) {
    const fence = FENCES[decoded.modrm.reg & 7];
    if (fence) return { kind: 'skip', length: decoded.length, name: fence };
  }
  return { kind: 'fatal', name: instructionName(bytes) };
}

const h = (v: bigint) => `0x${v.toString(16)}`;

/** The registers an engineer wants to see next to a failed instruction. */
export function formatCpuState(regs: Regs, sregs: Sregs): string {
  return [
    `RIP=${h(regs.rip)} RSP=${h(regs.rsp)} RFLAGS=${h(regs.rflags)}`,
    `RAX=${h(regs.rax)} RBX=${h(regs.rbx)} RCX=${h(regs.rcx)} RDX=${h(regs.rdx)} RSI=${h(regs.rsi)} RDI=${h(regs.rdi)}`,
    `CS=${h(BigInt(sregs.cs.selector))} (CPL${sregs.cs.dpl}${sregs.cs.l ? ', 64-bit' : ''}) SS=${h(BigInt(sregs.ss.selector))}`,
    `CR0=${h(sregs.cr0)} CR2=${h(sregs.cr2)} CR3=${h(sregs.cr3)} CR4=${h(sregs.cr4)} EFER=${h(sregs.efer)}`,
  ].join('; ');
}

/** The error message for an instruction Vireo cannot work around. */
export function emulationFailureMessage(bytes: Uint8Array | undefined, regs: Regs, sregs: Sregs): string {
  const name = bytes ? instructionName(bytes) : undefined;
  const what = bytes
    ? `instruction bytes ${hex(bytes)}${name ? ` (${name})` : ''}`
    : 'no instruction bytes reported';
  return `KVM could not emulate a guest instruction at RIP ${h(regs.rip)}: ${what}; ${formatCpuState(regs, sregs)}`;
}

/** The vCPU calls the policy needs (a Vcpu from core/src/kvm satisfies it). */
export interface EmulationFailureVcpu {
  getRegs(): Regs;
  setRegs(regs: Regs): void;
  getSregs(): Sregs;
  getEvents(): VcpuEvents;
  setEvents(events: VcpuEvents): void;
  /**
   * KVM_GET_XSAVE/KVM_SET_XSAVE (struct kvm_xsave, 4096 bytes): the only way to MXCSR, since
   * KVM_GET_FPU/KVM_SET_FPU leave kvm_fpu.mxcsr out. Without them ldmxcsr/stmxcsr are fatal.
   */
  getXsave?(): Uint8Array;
  setXsave?(xsave: Uint8Array): void;
}

/** MXCSR's offset in the XSAVE legacy region (the FXSAVE layout). */
export const XSAVE_MXCSR_OFFSET = 24;
/** XSTATE_BV in the XSAVE header: bit 1 (SSE) makes XRSTOR/KVM_SET_XSAVE take MXCSR and XMM. */
export const XSAVE_XSTATE_BV_OFFSET = 512;

/** MXCSR from a kvm_xsave image. */
export function xsaveMxcsr(xsave: Uint8Array): number {
  return new DataView(xsave.buffer, xsave.byteOffset, xsave.byteLength).getUint32(XSAVE_MXCSR_OFFSET, true);
}

/** Sets MXCSR in a kvm_xsave image and marks the SSE component present so KVM loads it. */
export function setXsaveMxcsr(xsave: Uint8Array, mxcsr: number): void {
  const dv = new DataView(xsave.buffer, xsave.byteOffset, xsave.byteLength);
  dv.setUint32(XSAVE_MXCSR_OFFSET, mxcsr >>> 0, true);
  dv.setBigUint64(XSAVE_XSTATE_BV_OFFSET, dv.getBigUint64(XSAVE_XSTATE_BV_OFFSET, true) | 2n, true);
}

export type EmulationOutcome = { kind: 'continue'; note: string } | { kind: 'fatal'; message: string };

/**
 * MXCSR bits a guest may set: every x86-64 CPU supports DAZ (bit 6), so the host's MXCSR_MASK is
 * 0xffff; bits 16-31 are reserved and loading them raises #GP(0).
 */
export const MXCSR_WRITABLE = 0xffff;

const Vector = { UD: 6, NM: 7, SS: 12, GP: 13 } as const;
const VECTOR_NAMES: Record<number, string> = { 3: '#BP', 6: '#UD', 7: '#NM', 12: '#SS', 13: '#GP' };

const CR0_EM = 1n << 2n;
const CR0_TS = 1n << 3n;
const CR4_OSFXSR = 1n << 9n;
const CR4_SMAP = 1n << 21n;
const RFLAGS_AC = 1n << 18n;

function injectException(vcpu: EmulationFailureVcpu, vector: number, errorCode?: number): void {
  const events = vcpu.getEvents();
  events.exception = {
    injected: 1,
    nr: vector,
    hasErrorCode: errorCode === undefined ? 0 : 1,
    pending: 0,
    errorCode: errorCode ?? 0,
  };
  events.flags = 0;
  vcpu.setEvents(events);
}

const at = (rip: bigint) => `at 0x${rip.toString(16)}`;

/** Raises a fault for the instruction at RIP (which stays put, as for any fault). */
function fault(vcpu: EmulationFailureVcpu, regs: Regs, name: string, vector: number, errorCode?: number) {
  injectException(vcpu, vector, errorCode);
  const code = errorCode === undefined ? '' : `(${errorCode})`;
  return {
    kind: 'continue' as const,
    note: `${name} ${at(regs.rip)}: injected ${VECTOR_NAMES[vector]}${code}`,
  };
}

function retire(vcpu: EmulationFailureVcpu, regs: Regs, length: number, note: string): EmulationOutcome {
  const rip = regs.rip;
  regs.rip += BigInt(length);
  vcpu.setRegs(regs);
  return { kind: 'continue', note: `${note} ${at(rip)}` };
}

/**
 * Instructions the VMM carries out itself because they need CPU state or guest memory:
 * ldmxcsr/stmxcsr (0F AE /2, /3) and clac/stac (0F 01 CA/CB). Undefined when `bytes` is none of
 * them, so the caller reports the failure.
 */
function emulateWithState(
  vcpu: EmulationFailureVcpu,
  bytes: Uint8Array,
  regs: Regs,
  sregs: Sregs,
  memory: GuestMemory | undefined,
): EmulationOutcome | undefined {
  const mode = cpuMode(sregs);
  if (mode === undefined) return undefined;
  const decoded = decodeTwoByteModRm(bytes, mode);
  const modrm = decoded?.modrm;
  if (!decoded || !modrm) return undefined;
  const { prefixes } = decoded;
  const plain = !prefixes.lock && !prefixes.operandSize && prefixes.repeat === 0;
  const cpl = sregs.cs.dpl;

  if (decoded.opcode[1] === 0x01 && modrm.mod === 3 && (modrm.reg & 7) === 1 && (modrm.rm & 7) >= 2) {
    const name = (modrm.rm & 7) === 2 ? 'clac' : (modrm.rm & 7) === 3 ? 'stac' : undefined;
    if (!name) return undefined;
    if (!plain || cpl !== 0 || (sregs.cr4 & CR4_SMAP) === 0n) return fault(vcpu, regs, name, Vector.UD);
    regs.rflags = name === 'clac' ? regs.rflags & ~RFLAGS_AC : regs.rflags | RFLAGS_AC;
    return retire(vcpu, regs, decoded.length, `emulated ${name}`);
  }

  if (decoded.opcode[1] !== 0xae || !modrm.memory || (modrm.reg & 7) < 2 || (modrm.reg & 7) > 3)
    return undefined;
  const load = (modrm.reg & 7) === 2;
  const name = load ? 'ldmxcsr' : 'stmxcsr';
  if (!plain) return fault(vcpu, regs, name, Vector.UD);
  if ((sregs.cr0 & CR0_EM) !== 0n || (sregs.cr4 & CR4_OSFXSR) === 0n)
    return fault(vcpu, regs, name, Vector.UD);
  if ((sregs.cr0 & CR0_TS) !== 0n) return fault(vcpu, regs, name, Vector.NM);
  if (!memory) {
    return {
      kind: 'fatal',
      message: `${name} ${at(regs.rip)} needs guest memory, which the VMM did not pass`,
    };
  }
  const { getXsave, setXsave } = vcpu;
  if (!getXsave || !setXsave) {
    return {
      kind: 'fatal',
      message: `${name} ${at(regs.rip)} needs MXCSR, which this VMM reaches only through KVM_GET_XSAVE/KVM_SET_XSAVE (the vCPU offers neither); ${formatCpuState(regs, sregs)}`,
    };
  }

  const linear = linearAddress(modrm.memory, regs, sregs, mode, regs.rip + BigInt(decoded.length));
  const access = { user: cpl === 3 };
  const failed = (failure: LinearAccessFailure): EmulationOutcome => {
    if (failure.kind === 'non-canonical') {
      const stack = modrm.memory?.segment === 'ss';
      return fault(vcpu, regs, name, stack ? Vector.SS : Vector.GP, 0);
    }
    return {
      kind: 'fatal',
      message: `${name} ${at(regs.rip)} (bytes ${hex(bytes.subarray(0, decoded.length))}) cannot reach its operand: ${describeFailure(failure)}; ${formatCpuState(regs, sregs)}`,
    };
  };

  if (load) {
    const read = readLinear(memory, sregs, linear, 4, access);
    if (!read.ok) return failed(read.failure);
    const value = new DataView(read.bytes.buffer).getUint32(0, true);
    if ((value & ~MXCSR_WRITABLE) !== 0) return fault(vcpu, regs, name, Vector.GP, 0);
    const xsave = getXsave.call(vcpu);
    setXsaveMxcsr(xsave, value);
    setXsave.call(vcpu, xsave);
    return retire(vcpu, regs, decoded.length, `emulated ldmxcsr (0x${value.toString(16)})`);
  }
  const value = xsaveMxcsr(getXsave.call(vcpu));
  const data = new Uint8Array(4);
  new DataView(data.buffer).setUint32(0, value, true);
  const written = writeLinear(memory, sregs, linear, data, access);
  if (!written.ok) return failed(written.failure);
  return retire(vcpu, regs, decoded.length, `emulated stmxcsr (0x${value.toString(16)})`);
}

/**
 * Applies the policy to a stopped vCPU given KVM's internal.data words: injects #BP past an int3,
 * skips fwait and fences, carries out ldmxcsr/stmxcsr and clac/stac (`memory` is needed for the
 * memory operands; without it those are fatal), and otherwise returns the fatal message.
 */
export function handleEmulationFailure(
  vcpu: EmulationFailureVcpu,
  data: readonly bigint[],
  memory?: GuestMemory,
): EmulationOutcome {
  const bytes = emulationFailureBytes(data);
  const regs = vcpu.getRegs();
  const sregs = vcpu.getSregs();
  const action = decideEmulationFailure(bytes, cpuMode(sregs) ?? 64);
  if (action.kind === 'fatal') {
    const emulated = bytes && emulateWithState(vcpu, bytes, regs, sregs, memory);
    return emulated ?? { kind: 'fatal', message: emulationFailureMessage(bytes, regs, sregs) };
  }
  if (action.kind === 'skip') return retire(vcpu, regs, action.length, `skipped ${action.name}`);
  regs.rip += BigInt(action.length);
  vcpu.setRegs(regs);
  injectException(vcpu, 3);
  return { kind: 'continue', note: `injected #BP for int3 at 0x${(regs.rip - 1n).toString(16)}` };
}
