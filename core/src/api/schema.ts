// The control-plane API, defined once: the VM spec kept in the library, the VM status the supervisor
// reports, every JSON-RPC method's params and result, the notifications and the error codes. Types
// and runtime validation both come from these zod schemas; the server validates every request with
// them and the library validates every spec file.

import { z } from 'zod';
import { CONSOLE_KINDS, CPU_PROFILE_NAMES, MAX_CMDLINE, MAX_CPUS, MIN_MEMORY } from '../machine/config.js';
import { Network } from '../net/config.js';

const MIB = 1024 * 1024;
export const MAX_DISKS = 16;
export const SPEC_VERSION = 1;

/** Directory-safe: it names the VM's folder and its sockets. */
export const VmId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'an id is 1-63 lowercase letters, digits or dashes');
export type VmId = z.infer<typeof VmId>;

export const VmName = z
  .string()
  .min(1, 'a name is required')
  .max(64, 'a name is at most 64 characters')
  .refine(
    (name) => [...name].every((char) => char.charCodeAt(0) >= 0x20 && char !== '\u007f'),
    'a name has no control characters',
  )
  .refine((name) => name.trim() === name, 'a name does not start or end with spaces');

const AbsolutePath = z
  .string()
  .min(1)
  .max(4096)
  .refine((path) => path.startsWith('/'), 'must be an absolute path');

export const CpuProfile = z.enum(CPU_PROFILE_NAMES);

export const MemoryBytes = z
  .number()
  .int()
  .min(MIN_MEMORY, `memory must be at least ${MIN_MEMORY / MIB}M`)
  .max(2 ** 46, 'memory is more than 64T')
  .refine((n) => n % (2 * MIB) === 0, 'memory must be a multiple of 2M');

export const Cpus = z.number().int().min(1, 'at least 1 CPU').max(MAX_CPUS, `at most ${MAX_CPUS} CPUs`);

/** 'default' is Vireo's built-in guest (small kernel + busybox initramfs from the guest material). */
export const BootSource = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('default'),
      /** Added to the built-in guest's own command line (e.g. `loglevel=7`, `root=/dev/vda`). */
      append: z.string().max(2048, 'the appended command line is longer than 2048 bytes').optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('kernel'),
      kernel: AbsolutePath,
      initrd: AbsolutePath.optional(),
      cmdline: z
        .string()
        .max(MAX_CMDLINE, `the kernel command line is longer than ${MAX_CMDLINE} bytes`)
        .default(''),
    })
    .strict(),
]);
export type BootSource = z.infer<typeof BootSource>;

/**
 * Opened with O_DIRECT, bypassing the host's page cache (QEMU's cache=none): the guest's own cache
 * is not kept twice and writes reach the device; the VMM bounces buffers the guest did not align.
 */
const DirectIo = z.boolean().default(false);

/** Attached as virtio-blk in order (/dev/vda, vdb, ...); the VMM takes raw images only so far. */
export const Disk = z
  .object({
    path: AbsolutePath,
    readonly: z.boolean().default(false),
    format: z.enum(['raw', 'qcow2']).default('raw'),
    direct: DirectIo,
  })
  .strict();
export type Disk = z.infer<typeof Disk>;

export const SECTOR_BYTES = 512;

/**
 * A raw image the library creates in the VM's folder; the spec then names its path. Blank (sparse)
 * of `sizeBytes`, or a copy of the raw image `from` (sparse-aware, a reflink where the filesystem
 * can), grown to `sizeBytes` if that is given and larger.
 */
export const NewDisk = z
  .object({
    create: z
      .object({
        sizeBytes: z
          .number()
          .int()
          .min(MIB, 'a new disk is at least 1M')
          .max(2 ** 46, 'a new disk is at most 64T')
          .refine((n) => n % SECTOR_BYTES === 0, `a disk size is whole ${SECTOR_BYTES}-byte sectors`)
          .optional(),
        from: AbsolutePath.optional(),
      })
      .strict()
      .refine(
        (create) => create.sizeBytes !== undefined || create.from !== undefined,
        'a new disk needs sizeBytes, from (an image to copy), or both',
      ),
    readonly: z.literal(false).default(false),
    direct: DirectIo,
  })
  .strict();
export type NewDisk = z.input<typeof NewDisk>;

/**
 * In vm.create and vm.update: an existing image, or a new blank one (an object with `create`). The
 * branch is chosen by that key rather than by z.union, so errors name the field, not just the disk.
 */
const DiskOrNew = z.unknown().transform((value, ctx) => {
  const schema = typeof value === 'object' && value !== null && 'create' in value ? NewDisk : Disk;
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues) {
    ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path });
  }
  return z.NEVER;
}) as unknown as z.ZodType<Disk | z.output<typeof NewDisk>, z.input<typeof Disk> | NewDisk>;
const DisksOrNew = z.array(DiskOrNew).max(MAX_DISKS, `at most ${MAX_DISKS} disks`);

