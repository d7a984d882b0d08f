// KVM numbers Vireo uses (from linux/kvm.h and asm/kvm.h).

export const KVM_API_VERSION = 12;

export const Cap = {
  IRQCHIP: 0,
  HLT: 1,
  USER_MEMORY: 3,
  SET_TSS_ADDR: 4,
  EXT_CPUID: 7,
  NR_VCPUS: 9,
  NR_MEMSLOTS: 10,
  MP_STATE: 14,
  SYNC_MMU: 16,
  IRQ_ROUTING: 25,
  IRQFD: 32,
  PIT2: 33,
  IOEVENTFD: 36,
  SET_IDENTITY_MAP_ADDR: 37,
  ADJUST_CLOCK: 39,
  VCPU_EVENTS: 41,
  DEBUGREGS: 50,
  XCRS: 56,
  MAX_VCPUS: 66,
  SIGNAL_MSI: 77,
  IRQFD_RESAMPLE: 82,
  SPLIT_IRQCHIP: 121,
  IOEVENTFD_ANY_LENGTH: 122,
  X2APIC_API: 129,
  IMMEDIATE_EXIT: 136,
} as const;

export const ExitReason = {
  UNKNOWN: 0,
  EXCEPTION: 1,
  IO: 2,
  HYPERCALL: 3,
  DEBUG: 4,
  HLT: 5,
  MMIO: 6,
  IRQ_WINDOW_OPEN: 7,
  SHUTDOWN: 8,
  FAIL_ENTRY: 9,
  /** KVM_RUN returned EINTR: the vCPU was kicked (or took another signal). */
  INTR: 10,
  SET_TPR: 11,
  TPR_ACCESS: 12,
  NMI: 16,
  INTERNAL_ERROR: 17,
  SYSTEM_EVENT: 24,
  /** Split irqchip: a local APIC took an EOI for a vector the user-space IOAPIC delivered. */
  IOAPIC_EOI: 26,
} as const;

const exitNames = new Map<number, string>(Object.entries(ExitReason).map(([name, value]) => [value, name]));

export function exitReasonName(reason: number): string {
  return exitNames.get(reason) ?? `exit ${reason}`;
}

export const InternalError = {
  EMULATION: 1,
  SIMUL_EX: 2,
  DELIVERY_EV: 3,
  UNEXPECTED_EXIT_REASON: 4,
} as const;

export const SystemEvent = { SHUTDOWN: 1, RESET: 2, CRASH: 3, WAKEUP: 4, SUSPEND: 5 } as const;

export const MpState = {
  RUNNABLE: 0,
  UNINITIALIZED: 1,
  INIT_RECEIVED: 2,
  HALTED: 3,
  SIPI_RECEIVED: 4,
} as const;

export const MEM_LOG_DIRTY_PAGES = 1;
export const MEM_READONLY = 2;

export const IOEVENTFD_FLAG_DATAMATCH = 1;
export const IOEVENTFD_FLAG_PIO = 2;
export const IOEVENTFD_FLAG_DEASSIGN = 4;

export const IRQFD_FLAG_DEASSIGN = 1;
export const IRQFD_FLAG_RESAMPLE = 2;

export const IRQ_ROUTING_IRQCHIP = 1;
export const IRQ_ROUTING_MSI = 2;

/** KVM_GET/SET_IRQCHIP chip ids. */
export const IrqchipId = { PIC_MASTER: 0, PIC_SLAVE: 1, IOAPIC: 2 } as const;

/** eventfd(2) flags. */
export const EFD_NONBLOCK = 0o4000;
export const EFD_SEMAPHORE = 1;

/** Indices into the addon's state-ioctl tables (native/src/kvm.c vcpu_states / vm_states). */
export const VcpuStateKind = {
  REGS: 0,
  SREGS: 1,
  FPU: 2,
  LAPIC: 3,
  VCPU_EVENTS: 4,
  MP_STATE: 5,
  XCRS: 6,
  DEBUGREGS: 7,
  XSAVE: 8,
} as const;
export const VmStateKind = { IRQCHIP: 0, PIT2: 1, CLOCK: 2 } as const;
