// Typed wrapper over the addon: /dev/kvm, a VM and its vCPUs. Each method is one ioctl; errors
// are the addon's exceptions ("KVM_CREATE_VM: EEXIST (...)", with .code = "EEXIST").
import {
  Cap,
  EFD_NONBLOCK,
  IOEVENTFD_FLAG_DATAMATCH,
  IOEVENTFD_FLAG_DEASSIGN,
  IOEVENTFD_FLAG_PIO,
  IRQFD_FLAG_DEASSIGN,
  IRQFD_FLAG_RESAMPLE,
  KVM_API_VERSION,
  MEM_LOG_DIRTY_PAGES,
  VcpuStateKind,
  VmStateKind,
} from './constants.js';
import { type NativeAddon, native } from './native.js';
import {
  CLOCK_DATA_SIZE,
  type ClockData,
  type CpuidEntry,
  decodeClockData,
  decodeCpuid2,
  decodeFpu,
  decodeMsrs,
  decodeRegs,
  decodeSregs,
  decodeVcpuEvents,
  encodeClockData,
  encodeCpuid2,
  encodeFpu,
  encodeGsiRouting,
  encodeMsrs,
  encodeRegs,
  encodeSregs,
  encodeVcpuEvents,
  FPU_SIZE,
  type Fpu,
  type GsiRoute,
  LAPIC_SIZE,
  lapicVirtualWire,
  type MsrEntry,
  REGS_SIZE,
  type Regs,
  SREGS_SIZE,
  type Sregs,
  VCPU_EVENTS_SIZE,
  type VcpuEvents,
} from './structs.js';

const PAGE = 4096;

/** True when guest RAM of this many bytes can be registered (a positive multiple of 4 KiB). */
export function isPageMultiple(size: number): boolean {
  return Number.isSafeInteger(size) && size > 0 && size % PAGE === 0;
}

const HUGE_PAGE = 2 * 1024 * 1024;

/**
 * Guest RAM inside V8's heap (a SharedArrayBuffer, so vCPU workers and device threads can see it;
 * Electron's memory cage forbids memory mapped outside V8). The buffer is over-allocated and the
 * view starts at a page boundary, or at a 2 MiB boundary for RAM of 2 MiB or more, which is then
 * offered transparent huge pages (madvise), as QEMU does: fewer TLB misses for the guest, and a
 * disk request's guest buffer is physically contiguous on the host, so O_DIRECT I/O needs fewer
 * segments (bench/virtio-blk: 1 MiB reads otherwise split in two on this host's disk).
 */
export function allocateGuestRam(size: number, addon: NativeAddon = native()): Uint8Array {
  if (!isPageMultiple(size))
    throw new RangeError(`guest RAM size ${size} is not a positive multiple of 4 KiB`);
  const alignment = size >= HUGE_PAGE ? HUGE_PAGE : PAGE;
  const buffer = new SharedArrayBuffer(size + alignment);
  const address = addon.addressOf(new Uint8Array(buffer, 0, 1));
  const offset = (alignment - (address % alignment)) % alignment;
  const ram = new Uint8Array(buffer, offset, size);
  if (alignment === HUGE_PAGE) addon.adviseHugePages(ram);
  return ram;
}

export class Kvm {
  private constructor(
    readonly fd: number,
    private readonly addon: NativeAddon,
  ) {}

  static open(addon: NativeAddon = native()): Kvm {
    const fd = addon.openKvm();
    const kvm = new Kvm(fd, addon);
    const version = addon.apiVersion(fd);
    if (version !== KVM_API_VERSION) {
      addon.closeFd(fd);
      throw new Error(`/dev/kvm speaks KVM API ${version}; Vireo needs ${KVM_API_VERSION}`);
    }
    return kvm;
  }

  /** KVM_CHECK_EXTENSION: 0 when absent, else 1 or a capability-specific number. */
  capability(cap: number): number {
    return this.addon.checkExtension(this.fd, cap);
  }

  /** The capabilities Vireo cannot run without that this host lacks (empty when all is well). */
  missingCapabilities(): string[] {
    const required: (keyof typeof Cap)[] = [
      'SPLIT_IRQCHIP',
      'SIGNAL_MSI',
      'USER_MEMORY',
      'SET_TSS_ADDR',
      'EXT_CPUID',
      'IRQ_ROUTING',
      'IRQFD',
      'IOEVENTFD',
      'VCPU_EVENTS',
      'IMMEDIATE_EXIT',
      'MP_STATE',
    ];
    return required.filter((name) => this.capability(Cap[name]) <= 0);
  }

