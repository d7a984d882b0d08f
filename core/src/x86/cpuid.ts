// Guest CPUID: KVM_GET_SUPPORTED_CPUID filtered through a named profile, per vCPU.

import type { CpuidEntry } from '../kvm/structs.js';

export type { CpuidEntry };

export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;

/**
 * - `host`: what KVM supports, plus the hypervisor bit, the KVM signature leaves and per-vCPU
 *   APIC IDs and topology (all vCPUs are cores of one socket, one thread each).
 * - `emulation-safe`: `host` minus what an emulating KVM (PVM, see DESIGN.md) cannot run: the
 *   maximum basic leaf stops below 0xd so the kernel turns XSAVE off, cx16 and AVX are hidden,
 *   and the kernel is told to clear the features it otherwise takes from the host.
 */
export type CpuidProfileName = 'host' | 'emulation-safe';
export const CPUID_PROFILES: readonly CpuidProfileName[] = ['host', 'emulation-safe'];

export const LEAF1_ECX_SSE3 = 1 << 0;
export const LEAF1_ECX_SSSE3 = 1 << 9;
export const LEAF1_ECX_FMA = 1 << 12;
export const LEAF1_ECX_CX16 = 1 << 13;
export const LEAF1_ECX_SSE41 = 1 << 19;
export const LEAF1_ECX_X2APIC = 1 << 21;
export const LEAF1_ECX_XSAVE = 1 << 26;
export const LEAF1_ECX_OSXSAVE = 1 << 27;
export const LEAF1_ECX_AVX = 1 << 28;
export const LEAF1_ECX_F16C = 1 << 29;
export const LEAF1_ECX_HYPERVISOR = 1 << 31;
export const LEAF1_EDX_HTT = 1 << 28;
export const LEAF7_EBX_AVX2 = 1 << 5;
export const LEAF7_EBX_SMEP = 1 << 7;
export const LEAF7_EBX_SMAP = 1 << 20;
/** AVX-512 F, DQ, IFMA, PF, ER, CD, BW, VL: all need XSAVE state. */
export const LEAF7_EBX_AVX512 =
  (1 << 16) | (1 << 17) | (1 << 21) | (1 << 26) | (1 << 27) | (1 << 28) | (1 << 30) | (1 << 31);
export const LEAF7_ECX_UMIP = 1 << 2;

export const KVM_SIGNATURE_LEAF = 0x4000_0000;
export const KVM_FEATURES_LEAF = 0x4000_0001;
/** "KVMKVMKVM\0\0\0" as EBX, ECX, EDX. */
export const KVM_SIGNATURE = [0x4b4d_564b, 0x564b_4d56, 0x0000_004d] as const;

/**
 * KVM paravirtual features whose guest side makes hypercalls: PV_UNHALT (spinlock kicks),
 * PV_SEND_IPI and PV_SCHED_YIELD. On a KVM that emulates guest kernel code a `vmcall` there never
 * completes: a 2-vCPU Linux hung with its AP in kvm_hypercall4 (a PV IPI) and the BSP spinning
 * on a lock the AP held.
 */
export const KVM_FEATURES_WITH_HYPERCALLS = (1 << 7) | (1 << 11) | (1 << 13);

/** Highest basic leaf under `emulation-safe`: leaf 0xd (XSAVE state) must not exist. */
export const SAFE_MAX_BASIC_LEAF = 0xb;

/** Kernel parameters a profile needs because the guest sees some host feature bits whatever CPUID says. */
export function profileKernelArgs(profile: CpuidProfileName): string[] {
  return profile === 'emulation-safe'
    ? ['clearcpuid=smap,smep,umip,xsave,cx16,popcnt,ssse3,sse4_1,sse4_2,avx,avx2,avx512f']
    : [];
}

export interface ProfileChoice {
  profile: CpuidProfileName;
  /** Why the safe profile was chosen (empty for `host`). */
  reasons: string[];
}

/**
 * Whether this host's KVM emulates guest kernel code: an emulating KVM (PVM) offers no SSE3,
 * SSSE3, SSE4.1 or XSAVE, which every CPU with hardware virtualization has.
 */
export function chooseCpuidProfile(supported: readonly CpuidEntry[]): ProfileChoice {
  const leaf1 = supported.find((e) => e.function === 1);
  if (!leaf1) return { profile: 'emulation-safe', reasons: ['no CPUID leaf 1 in KVM_GET_SUPPORTED_CPUID'] };
  const missing: string[] = [];
  if (!(leaf1.ecx & LEAF1_ECX_SSE3)) missing.push('sse3');
  if (!(leaf1.ecx & LEAF1_ECX_SSSE3)) missing.push('ssse3');
  if (!(leaf1.ecx & LEAF1_ECX_SSE41)) missing.push('sse4_1');
  if (!(leaf1.ecx & LEAF1_ECX_XSAVE)) missing.push('xsave');
  if (missing.length === 0) return { profile: 'host', reasons: [] };
  return {
    profile: 'emulation-safe',
    reasons: [
      `KVM_GET_SUPPORTED_CPUID lacks ${missing.join(', ')}: this KVM likely emulates guest kernel code`,
    ],
  };
}

