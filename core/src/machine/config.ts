// What a Machine is built from, and the one check of it. Written by hand rather than as a zod
// schema: `vireo run` checks a config on its start-up path, where importing zod alone costs
// more than QEMU takes to start a VM (bench/startup.ts). The API's VmSpec (api/schema.ts) is
// still zod; the supervisor turns it into this through MachineConfig.safeParse as well.

import type { Network } from '../net/config.js';
import { MAX_CPUS } from '../x86/layout.js';

export { MAX_CPUS };

const MIB = 1024 * 1024;

/** The least memory a Linux guest with an initramfs boots in. */
export const MIN_MEMORY = 32 * MIB;
/** The boot protocol's command line limit (without the terminating NUL). */
export const MAX_CMDLINE = 4095;

export const CPU_PROFILE_NAMES = ['auto', 'host', 'emulation-safe'] as const;
export type CpuProfileName = (typeof CPU_PROFILE_NAMES)[number];

/** Where the terminal's console is: the 8250 UART (ttyS0) or virtio-console (hvc0). */
export const CONSOLE_KINDS = ['serial', 'virtio'] as const;
export type ConsoleKind = (typeof CONSOLE_KINDS)[number];

export interface DiskConfig {
  path: string;
  readOnly: boolean;
  /** O_DIRECT (QEMU's cache=none): bypass the host's page cache. */
  direct?: boolean;
}

export interface MachineConfig {
  kernel: string;
  initrd?: string | undefined;
  cmdline: string;
  memoryBytes: number;
  cpus: number;
  cpuProfile: CpuProfileName;
  /** virtio-blk disks, in order: /dev/vda, /dev/vdb, ... */
  disks: DiskConfig[];
  console: ConsoleKind;
  /** virtio-net and its backend (passt or tap); no MAC: a random 52:54:00 one. */
  network: Network;
}

/** One problem with one field: `path` names it ("memoryBytes", "disks.0.path"). */
export interface ConfigIssue {
  path: (string | number)[];
  message: string;
}

export interface ConfigError {
  issues: ConfigIssue[];
}

export type ConfigResult = { success: true; data: MachineConfig } | { success: false; error: ConfigError };

function isNonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value !== '';
}

function describeValue(value: unknown): string {
  return value === undefined ? 'nothing' : JSON.stringify(value);
}

function safeParse(input: unknown): ConfigResult {
  if (typeof input !== 'object' || input === null) {
    return { success: false, error: { issues: [{ path: [], message: 'expected an object' }] } };
  }
  const fields = input as Record<string, unknown>;
  const issues: ConfigIssue[] = [];
  const fail = (path: (string | number)[], message: string) => {
    issues.push({ path, message });
  };

  const { kernel, initrd, cmdline = '', memoryBytes, cpus } = fields;
  const { cpuProfile = 'auto', disks = [], console = 'serial', network = { mode: 'none' } } = fields;
  if (!isNonEmptyString(kernel)) fail(['kernel'], 'a kernel image path is required');
  if (initrd !== undefined && !isNonEmptyString(initrd)) fail(['initrd'], 'must be a file path');
  if (typeof cmdline !== 'string') fail(['cmdline'], 'expected a string');
  else if (cmdline.length > MAX_CMDLINE) {
    fail(['cmdline'], `the kernel command line is longer than ${MAX_CMDLINE} bytes`);
  }

  if (typeof memoryBytes !== 'number' || !Number.isSafeInteger(memoryBytes)) {
    fail(['memoryBytes'], `expected a whole number of bytes, got ${describeValue(memoryBytes)}`);
  } else if (memoryBytes < MIN_MEMORY) fail(['memoryBytes'], `memory must be at least ${MIN_MEMORY / MIB}M`);
  else if (memoryBytes % (2 * MIB) !== 0) fail(['memoryBytes'], 'memory must be a multiple of 2M');

  if (typeof cpus !== 'number' || !Number.isSafeInteger(cpus)) {
    fail(['cpus'], `expected a whole number, got ${describeValue(cpus)}`);
  } else if (cpus < 1) fail(['cpus'], 'at least 1 CPU');
  else if (cpus > MAX_CPUS) fail(['cpus'], `at most ${MAX_CPUS} CPUs`);

  if (!CPU_PROFILE_NAMES.includes(cpuProfile as CpuProfileName)) {
    fail(['cpuProfile'], `expected one of ${CPU_PROFILE_NAMES.join(', ')}, got ${describeValue(cpuProfile)}`);
  }
  if (!CONSOLE_KINDS.includes(console as ConsoleKind)) {
    fail(['console'], `expected one of ${CONSOLE_KINDS.join(', ')}, got ${describeValue(console)}`);
  }

  // Its contents come from the Network schema's parsers (net/config.ts) or the API schema.
  const mode = (network as { mode?: unknown } | null)?.mode;
  if (mode !== 'none' && mode !== 'user' && mode !== 'tap') {
    fail(['network', 'mode'], `expected none, user or tap, got ${describeValue(mode)}`);
  }

  const checkedDisks: DiskConfig[] = [];
  if (!Array.isArray(disks)) fail(['disks'], 'expected a list of disks');
  else {
    disks.forEach((disk: unknown, index) => {
      const { path, readOnly = false, direct } = (disk ?? {}) as Record<string, unknown>;
      if (!isNonEmptyString(path)) fail(['disks', index, 'path'], 'a disk image path is required');
      else if (typeof readOnly !== 'boolean') fail(['disks', index, 'readOnly'], 'expected true or false');
      else if (direct !== undefined && typeof direct !== 'boolean') {
        fail(['disks', index, 'direct'], 'expected true or false');
      } else checkedDisks.push(direct === undefined ? { path, readOnly } : { path, readOnly, direct });
    });
  }

  if (issues.length > 0) return { success: false, error: { issues } };
  const data: MachineConfig = {
    kernel: kernel as string,
    cmdline: cmdline as string,
    memoryBytes: memoryBytes as number,
    cpus: cpus as number,
    cpuProfile: cpuProfile as CpuProfileName,
    disks: checkedDisks,
    console: console as ConsoleKind,
    network: network as Network,
  };
  if (initrd !== undefined) data.initrd = initrd as string;
  return { success: true, data };
}

export const MachineConfig = {
  safeParse,
  /** Throws with every problem named when `input` is not a valid config. */
  parse(input: unknown): MachineConfig {
    const result = safeParse(input);
    if (!result.success) throw new Error(describeIssues(result.error));
    return result.data;
  },
};

/** Validation failures as one line per field: "memoryBytes: memory must be at least 32M". */
export function describeIssues(error: ConfigError): string {
  return error.issues.map((issue) => `${issue.path.join('.') || 'config'}: ${issue.message}`).join('\n');
}
