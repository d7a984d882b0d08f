// Loads the C addon (native/) and types its functions. Mechanism only: the classes in kvm.ts give
// these calls meaning. Loadable from worker threads too (the addon is context-aware).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeStructSizes {
  regs: number;
  sregs: number;
  fpu: number;
  lapic: number;
  vcpuEvents: number;
  mpState: number;
  xcrs: number;
  debugregs: number;
  irqchip: number;
  pit2: number;
  clock: number;
  cpuidEntry2: number;
  msrEntry: number;
  irqRoutingEntry: number;
  kvmRun: number;
}

type Bytes = ArrayBufferView;

export interface NativeAddon {
  addressOf(bytes: Bytes): number;
  adviseHugePages(bytes: Bytes): boolean;
  pageSize(): number;
  openKvm(): number;
  closeFd(fd: number): void;
  apiVersion(kvmFd: number): number;
  checkExtension(fd: number, capability: number): number;
  vcpuMmapSize(kvmFd: number): number;
  getSupportedCpuid(kvmFd: number): ArrayBuffer;
  getMsrIndexList(kvmFd: number): ArrayBuffer;
  createVm(kvmFd: number, type?: number): number;
  setTssAddr(vmFd: number, address: number): void;
  setIdentityMapAddr(vmFd: number, address: number | bigint): void;
  setUserMemoryRegion(
    vmFd: number,
    slot: number,
    flags: number,
    gpa: number | bigint,
    bytes: Bytes | null,
  ): void;
  enableCap(fd: number, capability: number, argument: number): void;
  createIrqchip(vmFd: number): void;
  createPit2(vmFd: number, flags: number): void;
  closeVmInBackground(vmFd: number): void;
  irqLine(vmFd: number, irq: number, level: number): void;
  ioeventfd(
    vmFd: number,
    eventFd: number,
    address: number | bigint,
    length: number,
    flags: number,
    datamatch?: number | bigint,
  ): void;
  irqfd(vmFd: number, eventFd: number, gsi: number, flags: number, resampleFd?: number): void;
  setGsiRouting(vmFd: number, routing: Bytes): void;
  signalMsi(vmFd: number, addressLo: number, addressHi: number, data: number): number;
  getDirtyLog(vmFd: number, slot: number, bitmap: Bytes): void;
  vcpuGetState(vcpuFd: number, kind: number, bytes: Bytes): void;
  vcpuSetState(vcpuFd: number, kind: number, bytes: Bytes): void;
  vmGetState(vmFd: number, kind: number, bytes: Bytes): void;
  vmSetState(vmFd: number, kind: number, bytes: Bytes): void;
  vcpuMsrs(vcpuFd: number, set: boolean, bytes: Bytes): number;
  setCpuid2(vcpuFd: number, bytes: Bytes): void;
  eventfd(initialValue?: number, flags?: number): number;
  eventfdRead(fd: number): bigint | null;
  eventfdWrite(fd: number, value: number | bigint): void;
  createVcpu(kvmFd: number, vmFd: number, id: number): number;
  closeVcpu(vcpuFd: number): void;
  run(vcpuFd: number, exitBuffer: Bytes): number;
  kick(vcpuFd: number): void;
  runStats(vcpuFd: number): { runs: number; userNs: number };
  releaseThread(vcpuFd: number): void;
  clearImmediateExit(vcpuFd: number): void;
  /** The calling thread gets the kick signal every `micros` µs (0: stop), so its KVM_RUN returns in time. */
  setThreadTicker(micros: number): void;
  readonly structSizes: NativeStructSizes;
  readonly kickSignal: number;
  readonly exitBufferSize: number;
}

/** Where the built addon is: $VIREO_NATIVE_ADDON, else native/build/Release under the repository. */
export function nativeAddonPath(): string {
  if (process.env.VIREO_NATIVE_ADDON) return process.env.VIREO_NATIVE_ADDON;
  // This file runs from dist/core/src/kvm/ (compiled) — walk up to the repository root.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'native', 'build', 'Release', 'vireo_kvm.node');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error('the Vireo native addon is not built (run `npm run build:native`)');
}

let loaded: NativeAddon | undefined;

export function native(): NativeAddon {
  if (!loaded) {
    const require = createRequire(import.meta.url);
    loaded = require(nativeAddonPath()) as NativeAddon;
  }
  return loaded;
}
