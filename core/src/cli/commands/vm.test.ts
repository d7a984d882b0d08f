// The VM commands as a person or a script runs them: the real `vireo` binary against a daemon it
// starts on demand (VM hosts run the fake machine, so no KVM is needed).

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { VIREO_BIN } from '../../../../tests/support/vireo-process.js';
import { killDaemonOf, killVmHosts, testEnv } from '../../daemon/test-daemon.js';

let root: string;
let env: NodeJS.ProcessEnv;

function vireo(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [VIREO_BIN, ...args], {
    env,
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function daemonPid(): number {
  return Number(readFileSync(join(root, 'run', 'vireo', 'daemon.pid'), 'utf8'));
}

describe('vireo VM commands', { timeout: 120_000 }, () => {
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'vireo-cli-'));
    env = testEnv(root, { VIREO_FAKE_MACHINE: '1' });
    writeFileSync(join(root, 'kernel'), 'fake');
  });
  after(() => {
    killDaemonOf(root);
    killVmHosts(root);
    rmSync(root, { recursive: true, force: true });
  });

  test('the first command starts the daemon; list of an empty library', () => {
    const result = vireo('list');
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /no VMs yet/);
    assert.ok(daemonPid() > 0);
    assert.deepEqual(JSON.parse(vireo('list', '--json').stdout), { vms: [], invalid: [] });
  });

  test('create, list, inspect, edit with --json and exit codes', () => {
    const created = vireo(
      'create',
      'alpha',
      '--kernel',
      join(root, 'kernel'),
      '--cpus',
      '2',
      '--memory',
      '256M',
      '--json',
    );
    assert.equal(created.status, 0, created.stderr);
    const info = JSON.parse(created.stdout);
    assert.equal(info.spec.id, 'alpha');
    assert.equal(info.spec.memoryBytes, 256 * 1024 * 1024);
    assert.equal(info.spec.boot.kernel, join(root, 'kernel'));

    const listed = vireo('list');
    assert.equal(listed.status, 0, listed.stderr);
    const table = listed.stdout;
    assert.ok(table.length > 0, `empty list output; stderr: ${listed.stderr}`);
    assert.match(table, /^NAME +ID +STATE/m);
    assert.match(table, /^alpha +alpha +stopped +2 +256M/m);

    assert.equal(vireo('create', 'alpha').status, 2, 'a taken name is a usage error');
    const bad = vireo('create', 'beta', '--memory', '3M');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /memoryBytes: memory must be at least 32M/);
    const badJson = vireo('create', 'beta', '--cpus', '0', '--json');
    assert.equal(JSON.parse(badJson.stdout).error.name, 'invalidParams');

    const edited = vireo('edit', 'alpha', '--cpus', '3', '--append', 'console=ttyS0', '--json');
    assert.equal(edited.status, 0, edited.stderr);
    assert.equal(JSON.parse(edited.stdout).spec.cpus, 3);
    assert.equal(JSON.parse(edited.stdout).spec.boot.cmdline, 'console=ttyS0');

    const inspect = vireo('inspect', 'alpha');
    assert.match(inspect.stdout, /cpus: +3/);
    assert.match(inspect.stdout, /cmdline: +console=ttyS0/);
    assert.equal(vireo('inspect', 'nope').status, 3);
  });

  test('network: --network user with --forward, shown by inspect; forwards need user networking', () => {
    const created = vireo(
      'create',
      'netted',
      '--network',
      'user',
      '--forward',
      'tcp:8022:22',
      '--forward',
      'udp:0.0.0.0:5353:53',
      '--json',
    );
    assert.equal(created.status, 0, created.stderr);
    assert.deepEqual(JSON.parse(created.stdout).spec.network, {
      mode: 'user',
      forwards: [
        { protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 8022, guestPort: 22 },
        { protocol: 'udp', hostAddress: '0.0.0.0', hostPort: 5353, guestPort: 53 },
      ],
    });
    const inspect = vireo('inspect', 'netted');
    assert.match(inspect.stdout, /forward: +tcp:127\.0\.0\.1:8022:22/);
    const edited = vireo('edit', 'netted', '--forward', '8080:80', '--mac', '52:54:00:aa:bb:cc', '--json');
    assert.equal(edited.status, 0, edited.stderr);
    const network = JSON.parse(edited.stdout).spec.network;
    assert.equal(network.mac, '52:54:00:aa:bb:cc');
    assert.deepEqual(network.forwards, [
      { protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 8080, guestPort: 80 },
    ]);
    const tap = vireo('edit', 'netted', '--network', 'tap:tap0', '--forward', '8080:80');
    assert.equal(tap.status, 2);
    assert.match(tap.stderr, /--forward needs --network user/);
    const badPort = vireo('edit', 'netted', '--forward', 'tcp:99999:80');
    assert.equal(badPort.status, 2);
    assert.match(badPort.stderr, /a port is 1-65535/);
  });

  test('disks: --disk path:ro:direct on create and edit, shown by inspect; unknown flags fail', () => {
    const image = join(root, 'data.raw');
    writeFileSync(image, Buffer.alloc(1024 * 1024));
    const created = vireo('create', 'disky', '--disk', `${image}:direct`, '--disk', `${image}:ro`, '--json');
    assert.equal(created.status, 0, created.stderr);
    assert.deepEqual(JSON.parse(created.stdout).spec.disks, [
      { path: image, readonly: false, format: 'raw', direct: true },
      { path: image, readonly: true, format: 'raw', direct: false },
    ]);
    assert.match(
      vireo('inspect', 'disky').stdout,
      /disk: +\S+data\.raw \(raw, O_DIRECT\)\n.*data\.raw \(raw, read-only\)\n/,
    );
    const edited = vireo('edit', 'disky', '--disk', `${image}:direct:ro`, '--json');
    assert.equal(edited.status, 0, edited.stderr);
    assert.deepEqual(JSON.parse(edited.stdout).spec.disks, [
      { path: image, readonly: true, format: 'raw', direct: true },
    ]);
    assert.match(vireo('inspect', 'disky').stdout, /data\.raw \(raw, read-only, O_DIRECT\)/);
    const bad = vireo('edit', 'disky', '--disk', `${image}:nocache`);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /unknown flag 'nocache' \(ro, rw, raw, qcow2, direct\)/);
  });

  test('edit with no options opens $EDITOR on the settings', () => {
    const editor = join(root, 'editor.sh');
    writeFileSync(editor, '#!/bin/sh\nsed -i \'s/"cpus": 3/"cpus": 5/\' "$1"\n', { mode: 0o755 });
    const result = spawnSync(process.execPath, [VIREO_BIN, 'edit', 'alpha', '--json'], {
      env: { ...env, EDITOR: editor, VISUAL: '' },
      encoding: 'utf8',
    });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(JSON.parse(result.stdout).spec.cpus, 5);
  });

  test('start, console (type, detach with Ctrl-A d), stop, delete', async () => {
    assert.equal(vireo('console', 'alpha').status, 4, 'a stopped VM has no console');
    const started = vireo('start', 'alpha');
    assert.equal(started.status, 0, started.stderr);
    assert.match(started.stdout, /alpha: running/);
    assert.equal(vireo('start', 'alpha').status, 4, 'already running');
    assert.equal(vireo('delete', 'alpha').status, 4, 'cannot delete a running VM');

    const child = spawn(process.execPath, [VIREO_BIN, 'console', 'alpha'], { env });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const waitFor = async (pattern: RegExp) => {
      const deadline = Date.now() + 10_000;
      while (!pattern.test(output)) {
        if (Date.now() > deadline) assert.fail(`no ${pattern} in:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    await waitFor(/fake# /);
    child.stdin.write('echo from the cli\r');
    await waitFor(/echo from the cli/);
    // Ctrl-A b: a BREAK on the serial line, in order with the key typed after it.
    child.stdin.write('\x01bq\r');
    await waitFor(/\[break\]q/);
    // A guest that reboots stays attached, and the console says so.
    child.stdin.write('reboot\r');
    await waitFor(/vireo: alpha rebooted \(guest reset the machine\)/);
    await waitFor(/rebooted[\s\S]*fake guest: \d+ CPU/);
    child.stdin.write('\x01d');
    assert.equal(await exited, 0);
    assert.match(output, /detached; alpha keeps running/);
    assert.match(vireo('list').stdout, /alpha +alpha +running/);

    const paused = vireo('pause', 'alpha', '--json');
    assert.equal(JSON.parse(paused.stdout).status.state, 'paused');
    assert.equal(vireo('resume', 'alpha').status, 0);
    const reset = vireo('reset', 'alpha', '--json');
    assert.equal(reset.status, 0, reset.stderr);
    assert.equal(JSON.parse(reset.stdout).status.state, 'running', 'rebooted in place');

    const stopped = vireo('stop', 'alpha', '--json');
    assert.equal(stopped.status, 0, stopped.stderr);
    assert.equal(JSON.parse(stopped.stdout).status.lastExit.reason, 'poweroff');
    assert.equal(vireo('stop', 'alpha').status, 4, 'already stopped');

    const deleted = vireo('delete', 'alpha', '--json');
    assert.deepEqual(JSON.parse(deleted.stdout), { id: 'alpha' });
    assert.equal(vireo('inspect', 'alpha').status, 3);
  });

  test('the console ends when the VM stops', async () => {
    assert.equal(vireo('create', 'gamma', '--kernel', join(root, 'kernel'), '--start').status, 0);
    const child = spawn(process.execPath, [VIREO_BIN, 'console', 'gamma', '--no-history'], { env });
    let output = '';
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise((resolve) => setTimeout(resolve, 500));
    child.stdin.write('poweroff\r');
    assert.equal(await exited, 0, output);
    assert.match(output, /gamma stopped \(poweroff\)/);
  });

  test('create --disk-from copies an image with progress (JSON lines with --json, plain lines otherwise)', () => {
    const image = join(root, 'image.raw');
    writeFileSync(image, Buffer.alloc(24 * 1024 * 1024, 7));
    const created = vireo('create', 'copy', '--disk-from', image, '--new-disk', '8M', '--json');
    assert.equal(created.status, 0, created.stderr);
    const disks = JSON.parse(created.stdout).spec.disks as { path: string }[];
    assert.deepEqual(
      disks.map((disk) => disk.path.split('/').slice(-2).join('/')),
      ['copy/disk-0.raw', 'copy/disk-1.raw'],
    );
    assert.ok(readFileSync(disks[0]!.path).equals(readFileSync(image)));
    const steps = created.stderr
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line).progress as { done: number; total: number });
    assert.ok(steps.length >= 1);
    assert.deepEqual(steps.at(-1), {
      operation: 'copying image.raw',
      done: 24 * 1024 * 1024,
      total: 24 * 1024 * 1024,
    });

    const plain = vireo('create', 'copy-2', '--disk-from', image);
    assert.equal(plain.status, 0, plain.stderr);
    assert.match(plain.stderr, /^copying image\.raw: 100% \(24M of 24M\)$/m);
    assert.match(plain.stdout, /created copy-2/);

    const missing = vireo('create', 'copy-3', '--disk-from', join(root, 'missing.raw'));
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /missing\.raw.*ENOENT/);
    assert.equal(vireo('inspect', 'copy-3').status, 3, 'nothing was created');
    assert.equal(vireo('delete', 'copy').status, 0);
    assert.equal(vireo('delete', 'copy-2').status, 0);
  });

  test('every command has help', () => {
    for (const command of [
      'list',
      'create',
      'start',
      'stop',
      'pause',
      'resume',
      'reset',
      'console',
      'inspect',
      'edit',
      'delete',
      'daemon',
    ]) {
      const result = vireo(command, '--help');
      assert.equal(result.status, 0, `${command} --help`);
      assert.match(result.stdout, new RegExp(`Usage: vireo ${command}`));
    }
    assert.equal(vireo('start').status, 2, 'a missing argument is a usage error');
  });
});
