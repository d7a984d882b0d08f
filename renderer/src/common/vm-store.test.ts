import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError, ErrorCode, type VmInfo, type VmStatus } from '../../../core/src/api/schema.js';
import { VireoClient } from './client.js';
import type { Transport } from './transport.js';
import { createVmStore } from './vm-store.js';

const HOST = { memoryBytes: 8 * 1024 ** 3, cpus: 4 };

function info(id: string, name: string, state: VmStatus['state'] = 'stopped'): VmInfo {
  return {
    spec: {
      version: 1,
      id,
      name,
      cpus: 1,
      memoryBytes: 512 * 1024 * 1024,
      cpuProfile: 'auto',
      boot: { kind: 'default' },
      disks: [],
      network: { mode: 'none' },
      console: { kind: 'serial', historyBytes: 65536 },
      display: { enabled: false, width: 1024, height: 768 },
      createdAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:00.000Z',
    },
    status: { state, since: '2026-01-01T00:00:00.000Z' },
  };
}

/** A transport whose answers the test gives by hand, one call at a time. */
function scriptedTransport() {
  const calls: { method: string; params: unknown; resolve(v: unknown): void; reject(e: Error): void }[] = [];
  const listeners = new Map<string, (params: unknown) => void>();
  const transport: Transport = {
    call: (method, params) =>
      new Promise((resolve, reject) => calls.push({ method, params, resolve, reject })),
    on(name, listener) {
      listeners.set(name, listener);
      return () => listeners.delete(name);
    },
  };
  const next = async (method: string) => {
    for (let i = 0; i < 50 && calls.length === 0; i++) await new Promise((r) => setImmediate(r));
    const call = calls.shift();
    assert.ok(call, `expected a call to ${method}`);
    assert.equal(call.method, method);
    return call;
  };
  const notify = (name: string, params: unknown) => listeners.get(name)?.(params);
  return { transport, next, notify, calls };
}

async function loadedStore(vms: VmInfo[]) {
  const script = scriptedTransport();
  const store = createVmStore(new VireoClient(script.transport));
  const loading = store.getState().load();
  assert.equal(store.getState().phase, 'loading');
  (await script.next('events.subscribe')).resolve({});
  // An event before the list's answer is already in the list: it must not be applied twice.
  script.notify('event', { kind: 'deleted', vm: 'web' });
  (await script.next('vm.list')).resolve({ vms, invalid: [] });
  (await script.next('daemon.info')).resolve({ pid: 1, version: '0', socket: '', dataDir: '', host: HOST });
  await loading;
  return { store, script };
}

test('loads the list sorted by name, with the host, after subscribing to events', async () => {
  const { store } = await loadedStore([info('b', 'web'), info('a', 'db 10'), info('c', 'db 9')]);
  const state = store.getState();
  assert.equal(state.phase, 'ready');
  assert.deepEqual(
    state.vms.map((vm) => vm.spec.name),
    ['db 9', 'db 10', 'web'],
  );
  assert.deepEqual(state.host, HOST);
});

test('state events move a VM along live and land in its log; deleted removes it', async () => {
  const { store, script } = await loadedStore([info('web', 'web')]);
  script.notify('event', {
    kind: 'state',
    vm: 'web',
    status: { state: 'running', since: '2026-01-01T00:01:00Z' },
  });
  script.notify('event', {
    kind: 'state',
    vm: 'web',
    status: { state: 'running', since: '2026-01-01T00:01:00Z', pid: 42 },
  });
  assert.equal(store.getState().vms[0]?.status.pid, 42);
  assert.equal(store.getState().vms[0]?.status.state, 'running');
  script.notify('event', {
    kind: 'state',
    vm: 'web',
    status: {
      state: 'crashed',
      since: '2026-01-01T00:02:00Z',
      lastExit: { reason: 'crashed', message: 'signal SIGKILL', at: '2026-01-01T00:02:00Z' },
    },
  });
  script.notify('event', { kind: 'reset', vm: 'web', message: 'the guest reset the machine' });
  assert.deepEqual(
    store.getState().log.web?.map((entry) => entry.text),
    ['running', 'crashed (crashed: signal SIGKILL)', 'rebooted: the guest reset the machine'],
  );
  script.notify('event', { kind: 'deleted', vm: 'web' });
  assert.deepEqual(store.getState().vms, []);
});

