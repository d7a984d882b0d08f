// KVM_EXIT_INTERNAL_ERROR with suberror 1 (emulation failure): KVM's instruction emulator could
// not run an instruction. On hosts that emulate all guest CPL0 code (see DESIGN: PVM) this
// happens in a stock kernel; a few instructions a VMM can stand in for, the rest end the VM with
// a message that names the bytes and the CPU state.
import type { Regs, Sregs, VcpuEvents } from '../kvm/structs.js';

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

/** What to do about an instruction the host's emulator could not run. Pure. */
export function decideEmulationFailure(bytes: Uint8Array | undefined): EmulationAction {
  if (!bytes || bytes.length === 0) return { kind: 'fatal', name: undefined };
  if (bytes[0] === 0xcc) return { kind: 'inject-breakpoint', length: 1 };
  // fwait only waits for pending x87 exceptions; with none pending it does nothing.
  if (bytes[0] === 0x9b) return { kind: 'skip', length: 1, name: 'fwait' };
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
}

export type EmulationOutcome = { kind: 'continue'; note: string } | { kind: 'fatal'; message: string };

/**
 * Applies the policy to a stopped vCPU given KVM's internal.data words: injects #BP past an
 * int3, skips fwait, and otherwise returns the fatal message.
 */
export function handleEmulationFailure(
  vcpu: EmulationFailureVcpu,
  data: readonly bigint[],
): EmulationOutcome {
  const bytes = emulationFailureBytes(data);
  const action = decideEmulationFailure(bytes);
  const regs = vcpu.getRegs();
  if (action.kind === 'fatal')
    return { kind: 'fatal', message: emulationFailureMessage(bytes, regs, vcpu.getSregs()) };
  const at = regs.rip;
  regs.rip += BigInt(action.length);
  vcpu.setRegs(regs);
  if (action.kind === 'skip')
    return { kind: 'continue', note: `skipped ${action.name} at 0x${at.toString(16)}` };
  const events = vcpu.getEvents();
  events.exception = { injected: 1, nr: 3, hasErrorCode: 0, pending: 0, errorCode: 0 };
  events.flags = 0;
  vcpu.setEvents(events);
  return { kind: 'continue', note: `injected #BP for int3 at 0x${at.toString(16)}` };
}