  supportedCpuid(): CpuidEntry[] {
    return decodeCpuid2(new Uint8Array(this.addon.getSupportedCpuid(this.fd)));
  }

  msrIndexList(): number[] {
    return Array.from(new Uint32Array(this.addon.getMsrIndexList(this.fd)));
  }

  createVm(): Vm {
    return new Vm(this, this.addon.createVm(this.fd, 0), this.addon);
  }

  close(): void {
    this.addon.closeFd(this.fd);
  }
}

export interface MemorySlot {
  slot: number;
  gpa: number;
  bytes: Uint8Array;
  logDirty: boolean;
}

export class Vm {
  private readonly slots = new Map<number, MemorySlot>();
  readonly vcpus: Vcpu[] = [];

  constructor(
    readonly kvm: Kvm,
    readonly fd: number,
    private readonly addon: NativeAddon,
  ) {}

  setTssAddress(address: number): void {
    this.addon.setTssAddr(this.fd, address);
  }

  setIdentityMapAddress(address: number): void {
    this.addon.setIdentityMapAddr(this.fd, address);
  }

  /** Registers `bytes` (page-aligned, e.g. from allocateGuestRam) as guest RAM at `gpa`. */
  setMemoryRegion(slot: number, gpa: number, bytes: Uint8Array, options: { logDirty?: boolean } = {}): void {
    const logDirty = options.logDirty ?? false;
    this.addon.setUserMemoryRegion(this.fd, slot, logDirty ? MEM_LOG_DIRTY_PAGES : 0, gpa, bytes);
    this.slots.set(slot, { slot, gpa, bytes, logDirty });
  }

  removeMemoryRegion(slot: number): void {
    const existing = this.slots.get(slot);
    if (!existing) return;
    this.addon.setUserMemoryRegion(this.fd, slot, 0, existing.gpa, null);
    this.slots.delete(slot);
  }

  memorySlots(): MemorySlot[] {
    return [...this.slots.values()];
  }

  /**
   * KVM_GET_DIRTY_LOG: one bit per 4 KiB page of the slot (bit i of the result = page i written
   * since the last call). Needs the slot registered with logDirty.
   */
  dirtyLog(slot: number): BigUint64Array {
    const existing = this.slots.get(slot);
    if (!existing) throw new RangeError(`no memory slot ${slot}`);
    const pages = existing.bytes.length / PAGE;
    const bitmap = new BigUint64Array(Math.ceil(pages / 64));
    this.addon.getDirtyLog(this.fd, slot, bitmap);
    return bitmap;
  }

  /**
   * KVM_CAP_SPLIT_IRQCHIP: the local APICs in the kernel, the IOAPIC and PIC in user space. KVM
   * takes the routes of GSIs below `ioapicPins` as the IOAPIC's, to know which vectors need an EOI
   * exit (KVM_EXIT_IOAPIC_EOI). Before any vCPU is created.
   */
  enableSplitIrqchip(ioapicPins: number): void {
    this.addon.enableCap(this.fd, Cap.SPLIT_IRQCHIP, ioapicPins);
  }

  createIrqchip(): void {
    this.addon.createIrqchip(this.fd);
  }

  /** KVM_CREATE_PIT2; flags 1 (KVM_PIT_SPEAKER_DUMMY) makes port 0x61 a dummy speaker. */
  createPit(flags = 0): void {
    this.addon.createPit2(this.fd, flags);
  }

  /** Drives an interrupt line of the in-kernel irqchip (a GSI) to `level`. */
  irqLine(gsi: number, level: boolean | number): void {
    this.addon.irqLine(this.fd, gsi, level ? 1 : 0);
  }

  /** Raises then lowers an edge-triggered line. */
  pulseIrq(gsi: number): void {
    this.irqLine(gsi, 1);
    this.irqLine(gsi, 0);
  }

