import assert from 'node:assert/strict';
import {
  closeSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { ApiError, ErrorCode } from '../api/schema.js';
import { slugFromName, VmLibrary } from './library.js';
import { vireoPaths } from './paths.js';

const MIB = 1024 * 1024;
let dataHome: string;
let library: VmLibrary;

beforeEach(() => {
  dataHome = mkdtempSync(join(tmpdir(), 'vireo-library-'));
  library = new VmLibrary(vireoPaths({ XDG_DATA_HOME: dataHome, XDG_RUNTIME_DIR: dataHome }).vmsDir);
});
afterEach(() => rmSync(dataHome, { recursive: true, force: true }));

function apiErrorCode(fn: () => unknown): number {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ApiError, `expected an ApiError, got ${error}`);
    return error.code;
  }
  assert.fail('expected an error');
}

async function asyncApiErrorCode(fn: () => Promise<unknown>): Promise<number> {
  try {
    await fn();
  } catch (error) {
    assert.ok(error instanceof ApiError, `expected an ApiError, got ${error}`);
    return error.code;
  }
  assert.fail('expected an error');
}

describe('VmLibrary', () => {
  test('create writes a complete spec under $XDG_DATA_HOME/vireo/vms/<id>/spec.json with defaults', async () => {
    const spec = await library.create(
      { name: 'Debian 12 (test)' },
      { now: new Date('2026-01-02T03:04:05Z') },
    );
    assert.equal(spec.id, 'debian-12-test');
    const file = join(dataHome, 'vireo', 'vms', 'debian-12-test', 'spec.json');
    const onDisk = JSON.parse(readFileSync(file, 'utf8'));
    assert.deepEqual(onDisk, spec);
    assert.equal(spec.cpus, 1);
    assert.equal(spec.memoryBytes, 512 * 1024 * 1024);
    assert.deepEqual(spec.boot, { kind: 'default' });
    assert.equal(spec.createdAt, '2026-01-02T03:04:05.000Z');
    // No temp files left behind by the atomic write.
    assert.deepEqual(readdirSync(join(dataHome, 'vireo', 'vms', spec.id)), ['spec.json']);
  });

  test('names are unique; ids of similar names get a suffix', async () => {
    await library.create({ name: 'web' });
    assert.equal(await asyncApiErrorCode(() => library.create({ name: 'web' })), ErrorCode.nameTaken);
    assert.equal((await library.create({ name: 'Web' })).id, 'web-2');
  });

  test('invalid settings are rejected with field and reason, nothing written', async () => {
    try {
      await library.create({ name: 'x', cpus: 0, memoryBytes: 1000 });
      assert.fail('expected an error');
    } catch (error) {
      assert.ok(error instanceof ApiError);
      assert.equal(error.code, ErrorCode.invalidParams);
      const paths = [...new Set((error.data as { path: string }[]).map((issue) => issue.path))].sort();
      assert.deepEqual(paths, ['cpus', 'memoryBytes']);
    }
    assert.deepEqual(library.scan(), { specs: [], invalid: [] });
  });

  test('an invalid spec.json is reported with field + reason and never rewritten or dropped', async () => {
    const good = await library.create({ name: 'good' });
    const badDir = join(dataHome, 'vireo', 'vms', 'bad');
    mkdirSync(badDir);
    const badText = JSON.stringify({ ...good, id: 'bad', name: 'bad', cpus: -1 });
    writeFileSync(join(badDir, 'spec.json'), badText);
    const notJsonDir = join(dataHome, 'vireo', 'vms', 'garbage');
    mkdirSync(notJsonDir);
    writeFileSync(join(notJsonDir, 'spec.json'), '{ nope');

    const { specs, invalid } = library.scan();
    assert.deepEqual(
      specs.map((s) => s.id),
      ['good'],
    );
    const bad = invalid.find((entry) => entry.id === 'bad');
    assert.deepEqual(
      bad?.issues.map((issue) => issue.path),
      ['cpus'],
    );
    assert.match(invalid.find((entry) => entry.id === 'garbage')?.issues[0]?.message ?? '', /not JSON/);

    assert.equal(
      apiErrorCode(() => library.get('bad')),
      ErrorCode.invalidSpec,
    );
    assert.equal(await asyncApiErrorCode(() => library.update('bad', { cpus: 2 })), ErrorCode.invalidSpec);
    assert.equal(readFileSync(join(badDir, 'spec.json'), 'utf8'), badText, 'left exactly as it was');
  });

  test('a spec whose id does not match its folder is invalid', async () => {
    const spec = await library.create({ name: 'one' });
    mkdirSync(join(dataHome, 'vireo', 'vms', 'copy'));
    writeFileSync(join(dataHome, 'vireo', 'vms', 'copy', 'spec.json'), JSON.stringify(spec));
    const entry = library.scan().invalid.find((e) => e.id === 'copy');
    assert.equal(entry?.issues[0]?.path, 'id');
  });

  test('update replaces given fields, validates, and keeps the rest', async () => {
    const spec = await library.create({ name: 'a', cpus: 2 }, { now: new Date('2026-01-01T00:00:00Z') });
    const next = await library.update(
      spec.id,
      { memoryBytes: 1024 * 1024 * 1024 },
      { now: new Date('2026-02-01T00:00:00Z') },
    );
    assert.equal(next.cpus, 2);
    assert.equal(next.memoryBytes, 1024 * 1024 * 1024);
    assert.equal(next.updatedAt, '2026-02-01T00:00:00.000Z');
    assert.deepEqual(library.get(spec.id), next);
    assert.equal(
      await asyncApiErrorCode(() => library.update(spec.id, { cpus: 1000 })),
      ErrorCode.invalidParams,
    );
    assert.equal(
      await asyncApiErrorCode(() => library.update(spec.id, { id: 'other' })),
      ErrorCode.invalidParams,
    );
    assert.deepEqual(library.get(spec.id), next);
  });

  test('new blank disks become sparse raw files in the VM folder, beside existing ones kept as given', async () => {
    const existing = join(dataHome, 'existing.img');
    writeFileSync(existing, 'data');
    const spec = await library.create({
      name: 'disks',
      disks: [
        { create: { sizeBytes: 8 * MIB }, direct: true },
        { path: existing, readonly: true },
      ],
    });
    const dir = join(dataHome, 'vireo', 'vms', spec.id);
    assert.deepEqual(spec.disks, [
      { path: join(dir, 'disk-0.raw'), readonly: false, format: 'raw', direct: true },
      { path: existing, readonly: true, format: 'raw', direct: false },
    ]);
    const blank = statSync(join(dir, 'disk-0.raw'));
    assert.equal(blank.size, 8 * MIB);
    assert.ok(blank.blocks * 512 < MIB, 'sparse: no blocks written');
    assert.equal(blank.mode & 0o777, 0o600);

    const next = await library.update(spec.id, {
      disks: [...spec.disks, { create: { sizeBytes: 2 * MIB } }],
    });
    assert.equal(next.disks[2]?.path, join(dir, 'disk-1.raw'), 'a free name beside disk-0.raw');
    assert.equal(statSync(join(dir, 'disk-1.raw')).size, 2 * MIB);

    assert.equal(
      await asyncApiErrorCode(() =>
        library.create({ name: 'odd', disks: [{ create: { sizeBytes: MIB + 1 } }] }),
      ),
      ErrorCode.invalidParams,
    );
    assert.equal(library.scan().specs.length, 1, 'nothing created for the refused VM');
  });

  test('a disk copied from an image: same bytes, holes kept, grown on request, progress to the end', async () => {
    const source = join(dataHome, 'source.raw');
    const fd = openSync(source, 'w');
    const data = Buffer.alloc(3 * MIB, 0x5a);
    writeSync(fd, data, 0, data.length, 8 * MIB);
    ftruncateSync(fd, 16 * MIB);
    closeSync(fd);
    const progress: { id: string; done: number; total: number }[] = [];
    const spec = await library.create(
      {
        name: 'copied',
        disks: [{ create: { from: source } }, { create: { from: source, sizeBytes: 32 * MIB } }],
      },
      { onProgress: (id, step) => progress.push({ id, ...step }) },
    );
    const dir = join(dataHome, 'vireo', 'vms', 'copied');
    assert.deepEqual(
      spec.disks.map((disk) => disk.path),
      [join(dir, 'disk-0.raw'), join(dir, 'disk-1.raw')],
    );
    const copy = readFileSync(join(dir, 'disk-0.raw'));
    assert.ok(copy.equals(readFileSync(source)), 'the same bytes');
    assert.ok(statSync(join(dir, 'disk-0.raw')).blocks * 512 < 8 * MIB, 'the zero ranges stayed holes');
    assert.equal(statSync(join(dir, 'disk-1.raw')).size, 32 * MIB);
    assert.ok(
      readFileSync(join(dir, 'disk-1.raw'))
        .subarray(0, 16 * MIB)
        .equals(copy),
    );
    assert.ok(progress.every((step) => step.id === 'copied' && step.total === 32 * MIB));
    assert.deepEqual(
      progress.map((step) => step.done),
      [...progress.map((step) => step.done)].sort((a, b) => a - b),
      'progress only goes forward',
    );
    assert.equal(progress.at(-1)?.done, 32 * MIB);

    assert.equal(
      await asyncApiErrorCode(() =>
        library.create({ name: 'too-small', disks: [{ create: { from: source, sizeBytes: 2 * MIB } }] }),
      ),
      ErrorCode.invalidParams,
    );
    assert.equal(
      await asyncApiErrorCode(() =>
        library.create({ name: 'no-source', disks: [{ create: { from: join(dataHome, 'missing.raw') } }] }),
      ),
      ErrorCode.invalidParams,
    );
    assert.deepEqual(readdirSync(join(dataHome, 'vireo', 'vms')), ['copied'], 'refused VMs leave nothing');
  });

  test('a VM whose disk is still being copied is not listed, and its name is taken', async () => {
    const source = join(dataHome, 'full.raw');
    writeFileSync(source, Buffer.alloc(32 * MIB, 1));
    const first = library.create({ name: 'busy', disks: [{ create: { from: source } }] });
    // The copy is under way (the first chunk read has not even finished).
    assert.deepEqual(library.scan(), { specs: [], invalid: [] });
    assert.equal(await asyncApiErrorCode(() => library.create({ name: 'busy' })), ErrorCode.nameTaken);
    assert.equal((await first).id, 'busy');
    assert.equal(library.scan().specs.length, 1);
  });

  test('a hand edit of spec.json is picked up (cache keyed on mtime and size)', async () => {
    const spec = await library.create({ name: 'edited' });
    writeFileSync(library.specPath(spec.id), JSON.stringify({ ...spec, cpus: 4 }, null, 2));
    assert.equal(library.get(spec.id).cpus, 4);
  });

  test('resolve finds by id or name; delete removes the folder', async () => {
    const spec = await library.create({ name: 'My VM' });
    assert.equal(library.resolve('my-vm'), spec.id);
    assert.equal(library.resolve('My VM'), spec.id);
    assert.equal(
      apiErrorCode(() => library.resolve('nope')),
      ErrorCode.vmNotFound,
    );
    await library.delete(spec.id);
    assert.deepEqual(readdirSync(join(dataHome, 'vireo', 'vms')), []);
    assert.equal(
      apiErrorCode(() => library.get(spec.id)),
      ErrorCode.vmNotFound,
    );
  });

  test('leftovers of a crash mid-create or mid-delete are removed; VMs are not touched', async () => {
    const kept = await library.create({ name: 'kept' });
    const vms = join(dataHome, 'vireo', 'vms');
    mkdirSync(join(vms, '.creating-half'));
    writeFileSync(join(vms, '.creating-half', 'disk-0.raw'), 'partial');
    mkdirSync(join(vms, '.deleted-old-1'));
    assert.deepEqual((await library.removeLeftovers()).sort(), ['.creating-half', '.deleted-old-1']);
    assert.deepEqual(readdirSync(vms), [kept.id]);
  });

  test('slugFromName', () => {
    assert.equal(slugFromName('  Hello, World!  '), 'hello-world');
    assert.equal(slugFromName('___'), 'vm');
  });
});
