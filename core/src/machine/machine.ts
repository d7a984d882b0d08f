// A running x86-64 VM built from a MachineConfig: guest RAM, KVM, the Linux boot, the platform
// devices and the vCPU threads. Lives in a VM host process (for `vireo run`, the CLI itself).

import { readFileSync } from 'node:fs';
import { ExitReason } from '../kvm/constants.js';
import { decodeIoapicEoi } from '../kvm/exit.js';
import { allocateGuestRam, Kvm, type Vcpu, type Vm } from '../kvm/kvm.js';
import type { ClockData, CpuidEntry } from '../kvm/structs.js';
import { VcpuSet, type VmStop } from '../kvm/vcpu-set.js';
import { GuestMemory } from '../memory/guest-memory.js';
import type { NetBackend } from '../net/backend.js';
import { defaultMac, macBytes } from '../net/mac.js';
import { detectKernelFormat, type LinuxBoot, prepareLinuxBoot } from '../x86/boot.js';
import { bootRegs, bootSregs } from '../x86/boot-vcpu.js';
import { KernelImageError, parseBzImage } from '../x86/bzimage.js';
import { type CpuidProfileName, chooseCpuidProfile, guestCpuid, profileKernelArgs } from '../x86/cpuid.js';
import { findPvhEntry, parseElf } from '../x86/elf.js';
import { handleEmulationFailure } from '../x86/emulation-failure.js';
import { IOAPIC_PINS, KVM_IDENTITY_MAP_ADDR, KVM_TSS_ADDR, ramRegions } from '../x86/layout.js';
import type { MachineConfig } from './config.js';
import { createPlatform, type Platform } from './platform.js';

/** The inputs cannot make a VM (unreadable or invalid kernel, bad sizes): nothing was started. */
export class MachineInputError extends Error {
  override name = 'MachineInputError';
}

export type MachineExit =
  | { reason: 'poweroff' }
  | { reason: 'reset' }
  | { reason: 'stopped' }
  | { reason: 'error'; message: string };

export interface MachineIo {
  onConsoleOutput(bytes: Uint8Array): void;
  log(line: string): void;
  /** The machine rebooted in place (a guest reset with onGuestReset 'reboot', or reset()). */
  onReboot?(message: string): void;
  /** The network link went up or down (default: a log line). */
  onNetworkLink?(up: boolean, message: string): void;
}

/** KVM_INTERNAL_ERROR_EMULATION: the instruction emulator could not run a guest instruction. */
const INTERNAL_ERROR_EMULATION = 1;

function readInput(what: string, path: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (error) {
    throw new MachineInputError(`cannot read ${what} '${path}': ${(error as NodeJS.ErrnoException).code}`);
  }
}

/** Checks that `image` is a kernel Vireo can boot, before anything is started. */
function checkKernel(path: string, image: Uint8Array): void {
  try {
    if (detectKernelFormat(image) === 'bzImage') {
      parseBzImage(image);
    } else if (findPvhEntry(image, parseElf(image)) === undefined) {
      throw new KernelImageError(
        'an ELF file without a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): not a bootable vmlinux',
      );
    }
  } catch (error) {
    if (error instanceof KernelImageError) throw new MachineInputError(`${path}: ${error.message}`);
    throw error;
  }
}

function openKvm(): Kvm {
  try {
    return Kvm.open();
  } catch (error) {
    throw new Error(`cannot use KVM: ${(error as Error).message} (is /dev/kvm there and writable?)`);
  }
}

/** What the machine does when the guest resets it (i8042 pulse, triple fault, ACPI reset). */
export type GuestResetAction = 'reboot' | 'exit';

export interface MachineOptions {
  /**
   * 'reboot' (a VM under the daemon): boot again in place, as a PC does. 'exit' (default, `vireo
   * run`): the run ends with reason 'reset', so the person sees why the guest went away.
   */
  onGuestReset?: GuestResetAction;
}

/** The per-boot half of a machine: thrown away and built anew on every reboot. */
interface Board {
  vm: Vm;
  vcpus: Vcpu[];
  platform: Platform;
  boot: LinuxBoot;
}

/** The kernel, initrd and guest RAM a machine keeps across reboots, and its network backend. */
interface BootInputs {
  kernel: Uint8Array;
  initrd: Uint8Array | undefined;
  ram: { gpa: number; bytes: Uint8Array }[];
  /** passt keeps running (and a tap stays open) while the guest reboots; the MAC stays too. */
  network: { backend: NetBackend; mac: Uint8Array } | undefined;
}

