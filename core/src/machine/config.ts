// What a Machine is built from. One schema gives the type and the validation.

import { z } from 'zod';
import { Network } from '../net/config.js';

const MIB = 1024 * 1024;

/** The least memory a Linux guest with an initramfs boots in. */
export const MIN_MEMORY = 32 * MIB;
/** KVM on x86 supports more, but the in-kernel irqchip's APIC ids and our MP table stop at 255. */
export const MAX_CPUS = 255;

export const CpuProfileName = z.enum(['auto', 'host', 'emulation-safe']);
export type CpuProfileName = z.infer<typeof CpuProfileName>;

export const DiskConfig = z.object({
  path: z.string().min(1, 'a disk image path is required'),
  readOnly: z.boolean().default(false),
  /** O_DIRECT (QEMU's cache=none): bypass the host's page cache. */
  direct: z.boolean().optional(),
});
export type DiskConfig = z.infer<typeof DiskConfig>;

/** Where the terminal's console is: the 8250 UART (ttyS0) or virtio-console (hvc0). */
export const ConsoleKind = z.enum(['serial', 'virtio']);
export type ConsoleKind = z.infer<typeof ConsoleKind>;

export const MachineConfig = z.object({
  kernel: z.string().min(1, 'a kernel image path is required'),
  initrd: z.string().min(1).optional(),
  cmdline: z.string().max(4095, 'the kernel command line is longer than 4095 bytes').default(''),
  memoryBytes: z
    .number()
    .int()
    .min(MIN_MEMORY, `memory must be at least ${MIN_MEMORY / MIB}M`)
    .refine((n) => n % (2 * MIB) === 0, 'memory must be a multiple of 2M'),
  cpus: z.number().int().min(1, 'at least 1 CPU').max(MAX_CPUS, `at most ${MAX_CPUS} CPUs`),
  cpuProfile: CpuProfileName.default('auto'),
  /** virtio-blk disks, in order: /dev/vda, /dev/vdb, ... */
  disks: z.array(DiskConfig).default([]),
  console: ConsoleKind.default('serial'),
  /** virtio-net and its backend (passt or tap); no MAC: a random 52:54:00 one. */
  network: Network.default({ mode: 'none' }),
});
export type MachineConfig = z.infer<typeof MachineConfig>;

/** Validation failures as one line per field: "memoryBytes: memory must be at least 32M". */
export function describeIssues(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join('.') || 'config'}: ${issue.message}`).join('\n');
}