export interface VcpuTopology {
  /** This vCPU's index, which is also its APIC ID. */
  index: number;
  count: number;
}

function bitsFor(count: number): number {
  return count <= 1 ? 0 : Math.ceil(Math.log2(count));
}

/** The guest CPUID table for one vCPU. Pure: `supported` is not modified. */
export function guestCpuid(
  supported: readonly CpuidEntry[],
  profile: CpuidProfileName,
  vcpu: VcpuTopology,
): CpuidEntry[] {
  if (!Number.isInteger(vcpu.count) || vcpu.count < 1 || vcpu.count > 255) {
    throw new RangeError(`vCPU count ${vcpu.count} outside 1..255`);
  }
  if (!Number.isInteger(vcpu.index) || vcpu.index < 0 || vcpu.index >= vcpu.count) {
    throw new RangeError(`vCPU index ${vcpu.index} outside 0..${vcpu.count - 1}`);
  }
  const safe = profile === 'emulation-safe';
  let entries = supported.map((e) => ({ ...e }));
  const leaf0 = entries.find((e) => e.function === 0);
  let maxBasic = leaf0?.eax ?? 0;
  if (safe && maxBasic > SAFE_MAX_BASIC_LEAF) maxBasic = SAFE_MAX_BASIC_LEAF;
  if (leaf0) leaf0.eax = maxBasic;
  entries = entries.filter((e) => e.function >= 0x4000_0000 || e.function <= maxBasic);
  // Leaf 0x1f duplicates 0xb with more levels; rather than describe a topology twice, drop it.
  entries = entries.filter((e) => e.function !== 0x1f);

  const apicId = vcpu.index;
  const coreBits = bitsFor(vcpu.count);
  for (const e of entries) {
    switch (e.function) {
      case 1:
        e.ebx = ((apicId & 0xff) << 24) | ((vcpu.count & 0xff) << 16) | (e.ebx & 0xffff);
        e.ecx |= LEAF1_ECX_HYPERVISOR;
        if (vcpu.count > 1) e.edx |= LEAF1_EDX_HTT;
        else e.edx &= ~LEAF1_EDX_HTT;
        if (safe) {
          e.ecx &= ~(
            LEAF1_ECX_CX16 |
            LEAF1_ECX_XSAVE |
            LEAF1_ECX_OSXSAVE |
            LEAF1_ECX_AVX |
            LEAF1_ECX_F16C |
            LEAF1_ECX_FMA
          );
        }
        break;
      case 4: {
        // Cores per package - 1 in 31:26; threads sharing the cache - 1 in 25:14 (L3 is shared).
        const level = (e.eax >> 5) & 0x7;
        const sharing = level >= 3 ? vcpu.count - 1 : 0;
        e.eax = (e.eax & 0x3fff) | ((sharing & 0xfff) << 14) | (((vcpu.count - 1) & 0x3f) << 26);
        break;
      }
      case 7:
        if (safe && e.index === 0) {
          e.ebx &= ~(LEAF7_EBX_SMEP | LEAF7_EBX_SMAP | LEAF7_EBX_AVX2 | LEAF7_EBX_AVX512);
          e.ecx &= ~LEAF7_ECX_UMIP;
        }
        break;
      case 0xb:
        Object.assign(e, topologyLevel(e.index, coreBits, vcpu.count, apicId));
        break;
      case KVM_FEATURES_LEAF:
        if (safe) e.eax &= ~KVM_FEATURES_WITH_HYPERCALLS;
        break;
    }
    e.eax >>>= 0;
    e.ebx >>>= 0;
    e.ecx >>>= 0;
    e.edx >>>= 0;
  }
  if (maxBasic >= 0xb && !entries.some((e) => e.function === 0xb)) {
    for (let index = 0; index < 2; index++) {
      entries.push({
        function: 0xb,
        index,
        flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
        ...topologyLevel(index, coreBits, vcpu.count, apicId),
      });
    }
  }
  const signature = entries.find((e) => e.function === KVM_SIGNATURE_LEAF);
  if (signature) {
    [signature.ebx, signature.ecx, signature.edx] = KVM_SIGNATURE;
    signature.eax = Math.max(signature.eax, KVM_FEATURES_LEAF);
  } else {
    const [ebx, ecx, edx] = KVM_SIGNATURE;
    entries.push({ function: KVM_SIGNATURE_LEAF, index: 0, flags: 0, eax: KVM_FEATURES_LEAF, ebx, ecx, edx });
  }
  if (!entries.some((e) => e.function === KVM_FEATURES_LEAF)) {
    entries.push({ function: KVM_FEATURES_LEAF, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 });
  }
  return entries;
}

/** Leaf 0xb sub-leaf: level 0 threads (one per core), level 1 cores, then the invalid level. */
function topologyLevel(
  index: number,
  coreBits: number,
  count: number,
  apicId: number,
): Pick<CpuidEntry, 'eax' | 'ebx' | 'ecx' | 'edx'> {
  if (index === 0) return { eax: 0, ebx: 1, ecx: (1 << 8) | index, edx: apicId };
  if (index === 1) return { eax: coreBits, ebx: count, ecx: (2 << 8) | index, edx: apicId };
  return { eax: 0, ebx: 0, ecx: index & 0xff, edx: apicId };
}
