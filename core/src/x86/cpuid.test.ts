import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type CpuidEntry,
  chooseCpuidProfile,
  guestCpuid,
  KVM_FEATURES_LEAF,
  KVM_FEATURES_WITH_HYPERCALLS,
  KVM_SIGNATURE,
  LEAF1_ECX_CX16,
  LEAF1_ECX_HYPERVISOR,
  LEAF1_ECX_SSE3,
  LEAF1_ECX_SSE41,
  LEAF1_ECX_SSSE3,
  LEAF1_ECX_XSAVE,
  LEAF7_EBX_SMAP,
  LEAF7_EBX_SMEP,
  LEAF7_ECX_UMIP,
  profileKernelArgs,
} from './cpuid.js';

const leaf = (fn: number, index: number, regs: Partial<CpuidEntry> = {}): CpuidEntry => ({
  function: fn,
  index,
  flags: 0,
  eax: 0,
  ebx: 0,
  ecx: 0,
  edx: 0,
  ...regs,
});

/** What KVM_GET_SUPPORTED_CPUID returns on a machine with hardware virtualization (abridged). */
const hardwareHost: CpuidEntry[] = [
  leaf(0, 0, { eax: 0x1f, ebx: 0x756e_6547, ecx: 0x6c65_746e, edx: 0x4965_6e69 }),
  leaf(1, 0, {
    eax: 0x906ea,
    ebx: 0x0000_0800,
    ecx: LEAF1_ECX_SSE3 | LEAF1_ECX_SSSE3 | LEAF1_ECX_SSE41 | LEAF1_ECX_CX16 | LEAF1_ECX_XSAVE,
    edx: 0x178b_fbff,
  }),
  leaf(4, 0, { flags: 1, eax: 0x121 }),
  leaf(4, 3, { flags: 1, eax: 0x163 }),
  leaf(7, 0, { flags: 1, ebx: LEAF7_EBX_SMEP | LEAF7_EBX_SMAP | 1, ecx: LEAF7_ECX_UMIP }),
  leaf(0xb, 0, { flags: 1 }),
  leaf(0xb, 1, { flags: 1 }),
  leaf(0xd, 0, { flags: 1, eax: 7 }),
  leaf(0x1f, 0, { flags: 1 }),
  leaf(0x4000_0000, 0, {
    eax: 0x4000_0001,
    ebx: KVM_SIGNATURE[0],
    ecx: KVM_SIGNATURE[1],
    edx: KVM_SIGNATURE[2],
  }),
  leaf(0x4000_0001, 0, { eax: 0x0100_7afb }),
  leaf(0x8000_0000, 0, { eax: 0x8000_0008 }),
];

/** An emulating KVM (PVM): no SSE3 and beyond, no XSAVE, max basic leaf 0xd, no KVM leaves. */
const emulatingHost: CpuidEntry[] = [
  leaf(0, 0, { eax: 0xd }),
  leaf(1, 0, { eax: 0x6f1, ecx: LEAF1_ECX_CX16, edx: 0x078b_fbff }),
  leaf(7, 0, { flags: 1, ebx: LEAF7_EBX_SMAP }),
  leaf(0xd, 0, { flags: 1 }),
  leaf(0x8000_0000, 0, { eax: 0x8000_0008 }),
];

test('detection picks the safe profile only for an emulating KVM', () => {
  assert.deepEqual(chooseCpuidProfile(hardwareHost), { profile: 'host', reasons: [] });
  const choice = chooseCpuidProfile(emulatingHost);
  assert.equal(choice.profile, 'emulation-safe');
  assert.match(choice.reasons[0]!, /sse3, ssse3, sse4_1, xsave/);
  assert.equal(chooseCpuidProfile([]).profile, 'emulation-safe');
});

