import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VmCreateParams } from '../../../core/src/api/schema.js';
import {
  checkForm,
  copiesImages,
  emptyForm,
  errorsOfStep,
  fieldNamedBy,
  formFromSpec,
  type WizardForm,
} from './wizard.js';

const GIB = 1024 ** 3;
const host = { memoryBytes: 4 * GIB, cpus: 2 };

function form(patch: Partial<WizardForm>): WizardForm {
  return { ...emptyForm(), name: 'web', ...patch };
}

test('the built-in guest with defaults gives params the schema accepts', () => {
  const { params, errors } = checkForm(form({}), { host });
  assert.deepEqual(errors, {});
  assert.ok(params);
  assert.deepEqual(VmCreateParams.parse(params).boot, { kind: 'default' });
  assert.equal(params.memoryBytes, 512 * 1024 * 1024);
});

test("the schema's messages land on the fields people typed in", () => {
  const { params, errors } = checkForm(
    form({
      name: ' padded',
      source: 'kernel',
      kernel: 'relative/bzImage',
      cpus: '0',
      memory: '33M',
      network: 'tap',
      tap: 'a name that is far too long',
      mac: '01:00:00:00:00:01',
    }),
    { host },
  );
  assert.equal(params, undefined);
  assert.equal(errors.name, 'a name does not start or end with spaces');
  assert.equal(errors.kernel, 'must be an absolute path');
  assert.equal(errors.cpus, 'at least 1 CPU');
  assert.equal(errors.memory, 'memory must be a multiple of 2M');
  assert.equal(errors.tap, 'a tap interface name is 1-15 characters');
  assert.equal(errors.mac, 'a MAC address must be unicast');
  assert.match(
    checkForm(form({ network: 'user', forwards: 'tcp:8080:80, 99999:22' })).errors.forwards ?? '',
    /99999/,
  );
  assert.deepEqual(Object.keys(errorsOfStep(errors, 'resources')).sort(), ['cpus', 'memory']);
});

test('text that is not a number or size yet, and the host limits', () => {
  const { errors } = checkForm(form({ cpus: 'two', memory: 'lots' }), { host });
  assert.equal(errors.cpus, 'CPUs is a whole number');
  assert.match(errors.memory ?? '', /not a size/);
  const tooBig = checkForm(form({ cpus: '3', memory: '8G' }), { host }).errors;
  assert.equal(tooBig.memory, 'the host has 4G of memory');
  const odd = checkForm(form({ memory: '32G' }), { host: { memoryBytes: 24683656 * 1024, cpus: 2 } }).errors;
  assert.equal(odd.memory, 'the host has 23.5G of memory');
  assert.equal(tooBig.cpus, 'the host has 2 CPUs');
  assert.equal(checkForm(form({}), { takenNames: ['web'] }).errors.name, "a VM named 'web' already exists");
});

test('disks: new blank ones by size, existing ones by path; a disk image comes first', () => {
  const { params, errors } = checkForm(
    form({
      source: 'image',
      image: '/images/root.raw',
      kernel: '/boot/vmlinuz',
      disks: [
        { kind: 'new', size: '8G', direct: false },
        { kind: 'existing', path: 'data.img', readonly: true, copy: false, direct: false },
        { kind: 'new', size: '1000', direct: false },
      ],
    }),
  );
  assert.equal(params, undefined);
  assert.equal(errors['disks.1.path'], 'must be an absolute path');
  assert.equal(errors['disks.2.size'], 'a new disk is at least 1M');
  assert.equal(errors.image, undefined);

  const ok = checkForm(
    form({
      source: 'image',
      image: '/images/root.raw',
      kernel: '/boot/vmlinuz',
      imageCopy: false,
      disks: [
        { kind: 'new', size: '8G', direct: true },
        { kind: 'existing', path: '/images/data.raw', readonly: false, copy: false, direct: true },
      ],
    }),
  );
  assert.deepEqual(ok.params?.disks, [
    { path: '/images/root.raw', readonly: false, format: 'raw', direct: false },
    { create: { sizeBytes: 8 * GIB }, direct: true },
    { path: '/images/data.raw', readonly: false, format: 'raw', direct: true },
  ]);
  assert.equal(ok.params?.boot?.kind, 'kernel');
  const missing = checkForm(form({ source: 'image', image: '', kernel: '/k' })).errors;
  assert.ok(missing.image, 'an empty image path is an error on the image field');
});

