// The API contract end to end: a real daemon process, the real socket, real VM host processes
// (running the fake machine, VIREO_FAKE_MACHINE=1, so no KVM and no guest boot is needed).

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { availableParallelism, totalmem } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DAEMON_ENTRY } from '../daemon/connect.js';
import { startTestDaemon, type TestDaemon } from '../daemon/test-daemon.js';
import { DEFAULT_HOST_ENTRY } from '../manager/supervisor.js';
import { encodeLaunch } from '../vmhost/protocol.js';
import { type ApiClient, RpcError } from './client.js';
import { ErrorCode, type VmEvent, type VmStatus } from './schema.js';

const MIB = 1024 * 1024;

/** A kernel file that exists: the fake machine only reads it. */
function fakeKernel(daemon: TestDaemon): string {
  const path = join(daemon.root, 'fake-kernel');
  writeFileSync(path, 'not a kernel');
  return path;
}

async function rpcError(promise: Promise<unknown>): Promise<RpcError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof RpcError, `expected an RpcError, got ${error}`);
    return error;
  }
  assert.fail('expected the call to fail');
}

/** A raw connection: send lines, read replies one line at a time. */
class RawConnection {
  private buffer = '';
  private waiters: (() => void)[] = [];
  closed = false;
  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString();
      for (const wake of this.waiters.splice(0)) wake();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      for (const wake of this.waiters.splice(0)) wake();
    });
  }
  static open(path: string): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(path, () => resolve(new RawConnection(socket)));
      socket.once('error', reject);
    });
  }
  send(text: string): void {
    this.socket.write(text);
  }
  async reply(timeoutMs = 5000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const newline = this.buffer.indexOf('\n');
      if (newline !== -1) {
        const line = this.buffer.slice(0, newline);
        this.buffer = this.buffer.slice(newline + 1);
        return JSON.parse(line);
      }
      if (this.closed) throw new Error('connection closed');
      if (Date.now() > deadline) throw new Error('no reply');
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }
  async closedWithin(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.closed && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    return this.closed;
  }
}

