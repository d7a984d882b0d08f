import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { activateDevice, waitFor } from '../pci/test-context.js';
import type { TestDriver } from '../queue/test-driver.js';
import { VIRTIO_BLK_F_RO, VirtioBlock } from './device.js';
import { BlockRequestType, BlockStatus } from './request.js';

const dir = mkdtempSync(join(tmpdir(), 'vireo-blk-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let counter = 0;
function image(bytes: Uint8Array): string {
  const path = join(dir, `disk${counter++}.img`);
  writeFileSync(path, bytes);
  return path;
}

function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

function header(type: number, sector: number): Uint8Array {
  const bytes = new Uint8Array(16);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, type, true);
  v.setBigUint64(8, BigInt(sector), true);
  return bytes;
}

function segment(sector: number, sectors: number, flags = 0): Uint8Array {
  const bytes = new Uint8Array(16);
  const v = new DataView(bytes.buffer);
  v.setBigUint64(0, BigInt(sector), true);
  v.setUint32(8, sectors, true);
  v.setUint32(12, flags, true);
  return bytes;
}

/** Adds a request, kicks, and waits for its used element; returns status, used length and the writable buffers. */
async function request(
  device: VirtioBlock,
  driver: TestDriver,
  readable: Uint8Array[],
  writableLengths: number[],
  options: { indirect?: boolean } = {},
) {
  const added = driver.addChain(readable, writableLengths, options);
  device.queueNotify(0);
  const used = await waitFor('used element', () => driver.takeUsed());
  assert.equal(used.id, added.head);
  const last = added.writable.at(-1);
  const status = last ? driver.memory.readU8(last.addr + last.len - 1) : undefined;
  const data = added.writable.map((w) => driver.memory.read(w.addr, w.len));
  return { status, len: used.len, data };
}

test('read, write and flush move bytes between the file and guest RAM', async () => {
  const original = pattern(64 * 1024, 7);
  const path = image(original);
  const device = new VirtioBlock({ path });
  const h = activateDevice(device);
  const driver = h.drivers[0]!;
  assert.equal(device.capacitySectors, 128);

  const r = await request(device, driver, [header(BlockRequestType.in, 2)], [1024, 1]);
  assert.equal(r.status, BlockStatus.ok);
  assert.equal(r.len, 1025);
  assert.deepEqual(r.data[0], original.subarray(1024, 2048));

  const fresh = pattern(1536, 99);
  const w = await request(
    device,
    driver,
    [header(BlockRequestType.out, 10), fresh.subarray(0, 512), fresh.subarray(512)],
    [1],
    {
      indirect: false,
    },
  );
  assert.equal(w.status, BlockStatus.ok);
  assert.equal(w.len, 1);
  const f = await request(device, driver, [header(BlockRequestType.flush, 0)], [1]);
  assert.equal(f.status, BlockStatus.ok);
  const onDisk = readFileSync(path);
  assert.deepEqual(new Uint8Array(onDisk.subarray(5120, 5120 + 1536)), fresh);
  assert.deepEqual(new Uint8Array(onDisk.subarray(0, 5120)), original.subarray(0, 5120));
  assert.ok(h.interrupts.length > 0, 'completions interrupt the driver');
  assert.equal(device.metrics.bytesWritten, 1536);
  device.close();
});

test('requests past the end, partial sectors and unknown types fail alone', async () => {
  const device = new VirtioBlock({ path: image(new Uint8Array(4096)) });
  const driver = activateDevice(device).drivers[0]!;
  const past = await request(device, driver, [header(BlockRequestType.in, 7)], [1024, 1]);
  assert.equal(past.status, BlockStatus.ioError);
  const huge = await request(device, driver, [header(BlockRequestType.in, 2 ** 52)], [512, 1]);
  assert.equal(huge.status, BlockStatus.ioError);
  const partial = await request(device, driver, [header(BlockRequestType.out, 0), new Uint8Array(100)], [1]);
  assert.equal(partial.status, BlockStatus.ioError);
  const unknown = await request(device, driver, [header(77, 0)], [1]);
  assert.equal(unknown.status, BlockStatus.unsupported);
  const shortHeader = await request(device, driver, [new Uint8Array(8)], [1]);
  assert.equal(shortHeader.status, BlockStatus.ioError);
  const noStatus = await request(device, driver, [header(BlockRequestType.in, 0)], []);
  assert.equal(noStatus.len, 0, 'a chain without a writable byte is completed empty');
  const ok = await request(device, driver, [header(BlockRequestType.in, 0)], [512, 1]);
  assert.equal(ok.status, BlockStatus.ok, 'the device still works');
  assert.equal(device.metrics.malformed, 3);
  device.close();
});

test('GET_ID returns the serial, NUL-padded to 20 bytes', async () => {
  const device = new VirtioBlock({ path: image(new Uint8Array(4096)), serial: 'vireo-disk-1' });
  const driver = activateDevice(device).drivers[0]!;
  const r = await request(device, driver, [header(BlockRequestType.getId, 0)], [20, 1]);
  assert.equal(r.status, BlockStatus.ok);
  assert.equal(r.len, 21);
  assert.equal(Buffer.from(r.data[0]!).toString('latin1').replace(/\0+$/, ''), 'vireo-disk-1');
  device.close();
});

test('discard and write-zeroes punch holes that read back as zeros', async () => {
  const size = 1 << 20;
  const path = image(pattern(size, 3));
  const device = new VirtioBlock({ path });
  const driver = activateDevice(device).drivers[0]!;
  const blocksBefore = statSync(path).blocks;
  const d = await request(device, driver, [header(BlockRequestType.discard, 0), segment(0, 256)], [1]);
  assert.equal(d.status, BlockStatus.ok);
  const z = await request(
    device,
    driver,
    [header(BlockRequestType.writeZeroes, 0), segment(512, 8, 1), segment(1000, 3)],
    [1],
  );
  assert.equal(z.status, BlockStatus.ok);
  const onDisk = readFileSync(path);
  assert.ok(onDisk.subarray(0, 256 * 512).every((b) => b === 0));
  assert.ok(onDisk.subarray(512 * 512, 520 * 512).every((b) => b === 0));
  assert.ok(onDisk.subarray(1000 * 512, 1003 * 512).every((b) => b === 0));
  assert.deepEqual(
    new Uint8Array(onDisk.subarray(1003 * 512, 1004 * 512)),
    pattern(size, 3).subarray(1003 * 512, 1004 * 512),
  );
  assert.equal(onDisk.length, size, 'the file keeps its size');
  assert.ok(statSync(path).blocks < blocksBefore, 'blocks were deallocated');
  const bad = await request(device, driver, [header(BlockRequestType.discard, 0), segment(2040, 100)], [1]);
  assert.equal(bad.status, BlockStatus.ioError, 'a range past the end');
  const flags = await request(device, driver, [header(BlockRequestType.discard, 0), segment(0, 8, 1)], [1]);
  assert.equal(flags.status, BlockStatus.ioError, 'discard with the unmap flag is malformed');
  device.close();
});

test('a read-only disk refuses writes, discards and write-zeroes and offers VIRTIO_BLK_F_RO', async () => {
  const original = pattern(8192, 5);
  const path = image(original);
  const device = new VirtioBlock({ path, readOnly: true });
  assert.ok(device.deviceFeatures & (1n << BigInt(VIRTIO_BLK_F_RO)));
  const driver = activateDevice(device).drivers[0]!;
  const w = await request(device, driver, [header(BlockRequestType.out, 0), new Uint8Array(512)], [1]);
  assert.equal(w.status, BlockStatus.ioError);
  const d = await request(device, driver, [header(BlockRequestType.writeZeroes, 0), segment(0, 8)], [1]);
  assert.equal(d.status, BlockStatus.ioError);
  const r = await request(device, driver, [header(BlockRequestType.in, 0)], [512, 1]);
  assert.equal(r.status, BlockStatus.ok);
  assert.deepEqual(new Uint8Array(readFileSync(path)), original);
  device.close();
});

test('many requests in flight complete, each with its own data', async () => {
  const original = pattern(256 * 1024, 11);
  const device = new VirtioBlock({ path: image(original) });
  const h = activateDevice(device);
  const driver = h.drivers[0]!;
  const added = [];
  for (let i = 0; i < 100; i++)
    added.push(driver.addChain([header(BlockRequestType.in, i * 4)], [2048, 1], { indirect: i % 2 === 0 }));
  device.queueNotify(0);
  const seen = new Map<number, number>();
  await waitFor('100 completions', () => {
    for (let u = driver.takeUsed(); u; u = driver.takeUsed()) seen.set(u.id, u.len);
    return seen.size === 100 ? true : undefined;
  });
  assert.deepEqual(h.logs, []);
  for (const [i, a] of added.entries()) {
    assert.equal(seen.get(a.head), 2049);
    assert.deepEqual(
      driver.memory.read(a.writable[0]!.addr, 2048),
      original.subarray(i * 2048, (i + 1) * 2048),
    );
  }
  assert.ok(device.metrics.maxInFlight > 1, 'requests overlapped');
  assert.ok(device.metrics.maxInFlight <= 64);
  device.close();
});

test('capacity changes are announced with a config interrupt', () => {
  const path = image(new Uint8Array(4096));
  const device = new VirtioBlock({ path });
  const h = activateDevice(device);
  truncateSync(path, 8192);
  assert.equal(device.refreshCapacity(), 16);
  assert.equal(h.configChanges, 1);
  const config = new Uint8Array(8);
  device.readConfig(0, config);
  assert.equal(new DataView(config.buffer).getBigUint64(0, true), 16n);
  assert.equal(device.refreshCapacity(), 16);
  assert.equal(h.configChanges, 1);
  device.close();
});

test('a host-side resize is noticed while the driver runs', async () => {
  const path = image(new Uint8Array(4096));
  const device = new VirtioBlock({ path, capacityPollMs: 10 });
  const h = activateDevice(device);
  truncateSync(path, 1 << 20);
  await waitFor('config change', () => (h.configChanges > 0 ? true : undefined));
  assert.equal(device.capacitySectors, 2048);
  device.close();
});

test('completions after a reset do not reach the rings', async () => {
  const device = new VirtioBlock({ path: image(new Uint8Array(1 << 20)) });
  const h = activateDevice(device);
  const driver = h.drivers[0]!;
  for (let i = 0; i < 8; i++) driver.addChain([header(BlockRequestType.in, i)], [4096, 1]);
  device.queueNotify(0);
  device.reset();
  await device.quiesce();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(driver.takeUsed(), undefined);
  device.close();
});

test('an O_DIRECT disk reads and writes the same bytes (unaligned buffers through the page cache)', async () => {
  const original = pattern(64 * 1024, 3);
  const path = image(original);
  const device = new VirtioBlock({ path, direct: true });
  const h = activateDevice(device);
  const driver = h.drivers[0]!;
  const r = await request(device, driver, [header(BlockRequestType.in, 8)], [4096, 1]);
  assert.equal(r.status, BlockStatus.ok);
  assert.deepEqual(r.data[0], original.subarray(4096, 8192));
  const fresh = pattern(4096, 77);
  const w = await request(device, driver, [header(BlockRequestType.out, 16), fresh], [1]);
  assert.equal(w.status, BlockStatus.ok);
  const back = await request(device, driver, [header(BlockRequestType.in, 16)], [4096, 1]);
  assert.deepEqual(back.data[0], fresh);
  // The test driver's buffers are 16-byte aligned: O_DIRECT refused each request once, and the
  // retry went straight to the page cache (not to O_DIRECT a second time).
  assert.equal(device.metrics.directFallbacks, 3);
  assert.deepEqual(h.logs, []);
  device.close();
  assert.deepEqual(new Uint8Array(readFileSync(path).subarray(8192, 12288)), fresh);
});

test('a read the file cannot fill (it shrank under the guest) completes with zeros past its end', async () => {
  const original = pattern(16 * 1024, 9);
  const path = image(original);
  const device = new VirtioBlock({ path, capacityPollMs: 0 });
  const h = activateDevice(device);
  truncateSync(path, 10 * 1024); // the device still believes 32 sectors
  const r = await request(device, h.drivers[0]!, [header(BlockRequestType.in, 16)], [4096, 1]);
  assert.equal(r.status, BlockStatus.ok);
  assert.equal(r.len, 4097);
  assert.deepEqual(r.data[0]!.subarray(0, 2048), original.subarray(8192, 10240));
  assert.ok(r.data[0]!.subarray(2048).every((b) => b === 0));
  assert.equal(device.metrics.bytesRead, 4096);
  assert.deepEqual(h.logs, []);
  device.close();
});

test('completions take the requests the driver queued meanwhile, without waiting for a kick', async () => {
  const original = pattern(64 * 1024, 13);
  const device = new VirtioBlock({ path: image(original) });
  const h = activateDevice(device);
  const driver = h.drivers[0]!;
  const first = driver.addChain([header(BlockRequestType.in, 0)], [4096, 1]);
  device.queueNotify(0);
  // Queued while the first is in flight, and never kicked.
  const second = driver.addChain([header(BlockRequestType.in, 8)], [4096, 1]);
  const seen = new Set<number>();
  await waitFor('both completions', () => {
    for (let u = driver.takeUsed(); u; u = driver.takeUsed()) seen.add(u.id);
    return seen.size === 2 ? true : undefined;
  });
  assert.ok(seen.has(first.head) && seen.has(second.head));
  assert.deepEqual(driver.memory.read(second.writable[0]!.addr, 4096), original.subarray(4096, 8192));
  device.close();
});

test('a ring broken while reads are in flight stops the device with NEEDS_RESET and nothing escapes', async () => {
  const original = pattern(64 * 1024, 17);
  const device = new VirtioBlock({ path: image(original) });
  const h = activateDevice(device);
  const driver = h.drivers[0]!;
  for (let i = 0; i < 8; i++) driver.addChain([header(BlockRequestType.in, i * 8)], [4096, 1]);
  device.queueNotify(0);
  // avail.idx jumps by more than the queue size: found when completions drain the ring.
  driver.setAvailIdx(driver.availIndex + 1000);
  await waitFor('needs reset', () => (h.needsReset.length > 0 ? true : undefined));
  assert.match(h.needsReset[0]!, /avail/i);
  await device.quiesce(); // every read in flight came back
  device.reset(); // what the transport does on NEEDS_RESET
  const used = h.queues[0]!.nextUsed;
  device.queueNotify(0); // no context after reset: ignored
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(h.queues[0]!.nextUsed, used);
  device.close();
});

test('the libuv pool engine moves the same bytes as io_uring', async () => {
  const original = pattern(16 * 1024, 5);
  const path = image(original);
  const device = new VirtioBlock({ path, engine: 'pool' });
  assert.match(device.engine, /^pool/);
  const h = activateDevice(device);
  const r = await request(device, h.drivers[0]!, [header(BlockRequestType.in, 4)], [2048, 1]);
  assert.equal(r.status, BlockStatus.ok);
  assert.deepEqual(r.data[0], original.subarray(2048, 4096));
  device.close();
});
