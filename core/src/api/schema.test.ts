import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ErrorCodeName, isMethodName, Methods, VmCreateParams, VmSpec } from './schema.js';

const MIB = 1024 * 1024;

test('create params get defaults and reject unknown fields', () => {
  const parsed = VmCreateParams.parse({ name: 'a' });
  assert.equal(parsed.cpus, 1);
  assert.deepEqual(parsed.network, { mode: 'none' });
  assert.deepEqual(parsed.console, { kind: 'serial', historyBytes: 65536 });
  assert.equal(VmCreateParams.safeParse({ name: 'a', cpu: 2 }).success, false);
});

test('boot, disks and network are checked field by field', () => {
  const bad = VmCreateParams.safeParse({
    name: 'a',
    boot: { kind: 'kernel', kernel: 'relative/bzImage' },
    disks: [{ path: '/d.img', format: 'vmdk' }],
    network: { mode: 'tap', tap: 'tap0', mac: '01:00:00:00:00:01' },
  });
  assert.equal(bad.success, false);
  const paths = bad.error!.issues.map((issue) => issue.path.join('.')).sort();
  assert.deepEqual(paths, ['boot.kernel', 'disks.0.format', 'network.mac']);
  const good = VmCreateParams.parse({
    name: 'a',
    boot: { kind: 'kernel', kernel: '/k', initrd: '/i', cmdline: 'console=ttyS0' },
    disks: [
      { path: '/d.img', readonly: true },
      { path: '/e.img', direct: true },
      { create: { sizeBytes: MIB }, direct: true },
    ],
    network: { mode: 'user', mac: '52:54:00:12:34:56' },
  });
  assert.deepEqual(good.disks, [
    { path: '/d.img', readonly: true, format: 'raw', direct: false },
    { path: '/e.img', readonly: false, format: 'raw', direct: true },
    { create: { sizeBytes: MIB }, readonly: false, direct: true },
  ]);
  const notBoolean = VmCreateParams.safeParse({ name: 'a', disks: [{ path: '/d.img', direct: 'yes' }] });
  assert.deepEqual(
    notBoolean.error?.issues.map((issue) => issue.path.join('.')),
    ['disks.0.direct'],
  );
});

test('names: no control characters, no surrounding spaces', () => {
  assert.equal(VmCreateParams.safeParse({ name: 'Debian 12 (test)' }).success, true);
  assert.equal(VmCreateParams.safeParse({ name: 'a\nb' }).success, false);
  assert.equal(VmCreateParams.safeParse({ name: ' a' }).success, false);
  assert.equal(VmCreateParams.safeParse({ name: '' }).success, false);
});

test('a spec needs its identity and version', () => {
  const settings = VmCreateParams.parse({ name: 'a' });
  const spec = {
    ...settings,
    version: 1,
    id: 'a',
    createdAt: '2026-01-01T00:00:00Z',
    updatedAt: '2026-01-01T00:00:00Z',
  };
  assert.equal(VmSpec.safeParse(spec).success, true);
  assert.equal(VmSpec.safeParse({ ...spec, version: 2 }).success, false);
  assert.equal(VmSpec.safeParse({ ...spec, id: '../etc' }).success, false);
});

test('methods and error codes', () => {
  assert.equal(isMethodName('vm.list'), true);
  assert.equal(isMethodName('toString'), false, 'no prototype names');
  assert.equal(Methods['vm.stop'].params.parse({ vm: 'a' }).timeoutMs, 30_000);
  assert.equal(ErrorCodeName[-32601], 'methodNotFound');
});