test('host profile: hypervisor bit, APIC ID per vCPU, KVM signature, topology leaves', () => {
  for (let index = 0; index < 6; index++) {
    const entries = guestCpuid(hardwareHost, 'host', { index, count: 6 });
    const l1 = entries.find((e) => e.function === 1)!;
    assert.equal(l1.ebx >>> 24, index);
    assert.equal((l1.ebx >>> 16) & 0xff, 6);
    assert.equal((l1.ebx >>> 8) & 0xff, 8, 'CLFLUSH line size kept');
    assert.ok(l1.ecx & LEAF1_ECX_HYPERVISOR);
    assert.ok(l1.ecx & LEAF1_ECX_XSAVE, 'host keeps XSAVE');
    const b = entries.filter((e) => e.function === 0xb);
    assert.deepEqual(
      b.map((e) => [e.eax, e.ebx, e.ecx, e.edx]),
      [
        [0, 1, 0x100, index],
        [3, 6, 0x201, index],
      ],
    );
    assert.ok(!entries.some((e) => e.function === 0x1f));
    const l4 = entries.filter((e) => e.function === 4);
    assert.deepEqual(
      l4.map((e) => [e.eax >>> 26, (e.eax >>> 14) & 0xfff]),
      [
        [5, 0],
        [5, 5],
      ],
    );
  }
  assert.throws(() => guestCpuid(hardwareHost, 'host', { index: 2, count: 2 }), RangeError);
});

test('the input table is not modified', () => {
  const before = JSON.stringify(hardwareHost);
  guestCpuid(hardwareHost, 'emulation-safe', { index: 1, count: 2 });
  assert.equal(JSON.stringify(hardwareHost), before);
});

test('emulation-safe: no leaf 0xd, max basic leaf below it, cx16/xsave/smap/smep/umip hidden', () => {
  for (const host of [hardwareHost, emulatingHost]) {
    const entries = guestCpuid(host, 'emulation-safe', { index: 0, count: 1 });
    const max = entries.find((e) => e.function === 0)!.eax;
    assert.ok(max < 0xd);
    assert.ok(!entries.some((e) => e.function > max && e.function < 0x4000_0000));
    const l1 = entries.find((e) => e.function === 1)!;
    assert.equal(l1.ecx & (LEAF1_ECX_CX16 | LEAF1_ECX_XSAVE), 0);
    const l7 = entries.find((e) => e.function === 7)!;
    assert.equal(l7.ebx & (LEAF7_EBX_SMAP | LEAF7_EBX_SMEP), 0);
    assert.equal(l7.ecx & LEAF7_ECX_UMIP, 0);
    const sig = entries.find((e) => e.function === 0x4000_0000)!;
    assert.deepEqual([sig.ebx, sig.ecx, sig.edx], [...KVM_SIGNATURE]);
    assert.ok(entries.some((e) => e.function === 0x4000_0001));
    for (const e of entries)
      for (const r of [e.eax, e.ebx, e.ecx, e.edx]) assert.ok(r >= 0 && r <= 0xffff_ffff);
  }
});

test('emulation-safe hides the paravirtual features that make hypercalls; host keeps them', () => {
  const kvmFeatures = hardwareHost.find((e) => e.function === KVM_FEATURES_LEAF)!.eax;
  assert.notEqual(kvmFeatures & KVM_FEATURES_WITH_HYPERCALLS, 0, 'the host offers some of them');
  const features = (profile: 'host' | 'emulation-safe') =>
    guestCpuid(hardwareHost, profile, { index: 1, count: 2 }).find((e) => e.function === KVM_FEATURES_LEAF)!
      .eax;
  assert.equal(features('host'), kvmFeatures);
  assert.equal(features('emulation-safe'), (kvmFeatures & ~KVM_FEATURES_WITH_HYPERCALLS) >>> 0);
  assert.equal(features('emulation-safe') & (1 << 3), 1 << 3, 'kvm-clock stays');
});

test('profiles name the kernel arguments they need', () => {
  assert.deepEqual(profileKernelArgs('host'), []);
  assert.match(profileKernelArgs('emulation-safe').join(' '), /clearcpuid=smap,smep,umip/);
});
