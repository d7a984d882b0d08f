// The control plane's own costs, through a real daemon process and its Unix socket:
//  - API round trips per second for vm.list with 100 VMs defined (one client waiting for each
//    answer, and 8 clients at once), beside daemon.info (the same trip with no work behind it);
//  - the time from vm.start to the VM running (VM host process up, Machine built, vCPUs started)
//    and to the guest's first console byte, with the fake machine and with the built-in guest;
//  - the time from `vireo start` (the CLI process spawned) to the guest's first instruction: a PVH
//    guest whose first instruction writes a byte to COM1, beside QEMU (Debian's, KVM) booting the
//    same ELF from its spawn to that byte on its serial line.
// Run: node dist/bench/api-roundtrip.js [--seconds N] [--no-kvm]

import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ApiClient } from '../core/src/api/client.js';
import { startTestDaemon, type TestDaemon } from '../core/src/daemon/test-daemon.js';
import { loadGuestMaterial } from '../core/src/guest-material/index.js';
import { buildPvhGuest, HALT_FOREVER, serialWrite } from '../tests/support/pvh-guest.js';
import { kvmAvailable } from '../tests/support/tags.js';
import { VIREO_BIN } from '../tests/support/vireo-process.js';
import { median, printFigure } from './lib/report.js';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '3' }, 'no-kvm': { type: 'boolean', default: false } },
});
const seconds = Number(values.seconds);

async function roundTripsPerSecond(clients: ApiClient[], call: (client: ApiClient) => Promise<unknown>) {
  // Warm up both ends (JIT, caches) before counting.
  const warmEnd = Date.now() + 300;
  while (Date.now() < warmEnd) await call(clients[0]!);
  let count = 0;
  const end = Date.now() + seconds * 1000;
  const began = process.hrtime.bigint();
  await Promise.all(
    clients.map(async (client) => {
      while (Date.now() < end) {
        await call(client);
        count++;
      }
    }),
  );
  const elapsed = Number(process.hrtime.bigint() - began) / 1e9;
  return count / elapsed;
}