  /** Makes guest writes to [address, address+length) signal `eventFd` without a vCPU exit. */
  ioeventfd(
    eventFd: number,
    space: 'pio' | 'mmio',
    address: number,
    length: number,
    options: { datamatch?: bigint | number; deassign?: boolean } = {},
  ): void {
    let flags = space === 'pio' ? IOEVENTFD_FLAG_PIO : 0;
    if (options.datamatch !== undefined) flags |= IOEVENTFD_FLAG_DATAMATCH;
    if (options.deassign) flags |= IOEVENTFD_FLAG_DEASSIGN;
    this.addon.ioeventfd(this.fd, eventFd, address, length, flags, options.datamatch ?? 0);
  }

  /** Signalling `eventFd` injects GSI `gsi`; with resampleFd, a level-triggered line. */
  irqfd(eventFd: number, gsi: number, options: { resampleFd?: number; deassign?: boolean } = {}): void {
    let flags = options.deassign ? IRQFD_FLAG_DEASSIGN : 0;
    if (options.resampleFd !== undefined) flags |= IRQFD_FLAG_RESAMPLE;
    this.addon.irqfd(this.fd, eventFd, gsi, flags, options.resampleFd ?? 0);
  }

  /** Replaces the whole GSI routing table (include defaultIrqchipRoutes() to keep ISA lines). */
  setGsiRouting(routes: readonly GsiRoute[]): void {
    this.addon.setGsiRouting(this.fd, encodeGsiRouting(routes));
  }

  /** Injects one MSI; true when delivered, false when the guest blocked it. */
  signalMsi(addressLo: number, addressHi: number, data: number): boolean {
    return this.addon.signalMsi(this.fd, addressLo, addressHi, data) > 0;
  }

  /** Raw irqchip/PIT/clock state for snapshots (layout per struct kvm_irqchip etc.). */
  getState(kind: keyof typeof VmStateKind, bytes: Uint8Array): void {
    this.addon.vmGetState(this.fd, VmStateKind[kind], bytes);
  }

  setState(kind: keyof typeof VmStateKind, bytes: Uint8Array): void {
    this.addon.vmSetState(this.fd, VmStateKind[kind], bytes);
  }

  /** KVM_GET_CLOCK: the guest's kvmclock now (nanoseconds), with KVM's TSC and realtime beside it. */
  getClock(): ClockData {
    const bytes = new Uint8Array(CLOCK_DATA_SIZE);
    this.getState('CLOCK', bytes);
    return decodeClockData(bytes);
  }

  /**
   * KVM_SET_CLOCK. Without CLOCK_REALTIME in `flags` the clock is set to `clock` exactly; with it
   * KVM adds the host realtime elapsed since `realtime` (what a migration wants, not a pause).
   */
  setClock(data: ClockData): void {
    this.setState('CLOCK', encodeClockData(data));
  }

  createVcpu(id: number): Vcpu {
    const vcpu = new Vcpu(id, this.addon.createVcpu(this.kvm.fd, this.fd, id), this.addon);
    this.vcpus.push(vcpu);
    return vcpu;
  }

  /** Closes the vCPUs, then the VM, whose teardown in KVM finishes on a thread of its own. */
  close(): void {
    for (const vcpu of this.vcpus) vcpu.close();
    this.vcpus.length = 0;
    this.addon.closeVmInBackground(this.fd);
  }
}

export class Vcpu {
  private closed = false;

  constructor(
    readonly id: number,
    readonly fd: number,
    private readonly addon: NativeAddon,
  ) {}

  private get(kind: number, size: number): Uint8Array {
    const bytes = new Uint8Array(size);
    this.addon.vcpuGetState(this.fd, kind, bytes);
    return bytes;
  }

  getRegs(): Regs {
    return decodeRegs(this.get(VcpuStateKind.REGS, REGS_SIZE));
  }
  setRegs(regs: Regs): void {
    this.addon.vcpuSetState(this.fd, VcpuStateKind.REGS, encodeRegs(regs));
  }

  getSregs(): Sregs {
    return decodeSregs(this.get(VcpuStateKind.SREGS, SREGS_SIZE));
  }
  setSregs(sregs: Sregs): void {
    this.addon.vcpuSetState(this.fd, VcpuStateKind.SREGS, encodeSregs(sregs));
  }

  getFpu(): Fpu {
    return decodeFpu(this.get(VcpuStateKind.FPU, FPU_SIZE));
  }
  setFpu(fpu: Fpu): void {
    this.addon.vcpuSetState(this.fd, VcpuStateKind.FPU, encodeFpu(fpu));
  }

