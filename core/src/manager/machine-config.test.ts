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
    spec({ boot: { kind: 'kernel', kernel, cmdline: 'quiet' }, disks: [{ path: disk, readonly: true }] }),
    material,
  );
  assert.equal(config.cmdline, 'quiet');
  assert.deepEqual(config.disks, [{ path: disk, readOnly: true }]);
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