export class Machine {
  private vcpuSet: VcpuSet | undefined;
  private running: Promise<MachineExit> | undefined;
  private closed = false;
  /** pause() was asked for and resume() has not come: a reboot starts its vCPUs paused too. */
  private pauseWanted = false;
  /** The guest's kvmclock as pause() found it, written back by resume() so paused time is not guest time. */
  private clockAtPause: ClockData | undefined;
  /** A reset() from the VMM's side: always reboots, whatever `onGuestReset` says. */
  private resetWanted = false;
  private stopWanted = false;
  private rebootWaiters: (() => void)[] = [];

  private constructor(
    readonly config: MachineConfig,
    readonly cpuProfile: CpuidProfileName,
    private readonly kvm: Kvm,
    private readonly supportedCpuid: CpuidEntry[],
    readonly memory: GuestMemory,
    private readonly inputs: BootInputs,
    private board: Board,
    private readonly io: MachineIo,
    private readonly options: MachineOptions,
  ) {}

  static async create(config: MachineConfig, io: MachineIo, options: MachineOptions = {}): Promise<Machine> {
    const kernel = readInput('kernel', config.kernel);
    const initrd = config.initrd === undefined ? undefined : readInput('initrd', config.initrd);
    checkKernel(config.kernel, kernel);

    let backend: NetBackend | undefined;
    if (config.network.mode !== 'none') {
      // Loaded only for a network: the backends bring in child_process and sockets, which a VM
      // without one need not load on its start-up path (bench/startup.ts).
      const { openNetBackend, NetBackendError } = await import('../net/open.js');
      try {
        backend = await openNetBackend(config.network, io.log);
      } catch (error) {
        if (error instanceof NetBackendError) throw new MachineInputError(`network: ${error.message}`);
        throw error;
      }
    }
    let kvm: Kvm;
    try {
      kvm = openKvm();
    } catch (error) {
      backend?.close();
      throw error;
    }
    try {
      const ram = ramRegions(config.memoryBytes).map((region) => ({
        gpa: region.gpa,
        bytes: allocateGuestRam(region.size),
      }));
      const memory = new GuestMemory(ram);
      const supported = kvm.supportedCpuid();
      let cpuProfile: CpuidProfileName;
      if (config.cpuProfile === 'auto') {
        const choice = chooseCpuidProfile(supported);
        cpuProfile = choice.profile;
        for (const reason of choice.reasons) io.log(`CPU profile ${cpuProfile}: ${reason}`);
      } else {
        cpuProfile = config.cpuProfile;
      }
      const mac = config.network.mode === 'none' ? undefined : config.network.mac;
      const network = backend && {
        backend,
        mac: macBytes(mac ?? defaultMac(crypto.getRandomValues(new Uint8Array(3)))),
      };
      const inputs: BootInputs = { kernel, initrd, ram, network };
      const board = buildBoard(kvm, config, memory, inputs, supported, cpuProfile, io);
      return new Machine(config, cpuProfile, kvm, supported, memory, inputs, board, io, options);
    } catch (error) {
      backend?.close();
      kvm.close();
      throw error;
    }
  }

  /** Where the kernel was entered, its format and command line (of the current boot). */
  get boot(): LinuxBoot {
    return this.board.boot;
  }

  /** Starts the vCPUs; resolves when the VM has ended and its resources are released. */
  run(): Promise<MachineExit> {
    this.running ??= this.runBoots();
    return this.running;
  }

  /** Boots, and boots again after each reset that reboots, until the VM ends. */
  private async runBoots(): Promise<MachineExit> {
    try {
      for (;;) {
        const stop = await this.runBoard();
        const reboot =
          stop.reason === 'reset' &&
          !this.stopWanted &&
          (this.resetWanted || this.options.onGuestReset === 'reboot');
        if (!reboot)
          return stop.reason === 'reset' && this.stopWanted ? { reason: 'stopped' } : toMachineExit(stop);
        this.io.log(`${stop.message}: rebooting`);
        this.resetWanted = false;
        this.rebuild();
        this.io.onReboot?.(stop.message);
      }
    } finally {
      this.close();
      for (const waiter of this.rebootWaiters.splice(0)) waiter();
    }
  }