/** The network part of a VM: defined with the machine's (core/src/net/config.ts). */
export { Network };

/** Which console the terminal attaches to: the 8250 UART (ttyS0) or virtio-console (hvc0). */
export const ConsoleSpec = z
  .object({
    kind: z.enum(CONSOLE_KINDS).default('serial'),
    historyBytes: z
      .number()
      .int()
      .min(0)
      .max(16 * MIB)
      .default(64 * 1024),
  })
  .strict();

/** Validated and kept; the VMM has no framebuffer yet. */
export const DisplaySpec = z
  .object({
    enabled: z.boolean().default(false),
    width: z.number().int().min(320).max(7680).default(1024),
    height: z.number().int().min(200).max(4320).default(768),
  })
  .strict();

/** What a person chooses about a VM: every field but the identity and bookkeeping. */
const VmSettings = z.object({
  name: VmName,
  cpus: Cpus.default(1),
  memoryBytes: MemoryBytes.default(512 * MIB),
  cpuProfile: CpuProfile.default('auto'),
  boot: BootSource.default({ kind: 'default' }),
  disks: z.array(Disk).max(MAX_DISKS, `at most ${MAX_DISKS} disks`).default([]),
  network: Network.default({ mode: 'none' }),
  console: ConsoleSpec.default({ kind: 'serial', historyBytes: 64 * 1024 }),
  display: DisplaySpec.default({ enabled: false, width: 1024, height: 768 }),
});

const Timestamp = z.string().refine((text) => !Number.isNaN(Date.parse(text)), 'an ISO 8601 time');

/** One VM in the library: $XDG_DATA_HOME/vireo/vms/<id>/spec.json. */
export const VmSpec = VmSettings.extend({
  version: z.literal(SPEC_VERSION),
  id: VmId,
  createdAt: Timestamp,
  updatedAt: Timestamp,
}).strict();
export type VmSpec = z.infer<typeof VmSpec>;

export const VmCreateParams = VmSettings.extend({ disks: DisksOrNew.default([]) }).strict();
export type VmCreateParams = z.input<typeof VmCreateParams>;

/** Changes to a VM: any settings; what is given replaces the old value whole. */
export const VmChanges = z
  .object({
    name: VmName,
    cpus: Cpus,
    memoryBytes: MemoryBytes,
    cpuProfile: CpuProfile,
    boot: BootSource,
    disks: DisksOrNew,
    network: Network,
    console: ConsoleSpec,
    display: DisplaySpec,
  })
  .partial()
  .strict();
export type VmChanges = z.input<typeof VmChanges>;

export const VmState = z.enum(['stopped', 'starting', 'running', 'paused', 'stopping', 'crashed']);
export type VmState = z.infer<typeof VmState>;

/** How the VM last ended. */
export const VmExit = z.object({
  reason: z.enum(['poweroff', 'reset', 'stopped', 'error', 'crashed', 'start-failed']),
  message: z.string().optional(),
  at: Timestamp,
  /** The guest's last console lines, kept for crashes and errors. */
  consoleTail: z.string().optional(),
});
export type VmExit = z.infer<typeof VmExit>;

export const VmStatus = z.object({
  state: VmState,
  since: Timestamp,
  pid: z.number().int().optional(),
  lastExit: VmExit.optional(),
});
export type VmStatus = z.infer<typeof VmStatus>;

export const VmInfo = z.object({ spec: VmSpec, status: VmStatus });
export type VmInfo = z.infer<typeof VmInfo>;

export const SpecIssue = z.object({ path: z.string(), message: z.string() });
export type SpecIssue = z.infer<typeof SpecIssue>;

/** A folder in the library whose spec.json cannot be used; reported, never rewritten. */
export const InvalidVm = z.object({ id: z.string(), file: z.string(), issues: z.array(SpecIssue) });
export type InvalidVm = z.infer<typeof InvalidVm>;

// ---- JSON-RPC methods ----

/** A VM named by id or by name. */
const VmRef = z.object({ vm: z.string().min(1).max(128) }).strict();
const Base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'base64 data');

/**
 * Chosen by the client for a request that may take long (copying disk images): the `progress`
 * events of that request carry it, so the client can tell its own from others' (as LSP's
 * workDoneToken).
 */
const ProgressToken = z.string().min(1).max(128).optional();

