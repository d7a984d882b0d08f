import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ApiError, ErrorCode, VmSpec } from '../api/schema.js';
import type { GuestMaterial } from '../guest-material/index.js';
import { machineConfigFromSpec } from './machine-config.js';

const dir = mkdtempSync(join(tmpdir(), 'vireo-machine-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const kernel = join(dir, 'bzImage');
const initrd = join(dir, 'initrd');
const disk = join(dir, 'disk.img');
for (const file of [kernel, initrd, disk]) writeFileSync(file, 'x');

function spec(settings: Record<string, unknown>): VmSpec {
  return VmSpec.parse({
    name: 'vm',
    ...settings,
    version: 1,
    id: 'vm',
    createdAt: '2026-01-01T00:00:00Z',
    updatedAt: '2026-01-01T00:00:00Z',
  });
}

const material = () => ({ defaultGuest: { kernel, initrd } }) as GuestMaterial;

function errorCode(fn: () => unknown): number {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ApiError);
    return error.code;
  }
  assert.fail('expected an error');
}

test('the built-in guest: material kernel and initrd, the default command line for the console kind', () => {
  const config = machineConfigFromSpec(spec({ cpus: 2, memoryBytes: 64 * 1024 * 1024 }), material);
  assert.equal(config.kernel, kernel);
  assert.equal(config.initrd, initrd);
  assert.equal(config.cmdline, 'console=ttyS0 panic=-1');
  assert.equal(config.cpus, 2);
  const virtio = machineConfigFromSpec(spec({ console: { kind: 'virtio' } }), material);
  assert.match(virtio.cmdline, /console=hvc0/);
  assert.equal(virtio.console, 'virtio');
  assert.equal(
    errorCode(() => machineConfigFromSpec(spec({}), () => undefined)),
    ErrorCode.startFailed,
  );
});

test('a kernel boot with disks maps to the MachineConfig; missing files and qcow2 fail clearly', () => {
  const config = machineConfigFromSpec(
    spec({
      boot: { kind: 'kernel', kernel, cmdline: 'quiet' },
      disks: [
        { path: disk, readonly: true },
        { path: disk, direct: true },
      ],
    }),
    material,
  );
  assert.equal(config.cmdline, 'quiet');
  assert.deepEqual(config.disks, [
    { path: disk, readOnly: true, direct: false },
    { path: disk, readOnly: false, direct: true },
  ]);
  assert.equal(
    errorCode(() =>
      machineConfigFromSpec(spec({ boot: { kind: 'kernel', kernel: join(dir, 'nope') } }), material),
    ),
    ErrorCode.startFailed,
  );
  assert.equal(
    errorCode(() => machineConfigFromSpec(spec({ disks: [{ path: join(dir, 'gone.img') }] }), material)),
    ErrorCode.startFailed,
  );
  assert.equal(
    errorCode(() => machineConfigFromSpec(spec({ disks: [{ path: disk, format: 'qcow2' }] }), material)),
    ErrorCode.notSupported,
  );
});

test('network: the spec passes through, with a MAC that stays the same for the VM when none is set', () => {
  const none = machineConfigFromSpec(spec({}), material);
  assert.deepEqual(none.network, { mode: 'none' });
  const forwards = [{ protocol: 'tcp', hostPort: 8022, guestPort: 22 }];
  const first = machineConfigFromSpec(spec({ network: { mode: 'user', forwards } }), material);
  const again = machineConfigFromSpec(spec({ network: { mode: 'user', forwards } }), material);
  assert.equal(first.network.mode, 'user');
  assert.match((first.network as { mac: string }).mac, /^52:54:00(:[0-9a-f]{2}){3}$/);
  assert.deepEqual(first.network, again.network);
  assert.deepEqual((first.network as { forwards: unknown }).forwards, [
    { protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 8022, guestPort: 22 },
  ]);
  const tap = machineConfigFromSpec(
    spec({ network: { mode: 'tap', tap: 'tap0', mac: '52:54:00:00:00:01' } }),
    material,
  );
  assert.deepEqual(tap.network, { mode: 'tap', tap: 'tap0', mac: '52:54:00:00:00:01' });
});