async function startTimes(
  daemon: TestDaemon,
  client: ApiClient,
  name: string,
  create: Parameters<ApiClient['call']>[1],
  runs: number,
  firstByteTimeoutMs: number,
): Promise<{ running: number | string; firstByte: number | string }> {
  await client.call('vm.create', create as never);
  const toRunning: number[] = [];
  const toFirstByte: number[] = [];
  for (let run = 0; run < runs; run++) {
    let firstByteAt: number | undefined;
    const onOutput = (note: { vm: string }) => {
      if (note.vm === name && firstByteAt === undefined) firstByteAt = performance.now();
    };
    client.on('console.output', onOutput);
    await client.call('console.attach', { vm: name, history: false });
    const began = performance.now();
    try {
      await client.call('vm.start', { vm: name });
    } catch (error) {
      client.off('console.output', onOutput);
      return { running: (error as Error).message, firstByte: 'the VM did not start' };
    }
    toRunning.push(performance.now() - began);
    const deadline = Date.now() + firstByteTimeoutMs;
    while (firstByteAt === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    if (firstByteAt !== undefined) toFirstByte.push(firstByteAt - began);
    client.off('console.output', onOutput);
    await client.call('vm.stop', { vm: name, force: true });
  }
  void daemon;
  return {
    running: median(toRunning),
    firstByte:
      toFirstByte.length > 0
        ? median(toFirstByte)
        : `no console output within ${firstByteTimeoutMs / 1000} s`,
  };
}

/** Spawns `command` and resolves with the ms until `firstByte()` says the guest spoke; then kills it. */
async function spawnToFirstByte(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; stdoutIsGuest: boolean },
  firstByte: () => number | undefined,
): Promise<number> {
  const began = performance.now();
  let guestAt: number | undefined;
  const child = spawn(command, args, { env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (options.stdoutIsGuest) {
    child.stdout.once('data', () => {
      guestAt = performance.now();
    });
  }
  const deadline = Date.now() + 30_000;
  for (;;) {
    guestAt ??= firstByte();
    if (guestAt !== undefined) break;
    if (Date.now() > deadline) throw new Error(`${command}: no guest output within 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  if (options.stdoutIsGuest) child.kill('SIGKILL');
  await exited;
  return guestAt - began;
}

/**
 * `vireo start` -> the guest's first instruction (its `out` to COM1 reaching an attached console
 * client), and QEMU's spawn -> the same guest's first byte on its serial line.
 */
async function firstInstructionRows(daemon: TestDaemon, client: ApiClient, runs: number) {
  const kernel = buildPvhGuest(daemon.root, 'first-instruction', `${serialWrite('!')}\n${HALT_FOREVER}`);
  await client.call('vm.create', {
    name: 'first',
    memoryBytes: 64 * 1024 * 1024,
    boot: { kind: 'kernel', kernel, cmdline: '' },
  });
  let firstByteAt: number | undefined;
  client.on('console.output', (note) => {
    if (note.vm === 'first') firstByteAt ??= performance.now();
  });
  const vireo: number[] = [];
  const qemu: number[] = [];
  for (let run = 0; run < runs; run++) {
    await client.call('console.attach', { vm: 'first', history: false });
    firstByteAt = undefined;
    vireo.push(
      await spawnToFirstByte(
        process.execPath,
        [VIREO_BIN, 'start', 'first'],
        { env: daemon.env, stdoutIsGuest: false },
        () => firstByteAt,
      ),
    );
    await client.call('vm.stop', { vm: 'first', force: true });
    qemu.push(
      await spawnToFirstByte(
        'qemu-system-x86_64',
        ['-machine', 'pc,accel=kvm', '-cpu', 'host', '-m', '64', '-nodefaults', '-display', 'none'].concat([
          '-serial',
          'stdio',
          '-kernel',
          kernel,
        ]),
        { stdoutIsGuest: true },
        () => undefined,
      ).catch(() => Number.NaN),
    );
  }
  const qemuValue = qemu.every(Number.isNaN)
    ? 'QEMU did not run'
    : median(qemu.filter((v) => !Number.isNaN(v)));
  return [
    { name: 'QEMU (KVM): spawn -> first instruction (PVH guest)', value: qemuValue },
    { name: 'vireo start -> first instruction (PVH guest)', value: median(vireo) },
  ];
}

async function main(): Promise<void> {
  const daemon = await startTestDaemon({ fakeMachine: true });
  try {
    const client = await daemon.client();
    for (let i = 0; i < 100; i++)
      await client.call('vm.create', { name: `bench-${String(i).padStart(3, '0')}` });
    const listed = await client.call('vm.list', {});
    if (listed.vms.length !== 100) throw new Error(`expected 100 VMs, listed ${listed.vms.length}`);
    const listBytes = JSON.stringify(listed).length;

    const many = await Promise.all(Array.from({ length: 8 }, () => daemon.client()));
    const rows = [
      {
        name: 'daemon.info, 1 client',
        value: await roundTripsPerSecond([client], (c) => c.call('daemon.info', {})),
      },
      {
        name: 'vm.list (100 VMs), 1 client',
        value: await roundTripsPerSecond([client], (c) => c.call('vm.list', {})),
      },
      {
        name: 'vm.get, 1 client',
        value: await roundTripsPerSecond([client], (c) => c.call('vm.get', { vm: 'bench-050' })),
      },
      {
        name: 'vm.list (100 VMs), 8 clients',
        value: await roundTripsPerSecond(many, (c) => c.call('vm.list', {})),
      },
    ];
    printFigure(
      {
        title: `API round trips over the Unix socket (vm.list answer: ${(listBytes / 1024).toFixed(0)} KiB)`,
        unit: 'round trips/s',
        baseline: 'daemon.info, 1 client',
        better: 'higher',
        digits: 0,
      },
      rows,
    );

    const kernel = join(daemon.root, 'fake-kernel');
    writeFileSync(kernel, 'fake');
    const fake = await startTimes(
      daemon,
      client,
      'fake',
      { name: 'fake', boot: { kind: 'kernel', kernel, cmdline: '' } },
      5,
      5000,
    );
    const startRows = [
      { name: 'fake machine: vm.start -> running', value: fake.running },
      { name: 'fake machine: vm.start -> first console byte', value: fake.firstByte },
    ];
    await daemon.stop();

    if (!values['no-kvm']) {
      const real = await startTestDaemon({ root: daemon.root });
      try {
        const realClient = await real.client();
        let running: number | string = 'needs /dev/kvm';
        let firstByte: number | string = 'needs /dev/kvm';
        if (kvmAvailable() && loadGuestMaterial()) {
          ({ running, firstByte } = await startTimes(
            real,
            realClient,
            'guest',
            { name: 'guest', memoryBytes: 256 * 1024 * 1024, boot: { kind: 'default' } },
            3,
            60_000,
          ));
        } else if (kvmAvailable()) {
          running = firstByte = 'guest material not built (scripts/setup)';
        }
        startRows.push(
          { name: 'built-in guest: vm.start -> running (vCPUs started)', value: running },
          { name: 'built-in guest: vm.start -> first console byte', value: firstByte },
        );
        if (kvmAvailable()) {
          printFigure(
            {
              title: "`vireo start` to the guest's first instruction (median of 5)",
              unit: 'ms',
              baseline: 'QEMU (KVM): spawn -> first instruction (PVH guest)',
              better: 'lower',
            },
            await firstInstructionRows(real, realClient, 5),
          );
        }
      } finally {
        await real.stop();
      }
    }
    printFigure(
      {
        title: 'vm.start latency (median)',
        unit: 'ms',
        baseline: 'fake machine: vm.start -> running',
        better: 'lower',
      },
      startRows,
    );
  } finally {
    await daemon.cleanup();
  }
}

await main();
process.exit(0);
