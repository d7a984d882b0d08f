// Turns a boot path's BootCpuState into the KVM register structs for the boot vCPU.
import type { Regs, Segment, Sregs } from '../kvm/structs.js';
import { emptyRegs } from '../kvm/structs.js';
import type { BootCpuState, SegmentState } from './cpu-state.js';
import { longModeSregs } from './long-mode.js';

function kvmSegment(s: SegmentState): Segment {
  return { ...s, base: BigInt(s.base), unusable: 0 };
}

/**
 * The special registers for the entry: `base` is the vCPU's current state (KVM_GET_SREGS), which
 * keeps what the boot state does not decide (APIC base, LDT, pending interrupts).
 */
export function bootSregs(base: Sregs, entry: BootCpuState): Sregs {
  if (entry.mode === 'long64') return longModeSregs(base);
  const s = entry.sregs;
  if (!s) throw new Error('protected32 boot state without special registers');
  return {
    ...base,
    cs: kvmSegment(s.cs),
    ds: kvmSegment(s.ds),
    es: kvmSegment(s.es),
    fs: kvmSegment(s.fs),
    gs: kvmSegment(s.gs),
    ss: kvmSegment(s.ss),
    tr: kvmSegment(s.tr),
    gdt: { base: BigInt(s.gdt.base), limit: s.gdt.limit },
    idt: { base: BigInt(s.idt.base), limit: s.idt.limit },
    cr0: BigInt(s.cr0),
    cr3: BigInt(s.cr3),
    cr4: BigInt(s.cr4),
    efer: BigInt(s.efer),
  };
}

/** The general registers for the entry: everything not named by the boot state is zero. */
export function bootRegs(entry: BootCpuState): Regs {
  const regs = emptyRegs();
  regs.rip = BigInt(entry.regs.rip);
  regs.rsp = BigInt(entry.regs.rsp);
  regs.rflags = BigInt(entry.regs.rflags);
  regs.rsi = BigInt(entry.regs.rsi);
  regs.rbx = BigInt(entry.regs.rbx);
  return regs;
}
