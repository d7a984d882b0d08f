import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { IoUring } from './io-uring.js';

const dir = mkdtempSync(join(tmpdir(), 'vireo-uring-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const probe = IoUring.open(4);
const skip = typeof probe === 'string' ? `io_uring unavailable: ${probe}` : false;
if (typeof probe !== 'string') probe.close();

function file(bytes: Uint8Array): { path: string; fd: number } {
  const path = join(dir, `f${Math.random().toString(36).slice(2)}`);
  writeFileSync(path, bytes);
  return { path, fd: openSync(path, 'r+') };
}

test('reads and writes scatter/gather buffers at an offset, and fdatasync completes', { skip }, async () => {
  const ring = IoUring.open(8) as IoUring;
  const original = Uint8Array.from({ length: 8192 }, (_, i) => (i * 7) & 0xff);
  const { path, fd } = file(original);
  const a = new Uint8Array(100);
  const b = new Uint8Array(300);
  assert.equal(await ring.read(fd, [a, b], 1000), 400);
  assert.deepEqual([...a, ...b], [...original.subarray(1000, 1400)]);
  assert.equal(await ring.write(fd, [Uint8Array.of(1, 2), Uint8Array.of(3)], 10), 3);
  await ring.fdatasync(fd);
  assert.deepEqual([...readFileSync(path).subarray(9, 14)], [original[9], 1, 2, 3, original[13]]);
  // Past the end: a short read, as pread gives.
  assert.equal(await ring.read(fd, [new Uint8Array(64)], 8192 - 10), 10);
  closeSync(fd);
  ring.close();
});

test('more requests than the ring holds wait their turn and all complete', { skip }, async () => {
  const ring = IoUring.open(4) as IoUring;
  const original = Uint8Array.from({ length: 64 * 512 }, (_, i) => (i >> 9) & 0xff);
  const { fd } = file(original);
  const buffers = Array.from({ length: 64 }, () => new Uint8Array(512));
  const counts = await Promise.all(buffers.map((buffer, i) => ring.read(fd, [buffer], i * 512)));
  assert.deepEqual(counts, Array(64).fill(512));
  buffers.forEach((buffer, i) => {
    assert.ok(buffer.every((byte) => byte === i));
  });
  assert.equal(ring.inFlight, 0);
  closeSync(fd);
  ring.close();
});

test('a failed request rejects with the errno name, and a closed ring refuses more', { skip }, async () => {
  const ring = IoUring.open(4) as IoUring;
  const { fd } = file(new Uint8Array(16));
  closeSync(fd);
  await assert.rejects(ring.read(fd, [new Uint8Array(4)], 0), { code: 'EBADF' });
  ring.close();
  await assert.rejects(ring.read(0, [new Uint8Array(4)], 0), { code: 'EBADF' });
});

test('transfer calls back with the byte count or -errno, never synchronously', { skip }, async () => {
  const ring = IoUring.open(4) as IoUring;
  const original = Uint8Array.from({ length: 4096 }, (_, i) => i & 0xff);
  const { fd } = file(original);
  const buffer = new Uint8Array(512);
  const results: number[] = [];
  let batches = 0;
  ring.afterCompletions = () => {
    batches++;
  };
  const done = new Promise<void>((resolve) => {
    ring.transfer(false, fd, [buffer], 1024, (n) => {
      results.push(n);
      ring.transfer(false, 1_000_000, [buffer], 0, (e) => {
        results.push(e);
        resolve();
      });
    });
  });
  assert.deepEqual(results, [], 'not called before the event loop turns');
  await done;
  assert.deepEqual(results, [512, -constants.errno.EBADF]);
  assert.deepEqual([...buffer], [...original.subarray(1024, 1536)]);
  assert.ok(batches >= 2, 'afterCompletions ran after each batch');
  closeSync(fd);
  ring.close();
  const closed = await new Promise<number>((resolve) => ring.transfer(false, 0, [buffer], 0, resolve));
  assert.equal(closed, -constants.errno.EBADF);
});

test('a burst larger than a submission group goes to the kernel in groups and all completes', {
  skip,
}, async () => {
  const ring = IoUring.open(128) as IoUring;
  const original = Uint8Array.from({ length: 40 * 512 }, (_, i) => (i >> 9) & 0xff);
  const { fd } = file(original);
  const buffers = Array.from({ length: 40 }, () => new Uint8Array(512));
  const counts = await Promise.all(buffers.map((buffer, i) => ring.read(fd, [buffer], i * 512)));
  assert.deepEqual(counts, Array(40).fill(512));
  assert.equal(ring.counters.submits, 5, 'five groups of eight');
  buffers.forEach((buffer, i) => {
    assert.ok(buffer.every((byte) => byte === i));
  });
  closeSync(fd);
  ring.close();
});
