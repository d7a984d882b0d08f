import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type GuestManifest, loadGuestMaterial, manifestPath, readGuestMaterial } from './index.js';

function fixture() {
  const dir = mkdtempSync(join(tmpdir(), 'vireo-material-'));
  const file = (name: string) => {
    const path = join(dir, name);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, name);
    return path;
  };
  file('modules/modules.dep');
  const manifest: GuestManifest = {
    version: 2,
    builtAt: '2026-01-01T00:00:00Z',
    debianKernel: {
      package: 'linux-image-6.1.0-1-amd64',
      version: '6.1.1-1',
      release: '6.1.0-1-amd64',
      bzImage: file('vmlinuz'),
      vmlinux: file('vmlinux'),
      modules: join(dir, 'modules'),
    },
    smallKernel: {
      sourcePackage: 'linux-source-6.1',
      version: '6.1.1-1',
      configHash: 'abc',
      release: '6.1.1',
      bzImage: file('small-bzImage'),
      vmlinux: file('small-vmlinux'),
      config: file('small-config'),
    },
    initramfs: file('initramfs.cpio'),
    initramfsGzip: file('initramfs.cpio.gz'),
    busybox: { version: '1:1.35.0-4' },
  };
  const path = join(dir, 'manifest.json');
  const write = (value: unknown) => writeFileSync(path, JSON.stringify(value));
  write(manifest);
  return { dir, path, manifest, write, cleanup: () => rmSync(dir, { recursive: true }) };
}

test('reads a manifest and names the default guest: the small bzImage with the uncompressed initramfs', () => {
  const { path, manifest, cleanup } = fixture();
  try {
    const material = loadGuestMaterial(path);
    assert.ok(material);
    assert.equal(material.defaultGuest.kernel, manifest.smallKernel.bzImage);
    assert.equal(material.defaultGuest.initrd, manifest.initramfs);
    assert.equal(material.debianKernel.release, '6.1.0-1-amd64');
    assert.equal(material.busybox.version, '1:1.35.0-4');
  } finally {
    cleanup();
  }
});

test('a file the manifest names that is gone or empty means not built, and the reason names it', () => {
  const { path, manifest, cleanup } = fixture();
  try {
    rmSync(manifest.initramfsGzip);
    assert.equal(loadGuestMaterial(path), undefined);
    const result = readGuestMaterial(path);
    assert.ok('reason' in result);
    assert.match(result.reason, /initramfs\.cpio\.gz/);

    writeFileSync(manifest.initramfsGzip, '');
    assert.equal(loadGuestMaterial(path), undefined, 'an empty file is as good as none');

    writeFileSync(manifest.initramfsGzip, 'x');
    rmSync(join(manifest.debianKernel.modules, 'modules.dep'));
    assert.match((readGuestMaterial(path) as { reason: string }).reason, /modules\.dep/);
  } finally {
    cleanup();
  }
});

test('a malformed, older or relative-path manifest is refused with a reason', () => {
  const { dir, path, manifest, write, cleanup } = fixture();
  try {
    write({ ...manifest, version: 1 });
    assert.match((readGuestMaterial(path) as { reason: string }).reason, /version 2/);
    write({ ...manifest, initramfs: 'initramfs.cpio' });
    assert.match(
      (readGuestMaterial(path) as { reason: string }).reason,
      /initramfs: must be an absolute path/,
    );
    writeFileSync(path, '{ half');
    assert.match((readGuestMaterial(path) as { reason: string }).reason, /not readable JSON/);
    assert.match((readGuestMaterial(join(dir, 'absent.json')) as { reason: string }).reason, /no manifest/);
  } finally {
    cleanup();
  }
});

test('the manifest lives under VIREO_CACHE, else the XDG cache, else ~/.cache', () => {
  assert.equal(manifestPath({ VIREO_CACHE: '/c' }), '/c/guest/manifest.json');
  assert.equal(manifestPath({ XDG_CACHE_HOME: '/x' }), '/x/vireo/guest/manifest.json');
  assert.match(manifestPath({}), /\/\.cache\/vireo\/guest\/manifest\.json$/);
});
