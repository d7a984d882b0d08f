// Test tags: tests that need /dev/kvm, and slow real-Linux boots that a quick local run may leave out.
import { accessSync, constants } from 'node:fs';
import { type TestContext, test } from 'node:test';

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