test('a created event fetches the new VM', async () => {
  const { store, script } = await loadedStore([]);
  script.notify('event', { kind: 'created', vm: 'new' });
  const get = await script.next('vm.get');
  assert.deepEqual(get.params, { vm: 'new' });
  get.resolve(info('new', 'new'));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(
    store.getState().vms.map((vm) => vm.spec.id),
    ['new'],
  );
});

test('an action is busy while it runs; its failure is kept for that VM until the next action', async () => {
  const { store, script } = await loadedStore([info('web', 'web')]);
  const starting = store.getState().run('web', 'start');
  assert.equal(store.getState().busy.web, 'start');
  (await script.next('vm.start')).reject(new ApiError(ErrorCode.startFailed, 'cannot read kernel'));
  await starting;
  assert.equal(store.getState().busy.web, undefined);
  assert.equal(store.getState().actionErrors.web, 'cannot read kernel');

  const stopping = store.getState().run('web', 'forceStop');
  assert.equal(store.getState().actionErrors.web, undefined);
  const stop = await script.next('vm.stop');
  assert.deepEqual(stop.params, { vm: 'web', force: true });
  stop.resolve(info('web', 'web', 'stopped'));
  await stopping;

  const deleting = store.getState().run('web', 'delete');
  (await script.next('vm.delete')).resolve({ id: 'web' });
  await deleting;
  assert.deepEqual(store.getState().vms, []);
});

test('a failed load is an error state with the reason', async () => {
  const other = scriptedTransport();
  const failing = createVmStore(new VireoClient(other.transport));
  const loading = failing.getState().load();
  (await other.next('events.subscribe')).reject(new Error('daemon gone'));
  await loading;
  assert.equal(failing.getState().phase, 'error');
  assert.equal(failing.getState().error, 'daemon gone');
});

test("a create that copies an image follows its own copy's progress and runs once at a time", async () => {
  const { store, script } = await loadedStore([]);
  const params = { name: 'db', disks: [{ create: { from: '/images/root.raw' } }] };
  const creating = store.getState().create(params);
  const call = await script.next('vm.create');
  const { progressToken, ...sent } = call.params as { progressToken?: string };
  assert.deepEqual(sent, params);
  assert.ok(progressToken, 'a copy asks for progress events');
  assert.deepEqual(store.getState().pending, { token: progressToken, copied: undefined });

  await assert.rejects(store.getState().create({ name: 'again' }), /still being saved/);
  assert.equal(script.calls.length, 0, 'the second create never reached the daemon');

  const progress = { kind: 'progress', vm: 'db', operation: 'copy-disks', total: 4096 };
  script.notify('event', { ...progress, done: 1024, token: 'someone else' });
  script.notify('event', { ...progress, done: 2048 });
  assert.equal(store.getState().pending?.copied, undefined, "others' progress is not ours");
  script.notify('event', { ...progress, done: 1024, token: progressToken });
  assert.deepEqual(store.getState().pending?.copied, { done: 1024, total: 4096 });
  script.notify('event', { ...progress, done: 4096, token: progressToken });
  assert.deepEqual(store.getState().pending?.copied, { done: 4096, total: 4096 });

  call.resolve(info('db', 'db'));
  assert.equal((await creating).spec.id, 'db');
  assert.equal(store.getState().pending, undefined);
  assert.deepEqual(
    store.getState().vms.map((vm) => vm.spec.id),
    ['db'],
  );
});

test('a failed copy ends the pending create with the error; one without copies asks for no progress', async () => {
  const { store, script } = await loadedStore([]);
  const failing = store.getState().create({ name: 'db', disks: [{ create: { from: '/nope.raw' } }] });
  (await script.next('vm.create')).reject(
    new ApiError(ErrorCode.invalidParams, "cannot read '/nope.raw': ENOENT"),
  );
  await assert.rejects(failing, /cannot read '\/nope.raw'/);
  assert.equal(store.getState().pending, undefined);

  const blank = store.getState().create({ name: 'web', disks: [{ create: { sizeBytes: 1024 ** 3 } }] });
  const call = await script.next('vm.create');
  assert.equal((call.params as { progressToken?: string }).progressToken, undefined);
  assert.deepEqual(store.getState().pending, { token: undefined, copied: undefined });
  call.resolve(info('web', 'web'));
  await blank;

  const updating = store.getState().update('web', { disks: [{ create: { from: '/images/data.raw' } }] });
  const update = await script.next('vm.update');
  assert.equal((update.params as { progressToken?: string }).progressToken, store.getState().pending?.token);
  assert.ok(store.getState().pending?.token);
  update.resolve(info('web', 'web'));
  await updating;
  assert.equal(store.getState().pending, undefined);
});
