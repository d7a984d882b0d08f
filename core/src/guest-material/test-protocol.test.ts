import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  initReady,
  MAX_TEST_PARAMETER_LENGTH,
  parseTestExit,
  testDiskImage,
  testDiskParameter,
  testScriptParameter,
} from './test-protocol.js';

test('a test script travels as base64 in vireo.test= and decodes back to the same bytes', () => {
  const script = 'echo "héllo $((6*7))"\nexit 3\n';
  const parameter = testScriptParameter(script);
  assert.match(parameter, /^vireo\.test=[A-Za-z0-9+/=]+$/, 'no spaces: one kernel parameter');
  assert.equal(Buffer.from(parameter.slice('vireo.test='.length), 'base64').toString('utf8'), script);
});

test('an empty script, or one too long for the kernel command line, is refused', () => {
  assert.throws(() => testScriptParameter('x'.repeat(MAX_TEST_PARAMETER_LENGTH)), /test disk/);
  assert.throws(() => testScriptParameter(' \n'), /empty/);
  assert.equal(testDiskParameter(), 'vireo.testdisk=vda');
  assert.throws(() => testDiskParameter('vda b'), RangeError);
});

test('markers are recognised only on lines of their own; the last exit status wins', () => {
  assert.equal(initReady('boot...\r\nVIREO-INIT-READY\r\n'), true);
  assert.equal(initReady('echo VIREO-INIT-READY-not'), false);
  assert.equal(parseTestExit('VIREO-INIT-READY\nrunning\n'), undefined);
  assert.equal(parseTestExit('x\nVIREO-TEST-EXIT=0\r\n'), 0);
  assert.equal(parseTestExit('VIREO-TEST-EXIT=1\nVIREO-TEST-EXIT=42\n[ 1.0] reboot'), 42);
  assert.equal(parseTestExit('echo VIREO-TEST-EXIT=9'), undefined);
});

test('a test disk image is a ustar archive in whole sectors that tar extracts', () => {
  const image = testDiskImage({
    'vireo-test.sh': 'cat data/input.txt\nexit 0\n',
    'data/input.txt': 'payload',
    'data/blob.bin': new Uint8Array([0, 1, 2, 255]),
  });
  assert.equal(image.length % 512, 0);
  assert.equal(new TextDecoder().decode(image.subarray(257, 262)), 'ustar');
  const tar = spawnSync('tar', ['--version']);
  if (tar.status !== 0) return; // the structure checks above still ran
  const dir = mkdtempSync(join(tmpdir(), 'vireo-testdisk-'));
  try {
    writeFileSync(join(dir, 'disk.img'), image);
    const listing = spawnSync('tar', ['-tvf', join(dir, 'disk.img')], { encoding: 'utf8' });
    assert.equal(listing.status, 0, listing.stderr);
    assert.match(listing.stdout, /^-rwxr-xr-x .* vireo-test\.sh$/m);
    assert.match(listing.stdout, /^drwxr-xr-x .* data\/$/m);
    const extract = spawnSync('tar', ['-xf', join(dir, 'disk.img'), '-C', dir], { encoding: 'utf8' });
    assert.equal(extract.status, 0, extract.stderr);
    assert.equal(readFileSync(join(dir, 'data/input.txt'), 'utf8'), 'payload');
    assert.deepEqual([...readFileSync(join(dir, 'data/blob.bin'))], [0, 1, 2, 255]);
    // The guest extracts with busybox tar: check that one too where it is installed.
    const busybox = spawnSync('busybox', ['tar', '-tf', join(dir, 'disk.img')], { encoding: 'utf8' });
    if (busybox.status === 0) assert.match(busybox.stdout, /^vireo-test\.sh$/m);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('test disk paths must stay inside the archive', () => {
  assert.throws(() => testDiskImage({ '/etc/passwd': 'x' }), /relative/);
  assert.throws(() => testDiskImage({ '../x': 'x' }), /relative/);
  assert.throws(() => testDiskImage({ ['a'.repeat(101)]: 'x' }), /too long/);
});
