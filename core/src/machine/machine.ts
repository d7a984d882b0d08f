// A running x86-64 VM built from a MachineConfig: guest RAM, KVM, the Linux boot, the platform
// devices and the vCPU threads. Lives in a VM host process (for `vireo run`, the CLI itself).

import { readFileSync } from 'node:fs';
import { allocateGuestRam, Kvm, type Vcpu, type Vm } from '../kvm/kvm.js';
import { VcpuSet, type VmStop } from '../kvm/vcpu-set.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { detectKernelFormat, type LinuxBoot, prepareLinuxBoot } from '../x86/boot.js';
import { bootRegs, bootSregs } from '../x86/boot-vcpu.js';
import { KernelImageError, parseBzImage } from '../x86/bzimage.js';
import { type CpuidProfileName, chooseCpuidProfile, guestCpuid, profileKernelArgs } from '../x86/cpuid.js';
import { findPvhEntry, parseElf } from '../x86/elf.js';
import { handleEmulationFailure } from '../x86/emulation-failure.js';
import { KVM_IDENTITY_MAP_ADDR, KVM_TSS_ADDR, ramRegions } from '../x86/layout.js';
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

export class Machine {
  private vcpuSet: VcpuSet | undefined;
  private running: Promise<MachineExit> | undefined;
  private closed = false;

  private constructor(
    readonly config: MachineConfig,
    readonly boot: LinuxBoot,
    readonly cpuProfile: CpuidProfileName,
    private readonly kvm: Kvm,
    private readonly vm: Vm,
    readonly memory: GuestMemory,
    private readonly vcpus: Vcpu[],
    private readonly platform: Platform,
    private readonly io: MachineIo,
  ) {}

  static async create(config: MachineConfig, io: MachineIo): Promise<Machine> {
    const kernel = readInput('kernel', config.kernel);
    const initrd = config.initrd === undefined ? undefined : readInput('initrd', config.initrd);
    checkKernel(config.kernel, kernel);

    const kvm = openKvm();
    let vm: Vm | undefined;
    try {
      vm = kvm.createVm();
      vm.setTssAddress(KVM_TSS_ADDR);
      vm.setIdentityMapAddress(KVM_IDENTITY_MAP_ADDR);
      vm.createIrqchip();
      // Speaker-dummy mode: KVM also answers port 0x61 (PIT channel 2's output in bit 5).
      vm.createPit(1);

      const regions = ramRegions(config.memoryBytes).map((region, slot) => {
        const bytes = allocateGuestRam(region.size);
        vm!.setMemoryRegion(slot, region.gpa, bytes);
        return { gpa: region.gpa, bytes };
      });
      const memory = new GuestMemory(regions);

      const supported = kvm.supportedCpuid();
      let cpuProfile: CpuidProfileName;
      if (config.cpuProfile === 'auto') {
        const choice = chooseCpuidProfile(supported);
        cpuProfile = choice.profile;
        for (const reason of choice.reasons) io.log(`CPU profile ${cpuProfile}: ${reason}`);
      } else {
        cpuProfile = config.cpuProfile;
      }

      let boot: LinuxBoot;
      try {
        boot = prepareLinuxBoot(memory, {
          kernel,
          initrd,
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

      const platform = createPlatform(vm, memory, io, { disks: config.disks, console: config.console });
      return new Machine(config, boot, cpuProfile, kvm, vm, memory, vcpus, platform, io);
    } catch (error) {
      vm?.close();
      kvm.close();
      throw error;
    }
  }

  /** Starts the vCPUs; resolves when the VM has ended and its resources are released. */
  run(): Promise<MachineExit> {
    if (this.running) return this.running;
    const debug = process.env.VIREO_DEBUG ? this.io.log : () => {};
    // A workaround is worth saying once; a kernel can hit the same one thousands of times.
    const workaroundsSeen = new Set<string>();
    const vcpuSet = new VcpuSet({
      vcpus: this.vcpus,
      pio: this.platform.pio,
      mmio: this.platform.mmio,
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
    });
    this.vcpuSet = vcpuSet;
    this.platform.onPowerOff(() => vcpuSet.requestStop({ reason: 'shutdown', message: 'guest powered off' }));
    this.platform.onReset(() => vcpuSet.requestStop({ reason: 'reset', message: 'guest reset the machine' }));
    vcpuSet.start();
    this.running = vcpuSet.done.then((stop) => {
      this.close();
      return toMachineExit(stop);
    });
    return this.running;
  }

  sendConsoleInput(bytes: Uint8Array): void {
    this.platform.sendConsoleInput(bytes);
  }

  pressPowerButton(): void {
    this.platform.pressPowerButton();
  }

  /** Forces the VM off (the power cord, not the button). */
  async stop(): Promise<void> {
    if (!this.vcpuSet) {
      this.close();
      return;
    }
    await this.vcpuSet.stop('stopped from the console');
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.platform.close();
    this.vm.close();
    this.kvm.close();
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