  /**
   * struct kvm_xsave (4096 bytes, the XSAVE layout: MXCSR at byte 24). KVM_GET_FPU/KVM_SET_FPU
   * leave MXCSR out; this is the way to it (emulation-failure.ts's ldmxcsr/stmxcsr use it).
   */
  getXsave(): Uint8Array {
    return this.get(VcpuStateKind.XSAVE, 4096);
  }
  setXsave(xsave: Uint8Array): void {
    this.addon.vcpuSetState(this.fd, VcpuStateKind.XSAVE, xsave);
  }

  /** The raw APIC page (struct kvm_lapic_state); see lapicRead/lapicWrite. */
  getLapic(): Uint8Array {
    return this.get(VcpuStateKind.LAPIC, LAPIC_SIZE);
  }
  setLapic(lapic: Uint8Array): void {
    this.addon.vcpuSetState(this.fd, VcpuStateKind.LAPIC, lapic);
  }

  /** LINT0 = ExtINT, LINT1 = NMI, so the in-kernel PIC's interrupts reach this vCPU. */
  enableLapicVirtualWire(): void {
    const lapic = this.getLapic();
    lapicVirtualWire(lapic);
    this.setLapic(lapic);
  }

  getEvents(): VcpuEvents {
    return decodeVcpuEvents(this.get(VcpuStateKind.VCPU_EVENTS, VCPU_EVENTS_SIZE));
  }
  setEvents(events: VcpuEvents): void {
    this.addon.vcpuSetState(this.fd, VcpuStateKind.VCPU_EVENTS, encodeVcpuEvents(events));
  }

  getMpState(): number {
    const bytes = this.get(VcpuStateKind.MP_STATE, 4);
    return new DataView(bytes.buffer).getUint32(0, true);
  }
  setMpState(state: number): void {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, state, true);
    this.addon.vcpuSetState(this.fd, VcpuStateKind.MP_STATE, bytes);
  }

  /** Raw XCRS / debug registers, for snapshots. */
  getRawState(kind: 'XCRS' | 'DEBUGREGS', size: number): Uint8Array {
    return this.get(VcpuStateKind[kind], size);
  }
  setRawState(kind: 'XCRS' | 'DEBUGREGS', bytes: Uint8Array): void {
    this.addon.vcpuSetState(this.fd, VcpuStateKind[kind], bytes);
  }

  /** Reads the given MSRs; those KVM does not know are left out of the result. */
  getMsrs(indices: readonly number[]): MsrEntry[] {
    const bytes = encodeMsrs(indices.map((index) => ({ index, value: 0n })));
    const done = this.addon.vcpuMsrs(this.fd, false, bytes);
    return decodeMsrs(bytes, done);
  }

  /** Writes MSRs; throws naming the first one KVM refused. */
  setMsrs(entries: readonly MsrEntry[]): void {
    const done = this.addon.vcpuMsrs(this.fd, true, encodeMsrs(entries));
    if (done < entries.length) {
      const refused = entries[done]!;
      const error = new Error(`KVM_SET_MSRS: MSR 0x${refused.index.toString(16)} refused`);
      (error as Error & { code: string }).code = 'EINVAL';
      throw error;
    }
  }

  /** KVM_RUN calls so far and the nanoseconds spent between them answering exits. */
  runStats(): { runs: number; userNs: number } {
    return this.addon.runStats(this.fd);
  }

  setCpuid(entries: readonly CpuidEntry[]): void {
    this.addon.setCpuid2(this.fd, encodeCpuid2(entries));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.addon.closeVcpu(this.fd);
  }
}

/** An eventfd owned by the caller (ioeventfd/irqfd); close() when done. */
export class EventFd {
  readonly fd: number;
  private readonly addon: NativeAddon;

  constructor(options: { nonBlocking?: boolean; initialValue?: number } = {}, addon: NativeAddon = native()) {
    this.addon = addon;
    this.fd = addon.eventfd(options.initialValue ?? 0, options.nonBlocking === false ? 0 : EFD_NONBLOCK);
  }

  /** The counter (reset to zero), or null when it was already zero. */
  read(): bigint | null {
    return this.addon.eventfdRead(this.fd);
  }

  write(value: bigint | number = 1n): void {
    this.addon.eventfdWrite(this.fd, value);
  }

  close(): void {
    this.addon.closeFd(this.fd);
  }
}