test('a spec comes back as the form it was made from', () => {
  const { params } = checkForm(
    form({
      source: 'kernel',
      kernel: '/k',
      initrd: '/i',
      cmdline: 'quiet',
      cpus: '2',
      memory: '1G',
      network: 'user',
      forwards: '8022:22 udp:0.0.0.0:5353:53',
    }),
  );
  const spec = {
    ...VmCreateParams.parse(params),
    disks: [{ path: '/d.img', readonly: true, format: 'raw' as const, direct: true }],
    version: 1 as const,
    id: 'web',
    createdAt: '2026-01-01T00:00:00Z',
    updatedAt: '2026-01-01T00:00:00Z',
  };
  const back = formFromSpec(spec);
  assert.equal(back.source, 'kernel');
  assert.equal(back.initrd, '/i');
  assert.equal(back.memory, '1G');
  assert.equal(back.network, 'user');
  assert.equal(
    back.forwards,
    'tcp:127.0.0.1:8022:22, udp:0.0.0.0:5353:53',
    'forwards survive a settings edit',
  );
  assert.deepEqual(back.disks, [
    { kind: 'existing', path: '/d.img', readonly: true, copy: false, direct: true },
  ]);
  assert.deepEqual(checkForm(back).errors, {});
});

test('an existing image is copied into the VM folder unless attached in place', () => {
  const image = form({ source: 'image', image: ' /images/root.raw ', kernel: '/boot/vmlinuz' });
  assert.equal(emptyForm().imageCopy, true, 'a disk image is copied by default');
  const copied = checkForm(image).params;
  assert.deepEqual(copied?.disks, [{ create: { from: '/images/root.raw' }, direct: false }]);
  assert.ok(copied && copiesImages(copied));
  assert.ok(copied && VmCreateParams.safeParse(copied).success);
  const inPlace = checkForm({ ...image, imageCopy: false }).params;
  assert.ok(inPlace && !copiesImages(inPlace));

  const rows = checkForm(
    form({
      disks: [
        { kind: 'existing', path: '/images/data.raw', readonly: true, copy: true, direct: false },
        { kind: 'existing', path: 'relative.raw', readonly: false, copy: true, direct: false },
        { kind: 'existing', path: '/images/shared.raw', readonly: true, copy: false, direct: false },
      ],
    }),
  );
  assert.deepEqual(rows.errors, { 'disks.1.path': 'must be an absolute path' });
  const fixed = checkForm(
    form({
      disks: [
        { kind: 'existing', path: '/images/data.raw', readonly: true, copy: true, direct: false },
        { kind: 'existing', path: '/images/shared.raw', readonly: true, copy: false, direct: false },
      ],
    }),
  );
  assert.deepEqual(fixed.params?.disks, [
    { create: { from: '/images/data.raw' }, direct: false },
    { path: '/images/shared.raw', readonly: true, format: 'raw', direct: false },
  ]);
});

test("a failed copy's error goes to the field of the image it names", () => {
  const named = form({
    source: 'image',
    image: '/images/root.raw',
    disks: [
      { kind: 'new', size: '1G', direct: false },
      { kind: 'existing', path: '/images/data.raw', readonly: false, copy: true, direct: false },
    ],
  });
  assert.equal(fieldNamedBy(named, "cannot read '/images/root.raw': EACCES"), 'image');
  assert.equal(
    fieldNamedBy(named, "copying '/images/data.raw' failed: ENOSPC: no space left on device, write"),
    'disks.1.path',
  );
  assert.equal(fieldNamedBy(named, "cannot read '/images/root.raw.bak': ENOENT"), undefined);
  assert.equal(
    fieldNamedBy({ ...named, source: 'default' }, "cannot read '/images/root.raw': EACCES"),
    undefined,
  );
});
