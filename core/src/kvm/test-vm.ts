// A minimal VM for the freestanding test guests and the exit benchmark: RAM, in-kernel irqchip
// and PIT, the guest loaded at KERNEL_LOAD and every vCPU entering it in 64-bit long mode.
// Not the machine model (core/src/machine builds real VMs); just enough to exercise the VMM core.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GuestMemory } from '../memory/guest-memory.js';
import { BOOT_STACK, KERNEL_LOAD, KVM_IDENTITY_MAP_ADDR, KVM_TSS_ADDR } from '../x86/layout.js';
import { setupLongMode } from '../x86/long-mode.js';
import { MpState } from './constants.js';
import type { ExitBus } from './exit-bus.js';
import { allocateGuestRam, Kvm, type Vcpu, type Vm } from './kvm.js';
import type { CpuidEntry } from './structs.js';

/** Ports the test guests use (tests/guests/guest.inc). */
export const TestPort = {
  DEBUG_EXIT: 0x501,
  REPORT: 0x510,
  REPORT_STRING: 0x511,
  QUERY: 0x512,
  READY: 0x513,
  BENCH: 0x80,
} as const;

/** Offset of the 8-byte parameter every test guest carries after its first jump. */
export const GUEST_PARAM_OFFSET = 8;

function repositoryRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'scripts', 'guest', 'build-test-guests.sh'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the Vireo repository root');
    dir = parent;
  }
  return dir;
}

export function testGuestDir(): string {
  const cache =
    process.env.VIREO_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'vireo');
  return join(cache, 'test-guests');
}

let built = false;

/** The flat binary of test guest `name`, building the guests first (once per process). */
export function testGuest(name: string): Uint8Array {
  if (!built) {
    const script = join(repositoryRoot(), 'scripts', 'guest', 'build-test-guests.sh');
    const result = spawnSync('bash', [script], { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`building test guests failed: ${result.stderr}`);
    built = true;
  }
  return new Uint8Array(readFileSync(join(testGuestDir(), `${name}.bin`)));
}

/** The host's supported CPUID with this vCPU's APIC id filled in (leaf 1 and leaf 0xb). */
export function cpuidForVcpu(supported: readonly CpuidEntry[], id: number): CpuidEntry[] {
  return supported.map((entry) => {
    const copy = { ...entry };
    if (copy.function === 1) copy.ebx = ((copy.ebx & 0x00ff_ffff) | (id << 24)) >>> 0;
    if (copy.function === 0xb || copy.function === 0x1f) copy.edx = id;
    return copy;
  });
}

export interface TestVm {
  kvm: Kvm;
  vm: Vm;
  memory: GuestMemory;
  ram: Uint8Array;
  vcpus: Vcpu[];
  close(): void;
}

export interface TestVmOptions {
  guest: Uint8Array;
  memoryBytes?: number;
  vcpus?: number;
  /** Value written at the guest's parameter slot (offset 8). */
  param?: bigint;
  /** Per-vCPU stack top; vCPU i gets stackTop - i * 0x1000. */
  stackTop?: number;
  /** Register RAM with dirty-page logging. */
  logDirty?: boolean;
  /** Leave application processors waiting for INIT/SIPI, as after a real reset. */
  apsWaitForSipi?: boolean;
}

export function createTestVm(options: TestVmOptions): TestVm {
  const kvm = Kvm.open();
  const vm = kvm.createVm();
  try {
    vm.setTssAddress(KVM_TSS_ADDR);
    vm.setIdentityMapAddress(KVM_IDENTITY_MAP_ADDR);
    vm.createIrqchip();
    vm.createPit();
    const ram = allocateGuestRam(options.memoryBytes ?? 16 << 20);
    vm.setMemoryRegion(0, 0, ram, { logDirty: options.logDirty ?? false });
    const memory = new GuestMemory([{ gpa: 0, bytes: ram }]);
    memory.write(KERNEL_LOAD, options.guest);
    if (options.param !== undefined) memory.writeU64(KERNEL_LOAD + GUEST_PARAM_OFFSET, options.param);
    const supported = kvm.supportedCpuid();
    const vcpus: Vcpu[] = [];
    for (let id = 0; id < (options.vcpus ?? 1); id++) {
      const vcpu = vm.createVcpu(id);
      vcpu.setCpuid(cpuidForVcpu(supported, id));
      const { sregs, regs } = setupLongMode(memory, vcpu.getSregs(), {
        rip: KERNEL_LOAD,
        rsp: (options.stackTop ?? BOOT_STACK) - id * 0x1000,
      });
      regs.rdi = BigInt(id);
      vcpu.setSregs(sregs);
      vcpu.setRegs(regs);
      vcpu.enableLapicVirtualWire();
      // With the in-kernel irqchip, application processors wait for INIT/SIPI; start them here.
      if (id > 0 && !options.apsWaitForSipi) vcpu.setMpState(MpState.RUNNABLE);
      vcpus.push(vcpu);
    }
    return {
      kvm,
      vm,
      memory,
      ram,
      vcpus,
      close() {
        vm.close();
        kvm.close();
      },
    };
  } catch (error) {
    vm.close();
    kvm.close();
    throw error;
  }
}

type PortHandler = {
  read?: (data: Uint8Array, address: number) => void;
  write?: (data: Uint8Array, address: number) => void;
};

/** A tiny address -> handler bus for tests and benchmarks (the real one is core/src/devices/bus.ts). */
export class HandlerBus implements ExitBus {
  private readonly handlers = new Map<number, PortHandler>();

  on(address: number, handler: PortHandler): this {
    this.handlers.set(address, handler);
    return this;
  }

  read(address: number, data: Uint8Array): boolean {
    const handler = this.handlers.get(address)?.read;
    if (!handler) return false;
    handler(data, address);
    return true;
  }

  write(address: number, data: Uint8Array): boolean {
    const handler = this.handlers.get(address)?.write;
    if (!handler) return false;
    handler(data, address);
    return true;
  }
}

/** Little-endian value of an exit's data bytes. */
export function littleEndian(data: Uint8Array): number {
  let value = 0;
  for (let i = data.length - 1; i >= 0; i--) value = value * 256 + data[i]!;
  return value;
}

export function putLittleEndian(data: Uint8Array, value: number): void {
  for (let i = 0; i < data.length; i++) {
    data[i] = value & 0xff;
    value = Math.floor(value / 256);
  }
}