async function waitForState(client: ApiClient, vm: string, state: VmStatus['state'], ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const info = await client.call('vm.get', { vm });
    if (info.status.state === state) return info;
    if (Date.now() > deadline) assert.fail(`VM ${vm} stayed ${info.status.state}, expected ${state}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function collectConsole(client: ApiClient, vm: string): () => string {
  let text = '';
  client.on('console.output', (note) => {
    if (note.vm === vm) text += Buffer.from(note.data, 'base64').toString();
  });
  return () => text;
}

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('API over the daemon socket', { timeout: 120_000 }, () => {
  let daemon: TestDaemon;
  let client: ApiClient;

  before(async () => {
    daemon = await startTestDaemon({ fakeMachine: true });
    client = await daemon.client();
  });
  after(async () => {
    await daemon?.cleanup();
  });

  test('the runtime folder is private and the socket is 0600', () => {
    assert.equal(statSync(daemon.paths.runtimeDir).mode & 0o777, 0o700);
    assert.equal(statSync(daemon.paths.socket).mode & 0o777, 0o600);
  });

  test('daemon.info reports the host memory and CPUs that bound a VM', async () => {
    const info = await client.call('daemon.info', {});
    assert.equal(info.host.memoryBytes, totalmem());
    assert.equal(info.host.cpus, availableParallelism());
  });

  test('create, list, get, update, delete; events reach a subscriber', async () => {
    const watcher = await daemon.client();
    const events: VmEvent[] = [];
    watcher.on('event', (event) => events.push(event));
    await watcher.call('events.subscribe', {});

    const created = await client.call('vm.create', { name: 'contract', cpus: 2, memoryBytes: 256 * MIB });
    assert.equal(created.spec.id, 'contract');
    assert.equal(created.status.state, 'stopped');
    const listed = await client.call('vm.list', {});
    assert.ok(listed.vms.some((vm) => vm.spec.id === 'contract'));
    assert.equal((await client.call('vm.get', { vm: 'contract' })).spec.cpus, 2);

    const updated = await client.call('vm.update', { vm: 'contract', changes: { cpus: 4, name: 'renamed' } });
    assert.equal(updated.spec.cpus, 4);
    assert.equal((await client.call('vm.get', { vm: 'renamed' })).spec.id, 'contract', 'found by name');

    assert.equal((await rpcError(client.call('vm.create', { name: 'renamed' }))).code, ErrorCode.nameTaken);
    assert.equal((await rpcError(client.call('vm.get', { vm: 'nope' }))).code, ErrorCode.vmNotFound);

    assert.deepEqual(await client.call('vm.delete', { vm: 'contract' }), { id: 'contract' });
    assert.equal((await rpcError(client.call('vm.get', { vm: 'contract' }))).code, ErrorCode.vmNotFound);
    await until('events', () => events.some((event) => event.kind === 'deleted'));
    assert.deepEqual(
      events.map((event) => event.kind),
      ['created', 'updated', 'deleted'],
    );
  });

  test('an invalid spec on disk is listed with field and reason, and reads fail with invalidSpec', async () => {
    const dir = join(daemon.paths.vmsDir, 'broken');
    mkdirSync(dir);
    writeFileSync(
      join(dir, 'spec.json'),
      JSON.stringify({ version: 1, id: 'broken', name: 'broken', cpus: 'two' }),
    );
    const { invalid } = await client.call('vm.list', {});
    const entry = invalid.find((vm) => vm.id === 'broken');
    assert.ok(entry);
    assert.ok(entry.issues.some((issue) => issue.path === 'cpus'));
    const error = await rpcError(client.call('vm.get', { vm: 'broken' }));
    assert.equal(error.code, ErrorCode.invalidSpec);
    assert.match(error.message, /cpus/);
    await client.call('vm.delete', { vm: 'broken' });
  });

  test('bad inputs get typed errors and the connection keeps working', async () => {
    const raw = await RawConnection.open(daemon.paths.socket);
    raw.send('{"jsonrpc":"2.0","id":1,"method":\n');
    assert.equal(((await raw.reply()).error as { code: number }).code, ErrorCode.parseError);
    raw.send('[1,2]\n');
    assert.equal(((await raw.reply()).error as { code: number }).code, ErrorCode.invalidRequest);
    raw.send('"hello"\n');
    assert.equal(((await raw.reply()).error as { code: number }).code, ErrorCode.invalidRequest);
    raw.send('{"id":2,"method":"vm.list"}\n');
    assert.equal(((await raw.reply()).error as { code: number }).code, ErrorCode.invalidRequest);
    raw.send('{"jsonrpc":"2.0","id":3,"method":"vm.explode"}\n');
    const unknown = await raw.reply();
    assert.equal(unknown.id, 3);
    assert.equal((unknown.error as { code: number }).code, ErrorCode.methodNotFound);
    raw.send('{"jsonrpc":"2.0","id":4,"method":"vm.create","params":{"name":"x","cpus":"two"}}\n');
    const wrongType = await raw.reply();
    assert.equal((wrongType.error as { code: number }).code, ErrorCode.invalidParams);
    assert.deepEqual(
      (wrongType.error as { data: { path: string }[] }).data.map((issue) => issue.path),
      ['cpus'],
    );
    raw.send('{"jsonrpc":"2.0","id":5,"method":"vm.get","params":[1]}\n');
    assert.equal(((await raw.reply()).error as { code: number }).code, ErrorCode.invalidParams);
    raw.send('{"jsonrpc":"2.0","id":{"x":1},"method":"vm.list"}\n');
    assert.equal(((await raw.reply()).error as { code: number }).code, ErrorCode.invalidRequest);
    // A notification (no id) gets no answer; the next request does.
    raw.send('{"jsonrpc":"2.0","method":"vm.list"}\n{"jsonrpc":"2.0","id":"last","method":"vm.list"}\n');
    const last = await raw.reply();
    assert.equal(last.id, 'last');
    assert.ok(last.result);
    raw.socket.destroy();
  });

  test('a parse error reports code -32700 with a null id', async () => {
    const raw = await RawConnection.open(daemon.paths.socket);
    raw.send('{not json}\n');
    const reply = await raw.reply();
    assert.equal(reply.id, null);
    assert.equal((reply.error as { code: number }).code, ErrorCode.parseError);
    raw.socket.destroy();
  });

  test('an oversized message is refused and that client dropped; others are served', async () => {
    const raw = await RawConnection.open(daemon.paths.socket);
    const bystander = await daemon.client();
    raw.send(`{"jsonrpc":"2.0","id":1,"method":"vm.create","params":{"name":"${'x'.repeat(5 * MIB)}`);
    const reply = await raw.reply();
    assert.equal((reply.error as { code: number }).code, ErrorCode.messageTooLarge);
    assert.ok(await raw.closedWithin(5000), 'the connection was dropped');
    assert.ok(Array.isArray((await bystander.call('vm.list', {})).vms));
  });

  test('clients that vanish mid-request do not disturb the daemon', async () => {
    for (let i = 0; i < 20; i++) {
      const raw = await RawConnection.open(daemon.paths.socket);
      raw.send(`{"jsonrpc":"2.0","id":1,"method":"vm.create","params":{"name":"vanish-${i}"}}\n`);
      raw.send('{"jsonrpc":"2.0","id":2,"method":"vm.li');
      raw.socket.destroy();
    }
    const { vms } = await client.call('vm.list', {});
    for (const vm of vms.filter((v) => v.spec.name.startsWith('vanish-'))) {
      await client.call('vm.delete', { vm: vm.spec.id });
    }
    assert.ok(Array.isArray((await client.call('vm.list', {})).vms));
  });

  test('several clients at once: concurrent creates, one winner per name', async () => {
    const clients = await Promise.all(Array.from({ length: 8 }, () => daemon.client()));
    const results = await Promise.allSettled(
      clients.flatMap((c, i) => [
        c.call('vm.create', { name: `many-${i}` }),
        c.call('vm.create', { name: 'contested' }),
        c.call('vm.list', {}),
      ]),
    );
    const contested = results.filter((r, index) => index % 3 === 1 && r.status === 'fulfilled');
    assert.equal(contested.length, 1, 'exactly one create of the same name wins');
    const { vms } = await client.call('vm.list', {});
    for (let i = 0; i < 8; i++) assert.ok(vms.some((vm) => vm.spec.name === `many-${i}`));
    for (const vm of vms.filter((v) => v.spec.name.startsWith('many-') || v.spec.name === 'contested')) {
      await client.call('vm.delete', { vm: vm.spec.id });
    }
  });

  test('start, console, pause/resume, graceful stop through the power button', async () => {
    const kernel = fakeKernel(daemon);
    await client.call('vm.create', { name: 'life', boot: { kind: 'kernel', kernel, cmdline: '' } });
    const watcher = await daemon.client();
    const states: string[] = [];
    watcher.on('event', (event) => {
      if (event.kind === 'state' && event.vm === 'life') states.push(event.status.state);
    });
    await watcher.call('events.subscribe', {});

    const started = await client.call('vm.start', { vm: 'life' });
    assert.equal(started.status.state, 'running');
    assert.ok(started.status.pid);
    assert.equal((await rpcError(client.call('vm.start', { vm: 'life' }))).code, ErrorCode.invalidState);
    assert.equal((await rpcError(client.call('vm.delete', { vm: 'life' }))).code, ErrorCode.invalidState);

    const consoleClient = await daemon.client();
    const text = collectConsole(consoleClient, 'life');
    const attached = await consoleClient.call('console.attach', { vm: 'life' });
    const history = Buffer.from(attached.history, 'base64').toString();
    await until('banner', () => `${history}${text()}`.includes('fake guest: 1 CPU(s)'));
    await client.call('console.write', { vm: 'life', data: Buffer.from('hello vireo\r').toString('base64') });
    await until('the echo', () => text().includes('hello vireo'));
    // A BREAK comes before the data of the same write.
    await client.call('console.write', {
      vm: 'life',
      data: Buffer.from('h').toString('base64'),
      break: true,
    });
    await until('the BREAK, then the key', () => text().includes('[break]h'));

    assert.equal((await client.call('vm.pause', { vm: 'life' })).status.state, 'paused');
    assert.equal((await rpcError(client.call('vm.pause', { vm: 'life' }))).code, ErrorCode.invalidState);
    assert.equal((await client.call('vm.resume', { vm: 'life' })).status.state, 'running');

    const stopped = await client.call('vm.stop', { vm: 'life' });
    assert.equal(stopped.status.state, 'stopped');
    assert.equal(stopped.status.lastExit?.reason, 'poweroff');
    await until('state events', () => states.includes('stopped'));
    assert.deepEqual(
      states.filter((s, i) => s !== states[i - 1]),
      ['starting', 'running', 'paused', 'running', 'stopping', 'stopped'],
    );
    assert.equal((await rpcError(client.call('vm.stop', { vm: 'life' }))).code, ErrorCode.invalidState);
  });

  test('vm.reset and a guest reset reboot in place: reset events, still running, same VM host', async () => {
    const kernel = fakeKernel(daemon);
    await client.call('vm.create', { name: 'reboots', boot: { kind: 'kernel', kernel, cmdline: '' } });
    const watcher = await daemon.client();
    const events: VmEvent[] = [];
    watcher.on('event', (event) => {
      if (event.vm === 'reboots') events.push(event);
    });
    await watcher.call('events.subscribe', {});
    const text = collectConsole(watcher, 'reboots');
    await watcher.call('console.attach', { vm: 'reboots', history: false });
    const started = await client.call('vm.start', { vm: 'reboots' });
    const banners = () => text().split('fake guest:').length - 1;
    await until('the banner', () => banners() === 1);

    await client.call('vm.pause', { vm: 'reboots' });
    const reset = await client.call('vm.reset', { vm: 'reboots' });
    assert.equal(reset.status.state, 'running', 'a paused VM runs again after a reset');
    assert.equal(reset.status.pid, started.status.pid, 'the same VM host process');
    await until('the banner again', () => banners() === 2);

    await client.call('console.write', { vm: 'reboots', data: Buffer.from('reboot\r').toString('base64') });
    await until('the guest rebooted itself', () => banners() === 3);
    assert.deepEqual(
      events.filter((event) => event.kind === 'reset').map((event) => event.message),
      ['reset by the VMM', 'guest reset the machine'],
    );
    assert.equal((await client.call('vm.get', { vm: 'reboots' })).status.state, 'running');
    await client.call('vm.stop', { vm: 'reboots', force: true });
    // No BREAK on a virtio console: it has no serial line.
    await client.call('vm.update', {
      vm: 'reboots',
      changes: { console: { kind: 'virtio', historyBytes: 4096 } },
    });
    await client.call('vm.start', { vm: 'reboots' });
    assert.equal(
      (await rpcError(client.call('console.write', { vm: 'reboots', data: '', break: true }))).code,
      ErrorCode.notSupported,
    );
    await client.call('vm.stop', { vm: 'reboots', force: true });
    assert.equal((await rpcError(client.call('vm.reset', { vm: 'reboots' }))).code, ErrorCode.invalidState);
    await client.call('vm.delete', { vm: 'reboots' });
  });

  test('a guest that ignores the power button is forced off after the timeout; --force at once', async () => {
    const kernel = fakeKernel(daemon);
    await client.call('vm.create', {
      name: 'stubborn',
      boot: { kind: 'kernel', kernel, cmdline: 'fake.ignore-power-button' },
    });
    await client.call('vm.start', { vm: 'stubborn' });
    const began = Date.now();
    const stopped = await client.call('vm.stop', { vm: 'stubborn', timeoutMs: 300 });
    assert.ok(Date.now() - began >= 300, 'waited for the guest first');
    assert.equal(stopped.status.state, 'stopped');
    assert.equal(stopped.status.lastExit?.reason, 'stopped');

    await client.call('vm.start', { vm: 'stubborn' });
    const forced = await client.call('vm.stop', { vm: 'stubborn', force: true, timeoutMs: 60_000 });
    assert.equal(forced.status.state, 'stopped');
    await client.call('vm.delete', { vm: 'stubborn' });
  });

  test('kill -9 of a VM host: crashed with the reason and last console lines; others keep running', async () => {
    const kernel = fakeKernel(daemon);
    await client.call('vm.create', { name: 'victim', boot: { kind: 'kernel', kernel, cmdline: '' } });
    await client.call('vm.create', { name: 'bystander', boot: { kind: 'kernel', kernel, cmdline: '' } });
    const victim = await client.call('vm.start', { vm: 'victim' });
    await client.call('vm.start', { vm: 'bystander' });
    const consoleText = collectConsole(client, 'victim');
    await client.call('console.attach', { vm: 'victim' });
    await client.call('console.write', {
      vm: 'victim',
      data: Buffer.from('last words\r').toString('base64'),
    });
    await until('echo', () => consoleText().includes('last words'));

    process.kill(victim.status.pid!, 'SIGKILL');
    const crashed = await waitForState(client, 'victim', 'crashed');
    assert.equal(crashed.status.lastExit?.reason, 'crashed');
    assert.match(crashed.status.lastExit?.message ?? '', /SIGKILL/);
    assert.match(crashed.status.lastExit?.consoleTail ?? '', /last words/);
    assert.equal((await client.call('vm.get', { vm: 'bystander' })).status.state, 'running');

    // A crashed VM starts again.
    assert.equal((await client.call('vm.start', { vm: 'victim' })).status.state, 'running');
    await client.call('vm.stop', { vm: 'victim', force: true });
    await client.call('vm.stop', { vm: 'bystander', force: true });
  });

  test('SIGTERM to a VM host switches the VM off cleanly: stopped, not crashed', async () => {
    const info = await client.call('vm.start', { vm: 'victim' });
    process.kill(info.status.pid!, 'SIGTERM');
    const stopped = await waitForState(client, 'victim', 'stopped');
    assert.equal(stopped.status.lastExit?.reason, 'stopped');
  });

  test('a guest poweroff from inside is recorded as stopped/poweroff', async () => {
    await client.call('vm.start', { vm: 'victim' });
    await client.call('console.write', { vm: 'victim', data: Buffer.from('poweroff\r').toString('base64') });
    const info = await waitForState(client, 'victim', 'stopped');
    assert.equal(info.status.lastExit?.reason, 'poweroff');
  });

  test('a missing kernel fails vm.start with startFailed and a clear reason', async () => {
    await client.call('vm.create', {
      name: 'nokernel',
      boot: { kind: 'kernel', kernel: join(daemon.root, 'missing-kernel'), cmdline: '' },
    });
    const error = await rpcError(client.call('vm.start', { vm: 'nokernel' }));
    assert.equal(error.code, ErrorCode.startFailed);
    assert.match(error.message, /missing-kernel.*ENOENT/);
    assert.equal((await client.call('vm.get', { vm: 'nokernel' })).status.state, 'stopped');
  });
});

