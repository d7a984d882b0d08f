// `vireo run`: boot a VM in the foreground with its serial console on this terminal.

import { accessSync, constants, statSync } from 'node:fs';
import { totalmem } from 'node:os';
import type { Command } from 'commander';
import { formatSize, parseSize } from '../../api/size.js';
import { describeIssues, MachineConfig } from '../../machine/config.js';
import { Machine, type MachineExit, MachineInputError } from '../../machine/machine.js';
import type { Network } from '../../net/config.js';
import { writeStderr, writeStdout } from '../console/std-streams.js';
import { attachTerminal, type TerminalAttachment } from '../console/terminal.js';
import { CliError, ExitCode, usageError } from '../errors.js';

interface RunFlags {
  kernel?: string;
  initrd?: string;
  append?: string;
  memory: string;
  cpus: string;
  cpuProfile: string;
  disk: string[];
  console: string;
  net?: string;
  forward: string[];
}

/** The command line the built-in default guest boots with. */
export const DEFAULT_GUEST_CMDLINE = 'console=ttyS0 panic=-1';
/** With --console virtio: kernel messages on both, /dev/console (the last one) on hvc0. */
export const DEFAULT_GUEST_CMDLINE_VIRTIO_CONSOLE = 'console=ttyS0 console=hvc0 panic=-1';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .description('boot a VM in the foreground with its serial console on this terminal (Ctrl-A x quits)')
    .option(
      '--kernel <path>',
      'kernel image: a bzImage, or an ELF vmlinux with a PVH entry (default: the built-in guest)',
    )
    .option('--initrd <path>', 'initial ramdisk')
    .option('--append <args>', 'kernel command line')
    .option('--memory <size>', 'guest memory, e.g. 512M or 2G', '512M')
    .option('--cpus <n>', 'number of virtual CPUs', '1')
    .option('--cpu-profile <name>', 'CPUID profile: auto, host or emulation-safe', 'auto')
    .option(
      '--disk <path[,readonly][,direct]>',
      'a raw disk image as virtio-blk (/dev/vda, vdb, ... in order); direct: O_DIRECT, bypassing the host page cache; repeatable',
      collect,
      [],
    )
    .option('--console <kind>', 'the terminal console: serial (ttyS0) or virtio (hvc0)', 'serial')
    .option(
      '--net <mode>',
      'virtio-net: user (passt NAT), tap:NAME or none (default: user if passt is installed)',
    )
    .option(
      '--forward <[tcp|udp:][addr:]host:guest>',
      'with --net user: a host port to a guest port; repeatable',
      collect,
      [],
    )
    .addHelpText(
      'after',
      '\nWith no --kernel, boots the built-in default guest (a small Linux with a busybox shell).\n' +
        'Exit status: 0 when the guest powers off, 1 when the VM fails, 2 for bad arguments.',
    )
    .action(async (flags: RunFlags) => {
      const config = await resolveConfig(flags);
      process.exitCode = await runInForeground(config);
    });
}