  /** Runs the current board's vCPUs until something stops them. */
  private runBoard(): Promise<VmStop> {
    const debug = process.env.VIREO_DEBUG ? this.io.log : () => {};
    // A workaround is worth saying once; a kernel can hit the same one thousands of times.
    const workaroundsSeen = new Set<string>();
    const { platform, vcpus } = this.board;
    const vcpuSet = new VcpuSet({
      vcpus,
      pio: platform.pio,
      mmio: platform.mmio,
      onInternalError: (vcpu, info, index) => {
        if (info.suberror !== INTERNAL_ERROR_EMULATION) return undefined;
        const outcome = handleEmulationFailure(vcpu, info.data, this.memory);
        if (outcome.kind === 'continue') {
          const kind = outcome.note.split(' at ')[0]!;
          const say = workaroundsSeen.has(kind) ? debug : this.io.log;
          workaroundsSeen.add(kind);
          say(`vCPU ${index}: ${outcome.note}${say === debug ? '' : ' (repeats are not logged)'}`);
          return 'continue';
        }
        return { reason: 'error', vcpu: index, message: `vCPU ${index}: ${outcome.message}` };
      },
      log: this.io.log,
      debug,
      startOnMainThread: true,
      onMainThreadTurn: () => platform.flushConsole(),
      onSpecialExit: ({ reason, exit }) => {
        if (reason !== ExitReason.IOAPIC_EOI) return undefined;
        platform.endOfInterrupt(decodeIoapicEoi(exit.union()));
        return 'continue';
      },
    });
    this.vcpuSet = vcpuSet;
    platform.onPowerOff(() => vcpuSet.requestStop({ reason: 'shutdown', message: 'guest powered off' }));
    platform.onReset(() => vcpuSet.requestStop({ reason: 'reset', message: 'guest reset the machine' }));
    vcpuSet.start();
    if (this.pauseWanted) void this.pause();
    for (const waiter of this.rebootWaiters.splice(0)) waiter();
    return vcpuSet.done;
  }

  /**
   * The reboot of a PC, in this process (as cloud-hypervisor reboots): the old KVM VM and its
   * devices go, guest RAM is cleared, and a new VM with fresh devices and vCPUs in their power-on
   * state gets the kernel loaded again. The console history and the host's socket stay.
   */
  private rebuild(): void {
    this.clockAtPause = undefined;
    this.board.platform.close();
    this.board.vm.close();
    for (const region of this.inputs.ram) zeroTouchedPages(region.bytes);
    try {
      this.board = buildBoard(
        this.kvm,
        this.config,
        this.memory,
        this.inputs,
        this.supportedCpuid,
        this.cpuProfile,
        this.io,
      );
    } catch (error) {
      // The old board is already closed: only KVM itself is left to release.
      this.closed = true;
      this.inputs.network?.backend.close();
      this.kvm.close();
      throw error;
    }
  }

  sendConsoleInput(bytes: Uint8Array): void {
    this.board.platform.sendConsoleInput(bytes);
  }

  /** A BREAK on the serial console (before input sent after it); false with a virtio console. */
  sendConsoleBreak(): boolean {
    return this.board.platform.sendConsoleBreak();
  }

  pressPowerButton(): void {
    this.board.platform.pressPowerButton();
  }

  /**
   * Stops the guest where it is: every vCPU out of KVM_RUN and parked, in-flight disk requests
   * finished, console input held back until resume(). Guest RAM and device state stay.
   */
  async pause(): Promise<void> {
    this.pauseWanted = true;
    const { platform, vm } = this.board;
    platform.pause();
    await this.vcpuSet?.pause();
    await platform.quiesce();
    // As QEMU does: the clock is read once the vCPUs are out, and a second pause keeps the first reading.
    if (this.vcpuSet && !this.clockAtPause && this.board.vm === vm) this.clockAtPause = this.readClock(vm);
  }

  resume(): void {
    this.pauseWanted = false;
    this.board.platform.resume();
    const held = this.clockAtPause;
    this.clockAtPause = undefined;
    // Flags 0 (no CLOCK_REALTIME): KVM sets the clock to exactly what it was, so the guest does not
    // see the pause as a jump (soft-lockup warnings, timers all firing at once).
    if (held) this.writeClock({ clock: held.clock, flags: 0, realtime: 0n, hostTsc: 0n });
    this.vcpuSet?.resume();
  }

  /** The guest's kvmclock in nanoseconds (KVM_GET_CLOCK), as the guest would read it now. */
  guestClockNs(): bigint {
    return this.board.vm.getClock().clock;
  }

  private readClock(vm: Vm): ClockData | undefined {
    try {
      return vm.getClock();
    } catch (error) {
      this.io.log(`the guest clock will run on through this pause: ${(error as Error).message}`);
      return undefined;
    }
  }

  private writeClock(data: ClockData): void {
    try {
      this.board.vm.setClock(data);
    } catch (error) {
      this.io.log(`the guest clock could not be set back after the pause: ${(error as Error).message}`);
    }
  }

