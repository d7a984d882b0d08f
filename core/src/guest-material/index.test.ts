import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadGuestMaterial, manifestPath } from './index.js';

function fixture() {
  const dir = mkdtempSync(join(tmpdir(), 'vireo-material-'));
  const file = (name: string) => {
    const path = join(dir, name);
    writeFileSync(path, name);
    return path;
  };
  const manifest = {
    version: 1,
    debianKernel: { release: '6.1.0-1-amd64', bzImage: file('vmlinuz'), vmlinux: file('vmlinux') },
    smallKernel: { bzImage: file('small-bzImage'), vmlinux: file('small-vmlinux') },
    initramfs: file('initramfs.cpio'),
  };
  const path = join(dir, 'manifest.json');
  writeFileSync(path, JSON.stringify(manifest));
  return { dir, path, manifest };
}

test('reads a manifest and names the default guest', () => {
  const { dir, path, manifest } = fixture();
  try {
    const material = loadGuestMaterial(path);
    assert.equal(material?.defaultGuest.kernel, manifest.smallKernel.bzImage);
    assert.equal(material?.defaultGuest.initrd, manifest.initramfs);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('a missing file or a malformed manifest means not built', () => {
  const { dir, path, manifest } = fixture();
  try {
    rmSync(manifest.initramfs);
    assert.equal(loadGuestMaterial(path), undefined);
    writeFileSync(path, JSON.stringify({ version: 2 }));
    assert.equal(loadGuestMaterial(path), undefined);
    assert.equal(loadGuestMaterial(join(dir, 'absent.json')), undefined);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('the manifest lives under VIREO_CACHE or the XDG cache', () => {
  assert.equal(manifestPath({ VIREO_CACHE: '/c' }), '/c/guest/manifest.json');
  assert.equal(manifestPath({ XDG_CACHE_HOME: '/x' }), '/x/vireo/guest/manifest.json');
});