export const Methods = {
  'daemon.info': {
    params: z.object({}).strict(),
    result: z.object({
      pid: z.number(),
      version: z.string(),
      socket: z.string(),
      dataDir: z.string(),
      /** What the host has, so clients can bound a VM's resources (the wizard's memory and CPUs). */
      host: z.object({ memoryBytes: z.number(), cpus: z.number() }),
    }),
  },
  'vm.list': {
    params: z.object({}).strict(),
    result: z.object({ vms: z.array(VmInfo), invalid: z.array(InvalidVm) }),
  },
  'vm.get': { params: VmRef, result: VmInfo },
  'vm.create': { params: VmCreateParams.extend({ progressToken: ProgressToken }).strict(), result: VmInfo },
  'vm.update': {
    params: VmRef.extend({ changes: VmChanges, progressToken: ProgressToken }).strict(),
    result: VmInfo,
  },
  'vm.delete': { params: VmRef, result: z.object({ id: VmId }) },
  'vm.start': { params: VmRef, result: VmInfo },
  'vm.stop': {
    params: VmRef.extend({
      force: z.boolean().default(false),
      /** How long the guest gets to power off after the button before it is forced off. */
      timeoutMs: z.number().int().min(0).max(3_600_000).default(30_000),
    }).strict(),
    result: VmInfo,
  },
  'vm.pause': { params: VmRef, result: VmInfo },
  'vm.resume': { params: VmRef, result: VmInfo },
  'vm.reset': { params: VmRef, result: VmInfo },
  'console.attach': {
    params: VmRef.extend({ history: z.boolean().default(true) }).strict(),
    result: z.object({ id: VmId, history: Base64 }),
  },
  'console.detach': { params: VmRef, result: z.object({}) },
  'console.write': {
    params: VmRef.extend({
      data: Base64.max(1024 * 1024),
      /**
       * A BREAK on the serial line before `data` (the line held at 0 for a while: what Linux's
       * magic SysRq waits for, then the key in `data` or in the next write). Serial consoles only.
       */
      break: z.boolean().default(false),
    }).strict(),
    result: z.object({}),
  },
  'events.subscribe': { params: z.object({}).strict(), result: z.object({}) },
  /** Browser mode: the daemon serves the renderer on 127.0.0.1; `url` carries the access token. */
  'ui.serve': { params: z.object({}).strict(), result: z.object({ url: z.string() }) },
} as const;

export type MethodName = keyof typeof Methods;
export type MethodParams<M extends MethodName> = z.input<(typeof Methods)[M]['params']>;
export type MethodResult<M extends MethodName> = z.infer<(typeof Methods)[M]['result']>;

export function isMethodName(name: string): name is MethodName {
  return Object.hasOwn(Methods, name);
}

// ---- Notifications (server → client, no id) ----

export const ConsoleOutputNotification = z.object({ vm: VmId, data: Base64 });
export type ConsoleOutputNotification = z.infer<typeof ConsoleOutputNotification>;

export const VmEvent = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('state'), vm: VmId, status: VmStatus }),
  z.object({ kind: z.literal('created'), vm: VmId }),
  z.object({ kind: z.literal('updated'), vm: VmId }),
  z.object({ kind: z.literal('deleted'), vm: VmId }),
  z.object({ kind: z.literal('console-closed'), vm: VmId }),
  /** The VM rebooted in place (its guest reset it, or vm.reset); it is still running. */
  z.object({ kind: z.literal('reset'), vm: VmId, message: z.string() }),
  /** The VM's network link went up or down (passt died or came back, the tap vanished or returned). */
  z.object({ kind: z.literal('network'), vm: VmId, up: z.boolean(), message: z.string() }),
  /** A long operation on a VM moves on: `done` of `total` (bytes for disk copies). */
  z.object({
    kind: z.literal('progress'),
    vm: VmId,
    operation: z.string(),
    done: z.number(),
    total: z.number(),
    /** The `progressToken` of the request this belongs to, when it gave one. */
    token: z.string().optional(),
  }),
]);
export type VmEvent = z.infer<typeof VmEvent>;

export const Notifications = {
  'console.output': ConsoleOutputNotification,
  event: VmEvent,
} as const;

// ---- Errors ----

export const ErrorCode = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603,
  vmNotFound: -32001,
  nameTaken: -32002,
  /** The VM is not in a state that allows the operation (start a running VM, delete a running VM). */
  invalidState: -32003,
  /** The VM's spec.json on disk failed validation; it is left as it is. */
  invalidSpec: -32004,
  notSupported: -32005,
  startFailed: -32006,
  messageTooLarge: -32007,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const ErrorCodeName: Record<number, string> = Object.fromEntries(
  Object.entries(ErrorCode).map(([name, code]) => [code, name]),
);

/** An error the API reports as a JSON-RPC error object. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

/** Validation failures as field + reason. */
export function zodIssues(error: z.ZodError): SpecIssue[] {
  return error.issues.map((issue) => ({ path: issue.path.join('.') || '(root)', message: issue.message }));
}

export function describeSpecIssues(issues: SpecIssue[]): string {
  return issues.map((issue) => `${issue.path}: ${issue.message}`).join('; ');
}

/** Maximum size of one JSON-RPC message (one line), in bytes. */
export const MAX_MESSAGE_BYTES = 4 * MIB;
