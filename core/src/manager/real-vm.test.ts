// The supervisor and the CLI with real VMs on /dev/kvm (the built-in guest: small kernel and
// busybox initramfs). The kvm test only needs the guest to start printing; the boot test drives a
// whole Linux session through `vireo console`, which takes minutes on an emulating host.

import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import {
  constants,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe } from 'node:test';
import { guestMaterial, materialSkipReason } from '../../../tests/support/material.js';
import {
  bootCounterGuest,
  buildPvhGuest,
  countingGuest,
  HALT_FOREVER,
  I8042_RESET,
} from '../../../tests/support/pvh-guest.js';
import { bootTest, guestUserspaceSkipReason, kvmTest } from '../../../tests/support/tags.js';
import { VIREO_BIN } from '../../../tests/support/vireo-process.js';
import type { ApiClient } from '../api/client.js';
import type { VmEvent, VmStatus } from '../api/schema.js';
import { startTestDaemon } from '../daemon/test-daemon.js';

const MINUTE = 60_000;
const { O_DIRECT } = constants;

async function waitForState(client: ApiClient, vm: string, states: VmStatus['state'][], ms: number) {
  const deadline = Date.now() + ms;
  for (;;) {
    const info = await client.call('vm.get', { vm });
    if (states.includes(info.status.state)) return info;
    if (Date.now() > deadline) assert.fail(`VM ${vm} stayed ${info.status.state}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('real VMs under the supervisor', { skip: materialSkipReason() }, () => {
  kvmTest(
    'kill -9 of a real VM host: crashed with its console lines; the other VM and the daemon go on',
    async () => {
      let daemon = await startTestDaemon();
      try {
        let client = await daemon.client();
        const consoles: Record<string, string> = { one: '', two: '' };
        client.on('console.output', (note) => {
          consoles[note.vm] += Buffer.from(note.data, 'base64').toString('latin1');
        });
        await client.call('vm.create', { name: 'one', memoryBytes: 128 * 1024 * 1024 });
        await client.call('vm.create', { name: 'two', memoryBytes: 128 * 1024 * 1024 });
        await client.call('console.attach', { vm: 'one' });
        await client.call('console.attach', { vm: 'two' });
        const one = await client.call('vm.start', { vm: 'one' });
        await client.call('vm.start', { vm: 'two' });
        assert.equal(one.status.state, 'running');

        // Wait until both guest kernels have said something: a console tail to keep, a history to replay.
        const deadline = Date.now() + 4 * MINUTE;
        const printed = () => /\n/.test(consoles.one!) && /\n/.test(consoles.two!);
        while (!printed() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
        assert.ok(printed(), 'both guests printed on their serial consoles');

        process.kill(one.status.pid!, 'SIGKILL');
        const crashed = await waitForState(client, 'one', ['crashed'], 10_000);
        assert.match(crashed.status.lastExit?.message ?? '', /SIGKILL/);
        assert.ok((crashed.status.lastExit?.consoleTail ?? '').length > 0, 'the last console lines are kept');
        const two = await client.call('vm.get', { vm: 'two' });
        assert.equal(two.status.state, 'running');
        assert.equal((await client.call('vm.list', {})).vms.length, 2, 'the daemon still serves');

        assert.equal((await client.call('vm.pause', { vm: 'two' })).status.state, 'paused');
        assert.equal((await client.call('vm.resume', { vm: 'two' })).status.state, 'running');

        // The daemon dies; a new one reattaches to the running VM and its console.
        await daemon.kill();
        daemon = await daemon.restart();
        client = await daemon.client();
        const reattached = await client.call('vm.get', { vm: 'two' });
        assert.equal(reattached.status.state, 'running');
        assert.equal(reattached.status.pid, two.status.pid);
        assert.equal((await client.call('vm.get', { vm: 'one' })).status.state, 'crashed');
        const attached = await client.call('console.attach', { vm: 'two' });
        assert.ok(attached.history.length > 0, 'the host kept the console history');

        const stopped = await client.call('vm.stop', { vm: 'two', force: true });
        assert.equal(stopped.status.state, 'stopped');
      } finally {
        await daemon.cleanup();
      }
    },
    { timeout: 6 * MINUTE },
  );
});

describe('pause, resume and reset of real VMs under the daemon', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vireo-real-vm-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  kvmTest(
    'a counting guest: nothing while paused, the count goes on after resume, starts over after reset',
    async () => {
      const daemon = await startTestDaemon();
      try {
        const client = await daemon.client();
        const kernel = buildPvhGuest(dir, 'counter', countingGuest());
        await client.call('vm.create', {
          name: 'counter',
          memoryBytes: 64 * 1024 * 1024,
          boot: { kind: 'kernel', kernel, cmdline: '' },
        });
        let console = '';
        const events: VmEvent[] = [];
        client.on('console.output', (note) => {
          console += Buffer.from(note.data, 'base64').toString('latin1');
        });
        client.on('event', (event) => events.push(event));
        await client.call('events.subscribe', {});
        await client.call('console.attach', { vm: 'counter', history: false });
        const ticks = (text = console) =>
          [...text.matchAll(/tick ([0-9a-f]{8})\n/g)].map((match) => Number.parseInt(match[1]!, 16));
        const waitFor = async (check: () => boolean, what: string) => {
          const deadline = Date.now() + 30_000;
          while (!check()) {
            if (Date.now() > deadline) assert.fail(`${what}; console:\n${console.slice(-2000)}`);
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
        };
        const started = await client.call('vm.start', { vm: 'counter' });
        await waitFor(() => ticks().length >= 3, 'the guest counted');
        const began = performance.now();
        const before = ticks().length;
        await waitFor(() => ticks().length >= before + 2, 'two more ticks');
        const tickMs = (performance.now() - began) / 2;

        assert.equal((await client.call('vm.pause', { vm: 'counter' })).status.state, 'paused');
        // Output the host sent before it parked the vCPUs may still be on its way here.
        await new Promise((resolve) => setTimeout(resolve, 100));
        const atPause = console;
        await new Promise((resolve) => setTimeout(resolve, Math.max(300, tickMs * 5)));
        assert.equal(console, atPause, 'nothing was printed while paused');
        assert.equal((await client.call('vm.resume', { vm: 'counter' })).status.state, 'running');
        await waitFor(() => ticks().length > ticks(atPause).length, 'ticks after resume');
        assert.equal(ticks()[ticks(atPause).length], ticks(atPause).at(-1)! + 1, 'the count went on');

        const beforeReset = console.length;
        const reset = await client.call('vm.reset', { vm: 'counter' });
        assert.equal(reset.status.state, 'running');
        assert.equal(reset.status.pid, started.status.pid, 'rebooted inside the same VM host');
        await waitFor(() => ticks(console.slice(beforeReset)).length >= 2, 'counting again after the reset');
        assert.deepEqual(ticks(console.slice(beforeReset)).slice(0, 2), [1, 2]);

        await client.call('vm.stop', { vm: 'counter', force: true });
        const states = events
          .filter((event) => event.kind === 'state' && event.vm === 'counter')
          .map((event) => (event.kind === 'state' ? event.status.state : ''));
        assert.deepEqual(
          states.filter((state, index) => state !== states[index - 1]),
          ['starting', 'running', 'paused', 'running', 'stopping', 'stopped'],
        );
        assert.deepEqual(
          events.filter((event) => event.kind === 'reset').map((event) => event.vm),
          ['counter'],
        );
      } finally {
        await daemon.cleanup();
      }
    },
    { timeout: 2 * MINUTE },
  );

  kvmTest('a guest that resets itself reboots in place, its RAM cleared each time', async () => {
    const daemon = await startTestDaemon();
    try {
      const client = await daemon.client();
      const kernel = buildPvhGuest(dir, 'self-reset', bootCounterGuest(`${I8042_RESET}\n${HALT_FOREVER}`));
      await client.call('vm.create', {
        name: 'looper',
        memoryBytes: 64 * 1024 * 1024,
        boot: { kind: 'kernel', kernel, cmdline: '' },
      });
      let resets = 0;
      client.on('event', (event) => {
        if (event.kind === 'reset') resets++;
      });
      await client.call('events.subscribe', {});
      await client.call('vm.start', { vm: 'looper' });
      const deadline = Date.now() + 30_000;
      while (resets < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.ok(resets >= 3, `${resets} reset events`);
      const info = await client.call('vm.get', { vm: 'looper' });
      assert.equal(info.status.state, 'running');
      const { history } = await client.call('console.attach', { vm: 'looper' });
      const boots =
        Buffer.from(history, 'base64')
          .toString('latin1')
          .match(/boot \d\n/g) ?? [];
      assert.ok(boots.length >= 3, `${boots.length} boots in the history`);
      assert.ok(
        boots.every((line) => line === 'boot 1\n'),
        'every boot found its RAM cleared',
      );
      await client.call('vm.stop', { vm: 'looper', force: true });
    } finally {
      await daemon.cleanup();
    }
  });

  kvmTest('a disk with direct: true is open with O_DIRECT in the VM host; one without is not', async () => {
    const daemon = await startTestDaemon();
    try {
      const client = await daemon.client();
      const kernel = buildPvhGuest(dir, 'direct-disks', countingGuest());
      const cached = join(dir, 'cached.raw');
      const direct = join(dir, 'direct.raw');
      for (const image of [cached, direct]) writeFileSync(image, Buffer.alloc(1024 * 1024));
      await client.call('vm.create', {
        name: 'direct-disks',
        memoryBytes: 64 * 1024 * 1024,
        boot: { kind: 'kernel', kernel, cmdline: '' },
        disks: [{ path: cached }, { path: direct, direct: true }],
      });
      const started = await client.call('vm.start', { vm: 'direct-disks' });
      assert.equal(started.status.state, 'running');
      assert.deepEqual(
        started.spec.disks.map((disk) => disk.direct),
        [false, true],
      );
      const flags = openFlags(started.status.pid!);
      assert.ok(
        flags.has(cached) && flags.has(direct),
        `the VM host has both images open: ${[...flags.keys()]}`,
      );
      assert.ok(
        flags.get(direct)!.some((f) => (f & O_DIRECT) !== 0),
        `${direct} open with O_DIRECT (flags ${flags.get(direct)!.map((f) => f.toString(8))})`,
      );
      assert.ok(
        flags.get(cached)!.every((f) => (f & O_DIRECT) === 0),
        `${cached} open through the page cache (flags ${flags.get(cached)!.map((f) => f.toString(8))})`,
      );
      await client.call('vm.stop', { vm: 'direct-disks', force: true });
    } finally {
      await daemon.cleanup();
    }
  });
});

/** Path -> the open flags (fdinfo `flags:`, octal) of each of the process's descriptors for it. */
function openFlags(pid: number): Map<string, number[]> {
  const byPath = new Map<string, number[]>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    let info: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue; // closed while we looked
    }
    const flags = Number.parseInt(/^flags:\s+([0-7]+)$/m.exec(info)?.[1] ?? '', 8);
    byPath.set(target, [...(byPath.get(target) ?? []), flags]);
  }
  return byPath;
}

/** `vireo console <vm>` as a child process, its output collected. */
function attachConsole(env: NodeJS.ProcessEnv, vm: string) {
  const child = spawn(process.execPath, [VIREO_BIN, 'console', vm], { env });
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk.toString('latin1');
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const waitFor = async (pattern: RegExp, ms: number) => {
    const deadline = Date.now() + ms;
    while (!pattern.test(output)) {
      if (Date.now() > deadline) assert.fail(`no ${pattern} in:\n${output.slice(-3000)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };
  return { child, exited, waitFor, output: () => output };
}

describe('a Linux kernel VM from the CLI', { skip: materialSkipReason() }, () => {
  // The kernel stays up without user space (none can run on emulating hosts): no init from the
  // initramfs (rdinit=/none) and a root device that never comes (rootwait). It is driven through
  // its serial console with magic SysRq: a BREAK (Ctrl-A b in `vireo console`), then a key.
  bootTest(
    'create with the built-in guest, start, SysRq through `vireo console`, detach, stop and delete',
    async () => {
      const daemon = await startTestDaemon();
      const vireo = (...args: string[]) =>
        spawnSync(process.execPath, [VIREO_BIN, ...args], { env: daemon.env, encoding: 'utf8' });
      let attached: ReturnType<typeof attachConsole> | undefined;
      try {
        const created = vireo(
          'create',
          'linux',
          '--cpus',
          '1',
          '--memory',
          '256M',
          '--append',
          'rdinit=/none root=/dev/vdz rootwait',
        );
        assert.equal(created.status, 0, created.stderr);
        const started = vireo('start', 'linux');
        assert.equal(started.status, 0, started.stderr);

        attached = attachConsole(daemon.env, 'linux');
        await attached.waitFor(/Command line: .*rdinit=\/none root=\/dev\/vdz rootwait/, 5 * MINUTE);
        await attached.waitFor(/Waiting for root device \/dev\/vdz/, 10 * MINUTE);
        attached.child.stdin.write('\x01bh');
        await attached.waitFor(/sysrq: HELP : /, 3 * MINUTE);

        // Detach: the VM keeps running.
        attached.child.stdin.write('\x01d');
        assert.equal(await attached.exited, 0);
        assert.match(attached.output(), /detached; linux keeps running/);
        assert.match(vireo('list').stdout, /linux +linux +running/);

        // The power button reaches the kernel's ACPI button driver, which only tells user space;
        // with none running the VM is forced off when the timeout ends.
        const stopped = vireo('stop', 'linux', '--timeout', '5', '--json');
        assert.equal(stopped.status, 0, stopped.stderr);
        const { status } = JSON.parse(stopped.stdout);
        assert.equal(status.state, 'stopped');
        assert.equal(status.lastExit.reason, 'stopped');

        assert.equal(vireo('delete', 'linux').status, 0);
        assert.equal(vireo('inspect', 'linux').status, 3);
      } finally {
        attached?.child.kill('SIGKILL');
        await daemon.cleanup();
      }
    },
    { timeout: 20 * MINUTE },
  );
});

describe('a Linux VM from the CLI', { skip: materialSkipReason() || guestUserspaceSkipReason() }, () => {
  bootTest(
    'create, start, drive a shell through `vireo console`, stop and delete',
    async () => {
      const daemon = await startTestDaemon();
      const vireo = (...args: string[]) =>
        spawnSync(process.execPath, [VIREO_BIN, ...args], { env: daemon.env, encoding: 'utf8' });
      let consoleChild: ChildProcessWithoutNullStreams | undefined;
      try {
        assert.ok(guestMaterial());
        assert.equal(vireo('create', 'linux', '--cpus', '1', '--memory', '256M').status, 0);
        const started = vireo('start', 'linux');
        assert.equal(started.status, 0, started.stderr);

        const child = spawn(process.execPath, [VIREO_BIN, 'console', 'linux'], { env: daemon.env });
        consoleChild = child;
        let output = '';
        child.stdout.on('data', (chunk: Buffer) => {
          output += chunk.toString('latin1');
        });
        child.stderr.on('data', (chunk: Buffer) => {
          output += chunk.toString('latin1');
        });
        const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
        const waitFor = async (pattern: RegExp, ms: number) => {
          const deadline = Date.now() + ms;
          while (!pattern.test(output)) {
            if (Date.now() > deadline) assert.fail(`no ${pattern} in:\n${output.slice(-3000)}`);
            await new Promise((resolve) => setTimeout(resolve, 200));
          }
        };
        await waitFor(/VIREO-INIT-READY/, 25 * MINUTE);
        await waitFor(/# $/m, 3 * MINUTE);
        child.stdin.write('echo vireo-$((6*7))\n');
        await waitFor(/vireo-42/, 3 * MINUTE);

        // Detach: the VM keeps running; attach again and see the earlier output replayed.
        child.stdin.write('\x01d');
        assert.equal(await exited, 0);
        assert.match(vireo('list').stdout, /linux +linux +running/);

        const again = spawn(process.execPath, [VIREO_BIN, 'console', 'linux'], { env: daemon.env });
        consoleChild = again;
        let replay = '';
        again.stdout.on('data', (chunk: Buffer) => {
          replay += chunk.toString('latin1');
        });
        const againExited = new Promise<number | null>((resolve) =>
          again.on('exit', (code) => resolve(code)),
        );
        const replayDeadline = Date.now() + MINUTE;
        while (!/vireo-42/.test(replay) && Date.now() < replayDeadline)
          await new Promise((r) => setTimeout(r, 100));
        assert.match(replay, /vireo-42/, 'history replayed on attach');
        again.stdin.write('poweroff -f\n');
        assert.equal(await againExited, 0, 'the console ends when the VM powers off');

        const inspect = JSON.parse(vireo('inspect', 'linux', '--json').stdout);
        assert.equal(inspect.status.state, 'stopped');
        assert.equal(inspect.status.lastExit.reason, 'poweroff');
        assert.equal(vireo('delete', 'linux').status, 0);
        assert.equal(vireo('inspect', 'linux').status, 3);
      } finally {
        consoleChild?.kill('SIGKILL');
        await daemon.cleanup();
      }
    },
    { timeout: 35 * MINUTE },
  );
});