function checkReadableFile(what: string, path: string): void {
  try {
    accessSync(path, constants.R_OK);
    if (!statSync(path).isFile()) throw usageError(`${what} '${path}' is not a regular file`);
  } catch (error) {
    if (error instanceof CliError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
    throw usageError(`cannot read ${what} '${path}': ${code}`);
  }
}

/**
 * `PATH[,readonly][,direct]` (`ro` for readonly; the options in any order): the image must exist,
 * and be writable unless read-only. `direct` opens it with O_DIRECT (QEMU's cache=none).
 */
export function parseDisk(spec: string): { path: string; readOnly: boolean; direct: boolean } {
  const parts = spec.split(',');
  let readOnly = false;
  let direct = false;
  while (parts.length > 1 && ['readonly', 'ro', 'direct'].includes(parts.at(-1)!)) {
    const option = parts.pop()!;
    if (option === 'direct') direct = true;
    else readOnly = true;
  }
  const path = parts.join(',');
  if (path === '') throw usageError(`--disk '${spec}': no image path`);
  try {
    accessSync(path, readOnly ? constants.R_OK : constants.R_OK | constants.W_OK);
    if (!statSync(path).isFile()) throw usageError(`--disk '${path}' is not a regular file`);
  } catch (error) {
    if (error instanceof CliError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
    throw usageError(`--disk: cannot ${readOnly ? 'read' : 'read and write'} '${path}': ${code}`);
  }
  return { path, readOnly, direct };
}

function parseCpus(text: string): number {
  if (!/^\d+$/.test(text)) throw usageError(`--cpus: '${text}' is not a whole number`);
  return Number(text);
}

export async function resolveConfig(flags: RunFlags): Promise<MachineConfig> {
  let { kernel, initrd, append } = flags;
  if (kernel === undefined) {
    // Loaded only here: the manifest reader uses zod, which --kernel runs need not load.
    const { loadGuestMaterial } = await import('../../guest-material/index.js');
    const material = loadGuestMaterial();
    if (!material) throw new CliError('the built-in default guest is not built yet: run scripts/setup first');
    kernel = material.defaultGuest.kernel;
    initrd ??= material.defaultGuest.initrd;
    append ??= flags.console === 'virtio' ? DEFAULT_GUEST_CMDLINE_VIRTIO_CONSOLE : DEFAULT_GUEST_CMDLINE;
  }
  checkReadableFile('kernel', kernel);
  if (initrd !== undefined) checkReadableFile('initrd', initrd);

  const disks = (flags.disk ?? []).map(parseDisk);
  if (flags.console !== 'serial' && flags.console !== 'virtio') {
    throw usageError(`--console: '${flags.console}' is not serial or virtio`);
  }

  let memoryBytes: number;
  try {
    memoryBytes = parseSize(flags.memory);
  } catch (error) {
    throw usageError(`--memory: ${(error as Error).message}`);
  }
  if (memoryBytes > totalmem()) {
    throw usageError(
      `--memory ${flags.memory} is more than this host has (${formatSize(totalmem())} in all)`,
    );
  }

  const parsed = MachineConfig.safeParse({
    network: await resolveNetwork(flags),
    kernel,
    initrd,
    cmdline: append ?? '',
    memoryBytes,
    cpus: parseCpus(flags.cpus),
    cpuProfile: flags.cpuProfile,
    disks,
    console: flags.console,
  });
  if (!parsed.success) throw usageError(describeIssues(parsed.error));
  return parsed.data;
}

/** --net and --forward: user networking by default where passt is installed. */
async function resolveNetwork(flags: RunFlags): Promise<Network> {
  const forwardFlags = flags.forward ?? [];
  // Nothing to parse: the parsers' schemas (zod) and passt's module stay unloaded at start-up.
  if (flags.net === 'none' && forwardFlags.length === 0) return { mode: 'none' };
  const [{ parseNetworkMode, parsePortForward }, { findPasst }] = await Promise.all([
    import('../../net/config.js'),
    import('../../net/passt.js'),
  ]);
  let mode: ReturnType<typeof parseNetworkMode>;
  try {
    mode = parseNetworkMode(flags.net ?? (findPasst() ? 'user' : 'none'));
  } catch (error) {
    throw usageError(`--net ${(error as Error).message}`);
  }
  const forwards = forwardFlags.map((text) => {
    try {
      return parsePortForward(text);
    } catch (error) {
      throw usageError(`--forward ${(error as Error).message}`);
    }
  });
  if (mode === 'user') return { mode, forwards };
  if (forwards.length > 0) throw usageError('--forward needs --net user (passt does the forwarding)');
  return mode === 'none' ? { mode } : { mode: 'tap', tap: mode.tap };
}

function describeExit(exit: MachineExit): { code: number; message?: string } {
  switch (exit.reason) {
    case 'poweroff':
      return { code: ExitCode.ok };
    case 'reset':
      return { code: ExitCode.ok, message: 'the guest reset itself; the VM has stopped' };
    case 'stopped':
      return { code: ExitCode.ok, message: 'VM stopped from the console' };
    case 'error':
      return { code: ExitCode.failure, message: `VM failed: ${exit.message}` };
  }
}

async function runInForeground(config: MachineConfig): Promise<number> {
  let machine: Machine;
  try {
    machine = await Machine.create(config, {
      onConsoleOutput: writeStdout,
      log: (line) => writeStderr(`vireo: ${line}\n`),
    });
  } catch (error) {
    if (error instanceof MachineInputError) throw usageError(error.message);
    throw error;
  }

  // The guest starts first: run() enters it on this thread and returns once vCPU 0's worker has
  // taken over (vcpu-set.ts). The terminal is attached a turn of the event loop later, unless the
  // VM ended by then: creating process.stdin costs a few milliseconds a VM that is over need not wait.
  const running = machine.run();
  let ended = false;
  void running.finally(() => {
    ended = true;
  });
  const message = (text: string) => writeStdout(Buffer.from(text));
  let terminal: TerminalAttachment | undefined;
  const attach = setImmediate(() => {
    if (ended) return;
    terminal = attachTerminal({
      input: process.stdin,
      onInput: (bytes) => machine.sendConsoleInput(bytes),
      onCommand: (command) => {
        if (command === 'quit') void machine.stop();
        else if (command === 'power-button') machine.pressPowerButton();
        else if (command === 'break' && !machine.sendConsoleBreak()) {
          message('\r\nvireo: the virtio console has no break; use --console serial\r\n');
        }
      },
      showMessage: message,
    });
  });
  try {
    const exit = await running;
    const { code, message } = describeExit(exit);
    if (message) writeStderr(`\r\nvireo: ${message}\n`);
    return code;
  } finally {
    clearImmediate(attach);
    terminal?.detach();
  }
}
