// Test tags: tests that need /dev/kvm, and slow real-Linux boots that a quick local run may leave out.
import { accessSync, constants } from 'node:fs';
import { type TestContext, test } from 'node:test';
import { Kvm } from '../../core/src/kvm/kvm.js';
import { chooseCpuidProfile } from '../../core/src/x86/cpuid.js';

export function kvmAvailable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Why a KVM test must be skipped on this host, or false to run it. */
export function kvmSkipReason(): string | false {
  return kvmAvailable() ? false : 'needs /dev/kvm (absent or not accessible on this host)';
}

/** Why a slow boot test must be skipped, or false. CI never skips them. */
export function slowBootSkipReason(): string | false {
  const kvm = kvmSkipReason();
  if (kvm) return kvm;
  if (process.env.VIREO_QUICK === '1' && process.env.CI !== 'true') {
    return 'slow real-Linux boot left out of a quick run (VIREO_QUICK=1)';
  }
  return false;
}

type TestFn = (t: TestContext) => void | Promise<void>;

/** A test that runs a VM on /dev/kvm. */
export function kvmTest(name: string, fn: TestFn, options: { timeout?: number } = {}): void {
  test(`[kvm] ${name}`, { skip: kvmSkipReason(), timeout: options.timeout ?? 60_000 }, fn);
}

/** A test that boots a real Linux kernel: minutes on an emulating host. */
export function bootTest(name: string, fn: TestFn, options: { timeout?: number } = {}): void {
  test(`[boot] ${name}`, { skip: slowBootSkipReason(), timeout: options.timeout ?? 40 * 60_000 }, fn);
}

/**
 * Why a test cannot drive a guest's user space on this host, or false where it can. On hosts whose
 * KVM emulates guest kernel code (DESIGN.md), a guest `syscall` from user mode lands at MSR_LSTAR
 * (entry_SYSCALL_64) without entering kernel mode, so /init dies with SIGSEGV there.
 */
export function guestUserspaceSkipReason(): string | false {
  const kvm = kvmSkipReason();
  if (kvm) return kvm;
  const handle = Kvm.open();
  try {
    if (chooseCpuidProfile(handle.supportedCpuid()).profile === 'host') return false;
  } finally {
    handle.close();
  }
  return (
    'this host KVM emulates guest kernel code, and a guest `syscall` from user mode lands at ' +
    'MSR_LSTAR without entering kernel mode, so guest user space (/init) cannot run here'
  );
}