describe('daemon restart', { timeout: 120_000 }, () => {
  test('a restarted daemon reattaches to a running VM and records one that ended meanwhile', async () => {
    let daemon = await startTestDaemon({ fakeMachine: true });
    try {
      let client = await daemon.client();
      const kernel = fakeKernel(daemon);
      await client.call('vm.create', { name: 'survivor', boot: { kind: 'kernel', kernel, cmdline: '' } });
      await client.call('vm.create', { name: 'leaver', boot: { kind: 'kernel', kernel, cmdline: '' } });
      const survivor = await client.call('vm.start', { vm: 'survivor' });
      await client.call('vm.start', { vm: 'leaver' });
      await client.call('console.write', {
        vm: 'survivor',
        data: Buffer.from('before\r').toString('base64'),
      });
      await new Promise((resolve) => setTimeout(resolve, 200));

      await daemon.kill();
      // While no daemon runs: one VM powers off by itself (via its host's socket), one keeps going.
      const hostSocket = join(daemon.paths.runtimeDir, 'vms', 'leaver.sock');
      const raw = await RawConnection.open(hostSocket);
      await raw.reply(); // hello
      raw.send('{"type":"command","seq":1,"command":"input","data":"cG93ZXJvZmYN"}\n');
      assert.ok(await raw.closedWithin(5000), 'the host ended');

      daemon = await daemon.restart();
      client = await daemon.client();
      const again = await client.call('vm.get', { vm: 'survivor' });
      assert.equal(again.status.state, 'running');
      assert.equal(again.status.pid, survivor.status.pid, 'the same VM host process');
      const attached = await client.call('console.attach', { vm: 'survivor' });
      assert.match(Buffer.from(attached.history, 'base64').toString(), /before/, 'history kept by the host');
      const text = collectConsole(client, 'survivor');
      await client.call('console.write', { vm: 'survivor', data: Buffer.from('after\r').toString('base64') });
      await until('echo after restart', () => text().includes('after'));

      const leaver = await client.call('vm.get', { vm: 'leaver' });
      assert.equal(leaver.status.state, 'stopped');
      assert.equal(leaver.status.lastExit?.reason, 'poweroff');

      // Killed while the daemon is away: marked crashed by the next daemon.
      await daemon.stop();
      process.kill(again.status.pid!, 'SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, 200));
      daemon = await daemon.restart();
      client = await daemon.client();
      const lost = await client.call('vm.get', { vm: 'survivor' });
      assert.equal(lost.status.state, 'crashed');
      assert.match(lost.status.lastExit?.message ?? '', /while the daemon was not running/);
      // And the record survives yet another restart.
      await daemon.stop();
      daemon = await daemon.restart();
      client = await daemon.client();
      assert.equal((await client.call('vm.get', { vm: 'survivor' })).status.state, 'crashed');
    } finally {
      await daemon.cleanup();
    }
  });

  test('a VM host left in "starting" by a daemon that died is stopped by the next daemon', async () => {
    let daemon = await startTestDaemon({ fakeMachine: true });
    try {
      const client = await daemon.client();
      const kernel = fakeKernel(daemon);
      await client.call('vm.create', { name: 'halfway', boot: { kind: 'kernel', kernel, cmdline: '' } });
      await daemon.kill();
      // What the supervisor had spawned before it could send 'start'.
      const runtime = daemon.paths.runtimeDir;
      const launch = encodeLaunch({
        id: 'halfway',
        socket: join(runtime, 'vms', 'halfway.sock'),
        exitFile: join(runtime, 'vms', 'halfway.exit.json'),
        config: {
          kernel,
          cmdline: '',
          memoryBytes: 64 * MIB,
          cpus: 1,
          cpuProfile: 'auto',
          disks: [],
          console: 'serial',
          network: { mode: 'none' },
        },
        historyBytes: 1024,
      });
      const host = spawn(process.execPath, [DEFAULT_HOST_ENTRY, launch], {
        env: daemon.env,
        stdio: 'ignore',
        detached: true,
      });
      const hostExited = new Promise<number | null>((resolve) => host.on('exit', (code) => resolve(code)));
      const deadline = Date.now() + 10_000;
      while (!existsSync(join(runtime, 'vms', 'halfway.sock')) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      daemon = await daemon.restart();
      assert.equal(await hostExited, 0, 'the host was told to stop');
      const info = await (await daemon.client()).call('vm.get', { vm: 'halfway' });
      assert.equal(info.status.state, 'stopped');
      assert.equal(info.status.lastExit?.reason, 'stopped');
    } finally {
      await daemon.cleanup();
    }
  });

  test('a second daemon for the same user refuses to start', async () => {
    const daemon = await startTestDaemon({ fakeMachine: true });
    try {
      const second = spawnSync(process.execPath, [DAEMON_ENTRY], { env: daemon.env, encoding: 'utf8' });
      assert.equal(second.status, 1);
      assert.match(second.stderr, /already running \(pid \d+\)/);
      assert.ok(Array.isArray((await (await daemon.client()).call('vm.list', {})).vms));
    } finally {
      await daemon.cleanup();
    }
  });
});

describe('real VM host, no KVM needed', { timeout: 60_000 }, () => {
  test('a file that is not a kernel: the host fails fast, vm.start reports startFailed', async () => {
    const daemon = await startTestDaemon();
    try {
      const client = await daemon.client();
      const kernel = join(daemon.root, 'garbage-kernel');
      writeFileSync(kernel, Buffer.alloc(4096, 0x55));
      await client.call('vm.create', { name: 'garbage', boot: { kind: 'kernel', kernel, cmdline: '' } });
      const error = await rpcError(client.call('vm.start', { vm: 'garbage' }));
      assert.equal(error.code, ErrorCode.startFailed);
      assert.match(error.message, /garbage-kernel/);
      const info = await client.call('vm.get', { vm: 'garbage' });
      assert.equal(info.status.state, 'stopped');
      assert.equal(info.status.lastExit?.reason, 'start-failed');
    } finally {
      await daemon.cleanup();
    }
  });
});
