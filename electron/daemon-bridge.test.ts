// The bridge the main process keeps for a window, against a real daemon process (VM hosts run the
// fake machine, so no KVM is needed).

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ApiClient } from '../core/src/api/client.js';
import { ErrorCode } from '../core/src/api/schema.js';
import { startTestDaemon, type TestDaemon } from '../core/src/daemon/test-daemon.js';
import { type BridgeMessage, DaemonBridge, daemonEnvironment } from './daemon-bridge.js';

async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('DaemonBridge', { timeout: 60_000 }, () => {
  let daemon: TestDaemon;
  let connections = 0;
  const messages: BridgeMessage[] = [];
  let bridge: DaemonBridge;

  before(async () => {
    daemon = await startTestDaemon({ fakeMachine: true });
    writeFileSync(join(daemon.root, 'kernel'), 'fake');
    bridge = new DaemonBridge(
      () => {
        connections++;
        return ApiClient.connect(daemon.paths.socket);
      },
      (message) => messages.push(message),
    );
  });
  after(async () => {
    bridge?.reset();
    await daemon?.cleanup();
  });

  test('calls reach the daemon; results and API errors come back as data', async () => {
    assert.deepEqual(await bridge.call('vm.list', {}), { result: { vms: [], invalid: [] } });
    const missing = await bridge.call('vm.get', { vm: 'nope' });
    assert.ok('error' in missing);
    assert.equal(missing.error.code, ErrorCode.vmNotFound);
    assert.match(missing.error.message, /nope/);
    assert.equal(connections, 1, 'one connection per page');
  });

  test('bad arguments are refused before they travel', async () => {
    const before = connections;
    const bad = await bridge.call('vm.create', { name: '' });
    assert.ok('error' in bad);
    assert.equal(bad.error.code, ErrorCode.invalidParams);
    assert.deepEqual(bad.error.data, [{ path: 'name', message: 'a name is required' }]);
    const unknown = await bridge.call({ toString: () => 'vm.list' }, {});
    assert.ok('error' in unknown);
    assert.equal(unknown.error.code, ErrorCode.invalidRequest);
    assert.deepEqual(await bridge.call('vm.list', {}), { result: { vms: [], invalid: [] } });
    assert.equal(connections, before, 'no new connection');
    assert.equal((await daemon.client().then((c) => c.call('vm.list', {}))).vms.length, 0, 'nothing created');
  });

  test('events and console output reach the window', async () => {
    await bridge.call('events.subscribe', {});
    await bridge.call('vm.create', {
      name: 'web',
      boot: { kind: 'kernel', kernel: join(daemon.root, 'kernel') },
    });
    await bridge.call('console.attach', { vm: 'web' });
    await bridge.call('vm.start', { vm: 'web' });
    const notifications = () => messages.filter((m) => m.kind === 'notification');
    await until('the created event', () =>
      notifications().some((m) => m.method === 'event' && (m.params as { kind: string }).kind === 'created'),
    );
    const consoleText = () =>
      notifications()
        .filter((m) => m.method === 'console.output')
        .map((m) => Buffer.from((m.params as { data: string }).data, 'base64').toString())
        .join('');
    await until('the guest banner', () => consoleText().includes('fake# '));
    await bridge.call('vm.stop', { vm: 'web', force: true });
  });

  test('a reload drops the connection quietly; the next call makes a new one', async () => {
    const before = connections;
    bridge.reset();
    assert.deepEqual((await bridge.call('vm.get', { vm: 'web' })) !== undefined, true);
    assert.equal(connections, before + 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(!messages.some((m) => m.kind === 'closed'), 'no closed message for a reset');
  });

  test('the daemon going away is reported once; the next call says it cannot reach it', async () => {
    await daemon.stop();
    await until('the closed message', () => messages.some((m) => m.kind === 'closed'));
    assert.equal(messages.filter((m) => m.kind === 'closed').length, 1);
    const answer = await bridge.call('vm.list', {});
    assert.ok('error' in answer);
    assert.match(answer.error.message, /cannot reach the Vireo daemon/);
  });
});

test('under Electron the daemon runs as plain Node', () => {
  const env = { PATH: '/usr/bin' };
  assert.deepEqual(daemonEnvironment(env, { ...process.versions, electron: '45.4.1' }), {
    PATH: '/usr/bin',
    ELECTRON_RUN_AS_NODE: '1',
  });
  const node = { ...process.versions };
  delete (node as { electron?: string }).electron;
  assert.equal(daemonEnvironment(env, node), env);
});