  /** The reset button: resolves once the machine is running its new boot (or has ended). */
  reset(): Promise<void> {
    const vcpuSet = this.vcpuSet;
    if (!vcpuSet || this.closed) return Promise.resolve();
    this.resetWanted = true;
    this.pauseWanted = false;
    const rebooted = new Promise<void>((resolve) => this.rebootWaiters.push(resolve));
    vcpuSet.requestStop({ reason: 'reset', message: 'reset by the VMM' });
    return rebooted;
  }

  /** Forces the VM off (the power cord, not the button). */
  async stop(): Promise<void> {
    this.stopWanted = true;
    if (!this.running) {
      this.close();
      return;
    }
    await this.vcpuSet?.stop('stopped from the console');
    await this.running;
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.board.platform.close();
    this.board.vm.close();
    this.inputs.network?.backend.close();
    this.kvm.close();
  }
}

/** A KVM VM over the machine's RAM with the kernel loaded, vCPUs at its entry and fresh devices. */
function buildBoard(
  kvm: Kvm,
  config: MachineConfig,
  memory: GuestMemory,
  inputs: BootInputs,
  supported: CpuidEntry[],
  cpuProfile: CpuidProfileName,
  io: MachineIo,
): Board {
  const vm = kvm.createVm();
  try {
    // RAM first: KVM waits for an SRCU grace period on each memory slot change once the VM has
    // anything else (irqchip, TSS), 5-10 ms each on an emulating host, but not on a bare VM's
    // first slot (bench/startup.ts).
    inputs.ram.forEach((region, slot) => {
      vm.setMemoryRegion(slot, region.gpa, region.bytes);
    });
    vm.setTssAddress(KVM_TSS_ADDR);
    vm.setIdentityMapAddress(KVM_IDENTITY_MAP_ADDR);
    // The local APICs in KVM, the IOAPIC and PIC here (platform.ts), and no PIT, as QEMU's microvm
    // does: with KVM's in-kernel IOAPIC, PIC and PIT, destroying the VM waits for SRCU grace
    // periods (6-12 ms here), most of the exit of a VM that ran briefly (bench/startup.ts).
    vm.enableSplitIrqchip(IOAPIC_PINS);

    let boot: LinuxBoot;
    try {
      boot = prepareLinuxBoot(memory, {
        kernel: inputs.kernel,
        initrd: inputs.initrd,
        cmdline: config.cmdline,
        extraCmdline: profileKernelArgs(cpuProfile),
        cpus: config.cpus,
        memorySize: config.memoryBytes,
      });
    } catch (error) {
      if (error instanceof KernelImageError || error instanceof RangeError) {
        throw new MachineInputError(`${config.kernel}: ${error.message}`);
      }
      throw error;
    }

    const vcpus: Vcpu[] = [];
    for (let index = 0; index < config.cpus; index++) {
      const vcpu = vm.createVcpu(index);
      vcpu.setCpuid(guestCpuid(supported, cpuProfile, { index, count: config.cpus }));
      vcpu.enableLapicVirtualWire();
      if (index === 0) {
        vcpu.setSregs(bootSregs(vcpu.getSregs(), boot.entry));
        vcpu.setRegs(bootRegs(boot.entry));
      }
      vcpus.push(vcpu);
    }

    const platform = createPlatform(vm, memory, io, {
      disks: config.disks,
      console: config.console,
      network: inputs.network,
    });
    return { vm, vcpus, platform, boot };
  } catch (error) {
    vm.close();
    throw error;
  }
}

const ZERO_CHUNK = new Uint8Array(64 * 1024);

/**
 * Clears guest RAM for a reboot without making every page resident: chunks the guest never
 * touched read as zero (the kernel's zero page) and are left alone.
 */
export function zeroTouchedPages(bytes: Uint8Array): void {
  for (let offset = 0; offset < bytes.length; offset += ZERO_CHUNK.length) {
    const chunk = bytes.subarray(offset, Math.min(offset + ZERO_CHUNK.length, bytes.length));
    if (Buffer.compare(chunk, ZERO_CHUNK.subarray(0, chunk.length)) !== 0) chunk.fill(0);
  }
}

function toMachineExit(stop: VmStop): MachineExit {
  switch (stop.reason) {
    case 'shutdown':
      return { reason: 'poweroff' };
    case 'reset':
      return { reason: 'reset' };
    case 'stopped':
      return { reason: 'stopped' };
    case 'error':
      return { reason: 'error', message: stop.message };
  }
}
