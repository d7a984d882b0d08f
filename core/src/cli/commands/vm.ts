// The VM library commands, thin clients of the daemon's API:
// vireo list | create | start | stop | pause | resume | reset | inspect | edit | delete.

import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import type { BootSource, Disk, MethodParams, NewDisk, VmChanges, VmInfo } from '../../api/schema.js';
import { formatSize, parseSize } from '../../api/size.js';
import { CONSOLE_KINDS } from '../../machine/config.js';
import { type PortForward, parseNetworkMode, parsePortForward } from '../../net/config.js';
import { usageError } from '../errors.js';
import { createProgressDisplay, progressStyle } from '../progress.js';
import {
  describeBoot,
  describeStatus,
  describeVm,
  EXIT_CODES_HELP,
  formatTable,
  type JsonFlag,
  printJson,
  withDaemon,
} from './vm-client.js';

interface SettingsFlags extends JsonFlag {
  name?: string;
  cpus?: string;
  memory?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  defaultGuest?: boolean;
  cpuProfile?: string;
  disk?: string[];
  network?: string;
  mac?: string;
  forward?: string[];
  display?: string;
  console?: string;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function addSettingsOptions(command: Command): Command {
  return command
    .option('--cpus <n>', 'number of virtual CPUs')
    .option('--memory <size>', 'guest memory, e.g. 512M or 2G')
    .option('--kernel <path>', 'boot this kernel (bzImage or PVH vmlinux) instead of the built-in guest')
    .option('--initrd <path>', 'initial ramdisk (with --kernel)')
    .option('--append <args>', "kernel command line (with --kernel), or added to the built-in guest's")
    .addOption(
      new Option('--cpu-profile <name>', 'CPUID profile').choices(['auto', 'host', 'emulation-safe']),
    )
    .option(
      '--disk <path[:ro][:qcow2][:direct]>',
      'a disk image as virtio-blk (/dev/vda, vdb, ... in order; raw only so far); direct: O_DIRECT, bypassing the host page cache; repeatable',
      collect,
    )
    .option('--network <mode>', 'none, user (passt) or tap:<ifname>')
    .option('--mac <address>', 'the network card MAC address')
    .option(
      '--forward <[tcp|udp:][addr:]host:guest>',
      'with --network user: a host port to a guest port (on 127.0.0.1 unless an address is given); repeatable, replaces the list',
      collect,
    )
    .addOption(
      new Option(
        '--console <kind>',
        'the console `vireo console` attaches to: serial (ttyS0) or virtio (hvc0)',
      ).choices(CONSOLE_KINDS),
    )
    .option('--display <WxH|none>', 'framebuffer size, or none (kept in the spec; no display yet)')
    .option('--json', 'print the result as JSON');
}

function parseCpus(text: string): number {
  if (!/^\d+$/.test(text)) throw usageError(`--cpus: '${text}' is not a whole number`);
  return Number(text);
}

function parseDisk(text: string): Disk {
  const [path, ...flags] = text.split(':');
  if (!path) throw usageError(`--disk '${text}': no path`);
  let readonly = false;
  let format: Disk['format'] = 'raw';
  let direct = false;
  for (const flag of flags) {
    if (flag === 'ro') readonly = true;
    else if (flag === 'rw') readonly = false;
    else if (flag === 'raw' || flag === 'qcow2') format = flag;
    else if (flag === 'direct') direct = true;
    else throw usageError(`--disk '${text}': unknown flag '${flag}' (ro, rw, raw, qcow2, direct)`);
  }
  return { path: resolve(path), readonly, format, direct };
}

interface CreateDiskFlags {
  diskFrom?: string[];
  newDisk?: string[];
}

/** The disks `vireo create` asks the library to make: copies first, then blank ones. */
export function newDisksFromFlags(flags: CreateDiskFlags): NewDisk[] {
  const copies = (flags.diskFrom ?? []).map((path): NewDisk => ({ create: { from: resolve(path) } }));
  const blanks = (flags.newDisk ?? []).map((text): NewDisk => {
    try {
      return { create: { sizeBytes: parseSize(text) } };
    } catch (error) {
      throw usageError(`--new-disk: ${(error as Error).message}`);
    }
  });
  return [...copies, ...blanks];
}

function parseNetwork(
  text: string,
  mac: string | undefined,
  forwards: PortForward[] | undefined,
): NonNullable<VmChanges['network']> {
  let mode: ReturnType<typeof parseNetworkMode>;
  try {
    mode = parseNetworkMode(text);
  } catch (error) {
    throw usageError(`--network ${(error as Error).message}`);
  }
  if (forwards && mode !== 'user')
    throw usageError('--forward needs --network user (passt does the forwarding)');
  if (mode === 'none') return { mode };
  const extra = { ...(mac ? { mac } : {}) };
  return mode === 'user'
    ? { mode, ...extra, ...(forwards ? { forwards } : {}) }
    : { mode: 'tap', tap: mode.tap, ...extra };
}

function parseForwards(texts: string[] | undefined): PortForward[] | undefined {
  return texts?.map((text) => {
    try {
      return parsePortForward(text);
    } catch (error) {
      throw usageError(`--forward ${(error as Error).message}`);
    }
  });
}

function parseDisplay(text: string): { enabled: boolean; width: number; height: number } {
  if (text === 'none') return { enabled: false, width: 1024, height: 768 };
  const match = /^(\d+)x(\d+)$/.exec(text);
  if (!match) throw usageError(`--display '${text}': use WIDTHxHEIGHT or none`);
  return { enabled: true, width: Number(match[1]), height: Number(match[2]) };
}

/** The settings the flags name; only what was given. */
export function settingsFromFlags(flags: SettingsFlags, current?: VmInfo): VmChanges {
  const changes: VmChanges = {};
  if (flags.name !== undefined) changes.name = flags.name;
  if (flags.cpus !== undefined) changes.cpus = parseCpus(flags.cpus);
  if (flags.memory !== undefined) {
    try {
      changes.memoryBytes = parseSize(flags.memory);
    } catch (error) {
      throw usageError(`--memory: ${(error as Error).message}`);
    }
  }
  if (flags.cpuProfile !== undefined) changes.cpuProfile = flags.cpuProfile as VmChanges['cpuProfile'];
  if (flags.defaultGuest && (flags.kernel || flags.initrd)) {
    throw usageError('--default-guest cannot be combined with --kernel or --initrd');
  }
  if (flags.defaultGuest) changes.boot = { kind: 'default' };
  const currentBoot: BootSource | undefined = current?.spec.boot;
  if (flags.kernel !== undefined) {
    changes.boot = {
      kind: 'kernel',
      kernel: resolve(flags.kernel),
      ...(flags.initrd !== undefined ? { initrd: resolve(flags.initrd) } : {}),
      cmdline: flags.append ?? '',
    };
  } else if (flags.initrd !== undefined) {
    if (currentBoot?.kind !== 'kernel') throw usageError('--initrd needs --kernel');
    changes.boot = {
      ...currentBoot,
      initrd: resolve(flags.initrd),
      ...(flags.append !== undefined ? { cmdline: flags.append } : {}),
    };
  } else if (flags.append !== undefined) {
    // With the built-in guest the arguments are added to its own command line.
    changes.boot =
      currentBoot?.kind === 'kernel' && !flags.defaultGuest
        ? { ...currentBoot, cmdline: flags.append }
        : { kind: 'default', ...(flags.append ? { append: flags.append } : {}) };
  }
  if (flags.disk !== undefined) changes.disks = flags.disk.map(parseDisk);
  const forwards = parseForwards(flags.forward);
  if (flags.network !== undefined) changes.network = parseNetwork(flags.network, flags.mac, forwards);
  else if (flags.mac !== undefined || forwards) {
    const network = current?.spec.network;
    if (!network || network.mode === 'none') throw usageError('--mac needs --network user or tap:<ifname>');
    if (forwards && network.mode !== 'user') throw usageError('--forward needs --network user');
    changes.network = {
      ...network,
      ...(flags.mac !== undefined ? { mac: flags.mac } : {}),
      ...(forwards ? { forwards } : {}),
    };
  }
  if (flags.display !== undefined) changes.display = parseDisplay(flags.display);
  if (flags.console !== undefined) {
    const kind = flags.console as 'serial' | 'virtio';
    changes.console = current ? { ...current.spec.console, kind } : { kind };
  }
  return changes;
}

function printInfo(info: VmInfo, json: boolean | undefined, text: string): void {
  if (json) printJson(info);
  else process.stdout.write(`${text}\n`);
}

/** Edit the VM's settings as JSON in $VISUAL/$EDITOR; returns the changes, or undefined if none. */
function editInEditor(info: VmInfo): VmChanges | undefined {
  const { id: _id, version: _version, createdAt: _created, updatedAt: _updated, ...settings } = info.spec;
  const dir = mkdtempSync(join(tmpdir(), 'vireo-edit-'));
  const file = join(dir, `${info.spec.id}.json`);
  try {
    const before = `${JSON.stringify(settings, null, 2)}\n`;
    writeFileSync(file, before, { mode: 0o600 });
    const editor = process.env.VISUAL || process.env.EDITOR || 'vi';
    const result = spawnSync('/bin/sh', ['-c', `${editor} "$1"`, 'editor', file], { stdio: 'inherit' });
    if (result.status !== 0) throw usageError(`the editor (${editor}) failed; nothing changed`);
    const after = readFileSync(file, 'utf8');
    if (after === before) return undefined;
    try {
      return JSON.parse(after) as VmChanges;
    } catch (error) {
      throw usageError(`the edited settings are not JSON (${(error as Error).message}); nothing changed`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function registerVmCommands(program: Command): void {
  program
    .command('list')
    .alias('ls')
    .description('list the VMs in the library with their state')
    .option('--json', 'print the list as JSON')
    .addHelpText('after', EXIT_CODES_HELP)
    .action(async (flags: JsonFlag) => {
      await withDaemon(flags.json, async (client) => {
        const { vms, invalid } = await client.call('vm.list', {});
        if (flags.json) {
          printJson({ vms, invalid });
          return;
        }
        if (vms.length === 0 && invalid.length === 0) {
          process.stdout.write('no VMs yet: create one with `vireo create <name>`\n');
          return;
        }
        const rows = [['NAME', 'ID', 'STATE', 'CPUS', 'MEMORY', 'BOOT']];
        for (const vm of vms) {
          rows.push([
            vm.spec.name,
            vm.spec.id,
            vm.status.state,
            String(vm.spec.cpus),
            formatSize(vm.spec.memoryBytes),
            describeBoot(vm),
          ]);
        }
        if (vms.length > 0) process.stdout.write(`${formatTable(rows)}\n`);
        for (const bad of invalid) {
          process.stderr.write(
            `vireo: ${bad.file} is invalid and was left alone:\n${bad.issues
              .map((issue) => `  ${issue.path}: ${issue.message}`)
              .join('\n')}\n`,
          );
        }
      });
    });

  addSettingsOptions(
    program
      .command('create')
      .argument('<name>', 'a name for the VM')
      .description('define a new VM in the library (the built-in guest unless --kernel is given)')
      .option(
        '--disk-from <image>',
        "a copy of this raw image as a disk in the VM's folder (sparse, or a reflink); repeatable",
        collect,
      )
      .option('--new-disk <size>', "a blank raw disk of this size in the VM's folder; repeatable", collect)
      .option('--start', 'start it right away'),
  )
    .addHelpText(
      'after',
      `${EXIT_CODES_HELP}\nDisks are attached in this order: --disk-from, --new-disk, --disk.\n` +
        'Examples: vireo create web --cpus 2 --memory 1G\n' +
        '          vireo create db --disk-from ~/images/debian.raw --new-disk 20G',
    )
    .action(async (name: string, flags: SettingsFlags & CreateDiskFlags & { start?: boolean }) => {
      const settings = settingsFromFlags(flags);
      const disks = [...newDisksFromFlags(flags), ...(settings.disks ?? [])];
      await withDaemon(flags.json, async (client) => {
        const copies = flags.diskFrom?.length ?? 0;
        const progressToken = copies > 0 ? randomUUID() : undefined;
        if (progressToken) {
          const display = createProgressDisplay(
            copies === 1 ? `copying ${basename(flags.diskFrom![0]!)}` : `copying ${copies} images`,
            progressStyle(flags.json, process.stderr),
          );
          client.on('event', (event) => {
            if (event.kind !== 'progress' || event.token !== progressToken) return;
            display.update(event.done, event.total);
            if (event.done >= event.total) display.finish();
          });
          await client.call('events.subscribe', {});
        }
        let info = await client.call('vm.create', {
          ...settings,
          disks,
          name,
          progressToken,
        } as MethodParams<'vm.create'>);
        if (flags.start) info = await client.call('vm.start', { vm: info.spec.id });
        printInfo(
          info,
          flags.json,
          `created ${info.spec.name} (id ${info.spec.id})${flags.start ? ', running' : ''}`,
        );
      });
    });

  program
    .command('start')
    .argument('<vm>', 'VM name or id')
    .description('start a VM in the background (see `vireo console` for its serial console)')
    .option('--json', 'print the VM as JSON')
    .addHelpText('after', EXIT_CODES_HELP)
    .action(async (vm: string, flags: JsonFlag) => {
      await withDaemon(flags.json, async (client) => {
        const info = await client.call('vm.start', { vm });
        printInfo(info, flags.json, `${info.spec.name}: ${describeStatus(info)}`);
      });
    });

  program
    .command('stop')
    .argument('<vm>', 'VM name or id')
    .description('ask the guest to shut down (ACPI power button), forcing it off after a timeout')
    .option('--force', 'switch it off at once, without asking the guest')
    .option('--timeout <seconds>', 'how long the guest gets before it is forced off', '30')
    .option('--json', 'print the VM as JSON')
    .addHelpText('after', EXIT_CODES_HELP)
    .action(async (vm: string, flags: JsonFlag & { force?: boolean; timeout: string }) => {
      const seconds = Number(flags.timeout);
      if (!Number.isFinite(seconds) || seconds < 0 || seconds > 3600) {
        throw usageError(`--timeout: '${flags.timeout}' is not a number of seconds from 0 to 3600`);
      }
      await withDaemon(flags.json, async (client) => {
        const info = await client.call('vm.stop', {
          vm,
          force: flags.force === true,
          timeoutMs: Math.round(seconds * 1000),
        });
        printInfo(info, flags.json, `${info.spec.name}: ${describeStatus(info)}`);
      });
    });

  for (const [name, method, description] of [
    ['pause', 'vm.pause', 'pause a running VM (its vCPUs stop; memory is kept)'],
    ['resume', 'vm.resume', 'resume a paused VM'],
    ['reset', 'vm.reset', 'reset a running or paused VM: it reboots at once, like the reset button'],
  ] as const) {
    program
      .command(name)
      .argument('<vm>', 'VM name or id')
      .description(description)
      .option('--json', 'print the VM as JSON')
      .addHelpText('after', EXIT_CODES_HELP)
      .action(async (vm: string, flags: JsonFlag) => {
        await withDaemon(flags.json, async (client) => {
          const info = await client.call(method, { vm });
          printInfo(info, flags.json, `${info.spec.name}: ${describeStatus(info)}`);
        });
      });
  }

  program
    .command('inspect')
    .argument('<vm>', 'VM name or id')
    .description("show a VM's settings and state (with the last console lines after a crash)")
    .option('--json', 'print the spec and status as JSON')
    .addHelpText('after', EXIT_CODES_HELP)
    .action(async (vm: string, flags: JsonFlag) => {
      await withDaemon(flags.json, async (client) => {
        const info = await client.call('vm.get', { vm });
        printInfo(info, flags.json, describeVm(info));
      });
    });

  addSettingsOptions(
    program
      .command('edit')
      .argument('<vm>', 'VM name or id')
      .description("change a VM's settings; with no options, edit them as JSON in $EDITOR")
      .option('--name <name>', 'rename the VM')
      .option('--default-guest', 'boot the built-in guest again'),
  )
    .addHelpText('after', `${EXIT_CODES_HELP}\nChanges apply at the next start.`)
    .action(async (vm: string, flags: SettingsFlags) => {
      await withDaemon(flags.json, async (client) => {
        const current = await client.call('vm.get', { vm });
        let changes = settingsFromFlags(flags, current);
        if (Object.keys(changes).length === 0) {
          const edited = editInEditor(current);
          if (!edited) {
            printInfo(current, flags.json, 'nothing changed');
            return;
          }
          changes = edited;
        }
        const info = await client.call('vm.update', { vm: current.spec.id, changes });
        printInfo(info, flags.json, `updated ${info.spec.name}`);
      });
    });

  program
    .command('delete')
    .alias('rm')
    .argument('<vm>', 'VM name or id')
    .description('remove a stopped VM and its folder from the library')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', EXIT_CODES_HELP)
    .action(async (vm: string, flags: JsonFlag) => {
      await withDaemon(flags.json, async (client) => {
        const result = await client.call('vm.delete', { vm });
        if (flags.json) printJson(result);
        else process.stdout.write(`deleted ${result.id}\n`);
      });
    });
}
