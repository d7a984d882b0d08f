// virtio-blk device throughput: Vireo's device model serving a polling driver (the test driver
// laying out rings in guest RAM, several requests in flight, no interrupts), against the host
// reading the same file directly (dd, and libuv's pool from Node with the same request sizes and
// queue depth). Both read through the page cache (the file is read once first), so the figure is
// what the VMM's data path costs, not the disk.
//
// Not here yet: the same driver as a CPL3 test guest under KVM and under QEMU's virtio-blk-pci
// (issue 4's full comparison); this measures the device side of that path only.
//
// Run: node dist/bench/virtio-blk.js [--size-mib 256] [--seconds 3] [--depth 32]
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, read, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { VirtioBlock } from '../core/src/devices/virtio/block/device.js';
import { BlockRequestType } from '../core/src/devices/virtio/block/request.js';
import type { VirtioDeviceContext } from '../core/src/devices/virtio/pci/device.js';
import { Queue } from '../core/src/devices/virtio/queue/index.js';
import { VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../core/src/devices/virtio/queue/ring-layout.js';
import { layoutRings, TestDriver } from '../core/src/devices/virtio/queue/test-driver.js';
import { GuestMemory } from '../core/src/memory/guest-memory.js';
import { printFigure } from './lib/report.js';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '256' },
    seconds: { type: 'string', default: '3' },
    depth: { type: 'string', default: '32' },
  },
});
const FILE_SIZE = Number(values['size-mib']) * 1024 * 1024;
const SECONDS = Number(values.seconds);
const DEPTH = Number(values.depth);
const MIB = 1024 * 1024;

function makeImage(path: string): void {
  const fd = openSync(path, 'w');
  const chunk = new Uint8Array(MIB);
  for (let done = 0; done < FILE_SIZE; done += MIB) {
    randomFillSync(chunk);
    writeSync(fd, chunk);
  }
  closeSync(fd);
}

function warmCache(path: string): void {
  const fd = openSync(path, 'r');
  const buffer = new Uint8Array(MIB);
  while (readSync(fd, buffer) > 0);
  closeSync(fd);
}

function randomOffset(blockSize: number): number {
  return Math.floor(Math.random() * (FILE_SIZE / blockSize)) * blockSize;
}

/** Host: `depth` reads in flight on libuv's pool, like the device's. Returns bytes/s. */
async function hostReads(path: string, blockSize: number, random: boolean): Promise<number> {
  const fd = openSync(path, 'r');
  const buffers = Array.from({ length: DEPTH }, () => new Uint8Array(blockSize));
  let next = 0;
  let bytes = 0;
  const deadline = performance.now() + SECONDS * 1000;
  const started = performance.now();
  await Promise.all(
    buffers.map(async (buffer) => {
      while (performance.now() < deadline) {
        const position = random ? randomOffset(blockSize) : next;
        next = (next + blockSize) % FILE_SIZE;
        const n = await new Promise<number>((resolve, reject) =>
          read(fd, buffer, 0, blockSize, position, (e, n) => (e ? reject(e) : resolve(n))),
        );
        bytes += n; // after the await: `bytes += await ...` would add to a stale total
      }
    }),
  );
  const rate = bytes / ((performance.now() - started) / 1000);
  closeSync(fd);
  return rate;
}

/** The device: a polling driver keeps `depth` read requests in flight. Returns bytes/s. */
async function deviceReads(path: string, blockSize: number, random: boolean): Promise<number> {
  const ramSize = 2 * DEPTH * blockSize + 8 * MIB;
  const memory = new GuestMemory([{ gpa: 0, bytes: new Uint8Array(new SharedArrayBuffer(ramSize)) }]);
  const device = new VirtioBlock({ path, readOnly: true });
  const queueSize = 256;
  if (DEPTH * 3 > queueSize) throw new Error(`--depth ${DEPTH}: at most ${queueSize / 3}`);
  const queue = new Queue(memory, { maxSize: queueSize });
  const driver = new TestDriver(memory, layoutRings(0x1000, queueSize), 4 * MIB, ramSize);
  const problem = driver.configure(queue, { eventIdx: true, indirect: true });
  if (problem) throw new Error(problem);
  const context: VirtioDeviceContext = {
    memory,
    queues: [queue],
    features: 0n,
    interruptQueue: () => {},
    configChanged: () => {},
    needsReset: (reason) => {
      throw new Error(reason);
    },
    log: (message) => console.error(message),
  };
  device.activate(context);
  // Each in-flight slot owns three descriptors (header, data, status) and fixed buffers, written
  // once; a submit only rewrites the header's sector and publishes (TestDriver.addChain would
  // zero the data buffer on every request, which a real driver does not do).
  const slots = Array.from({ length: DEPTH }, (_, slot) => {
    const header = driver.allocate(16);
    const data = driver.allocate(blockSize);
    const status = driver.allocate(1);
    const first = slot * 3;
    driver.writeDescriptor(first, { addr: header, len: 16, flags: VIRTQ_DESC_F_NEXT, next: first + 1 });
    driver.writeDescriptor(first + 1, {
      addr: data,
      len: blockSize,
      flags: VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE,
      next: first + 2,
    });
    driver.writeDescriptor(first + 2, { addr: status, len: 1, flags: VIRTQ_DESC_F_WRITE, next: 0 });
    memory.writeU32(header, BlockRequestType.in);
    return { head: first, header };
  });
  const slotByHead = new Map(slots.map((s) => [s.head, s]));
  let next = 0;
  let outstanding = 0;
  const submit = (slot: (typeof slots)[number]) => {
    outstanding++;
    const offset = random ? randomOffset(blockSize) : next;
    next = (next + blockSize) % FILE_SIZE;
    memory.writeU64(slot.header + 8, BigInt(offset / 512));
    driver.publish(slot.head);
  };
  for (const slot of slots) submit(slot);
  device.queueNotify(0);
  let bytes = 0;
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  await new Promise<void>((resolve) => {
    const poll = () => {
      let completed = 0;
      for (let used = driver.takeUsed(); used; used = driver.takeUsed()) {
        bytes += used.len - 1;
        completed++;
        outstanding--;
        if (performance.now() < deadline) submit(slotByHead.get(used.id)!);
      }
      if (completed > 0) device.queueNotify(0);
      if (outstanding === 0) {
        resolve();
        return;
      }
      setImmediate(poll);
    };
    poll();
  });
  const rate = bytes / ((performance.now() - started) / 1000);
  await device.quiesce();
  device.close();
  return rate;
}

function ddRate(path: string): number | string {
  const result = spawnSync('dd', [`if=${path}`, 'of=/dev/null', 'bs=1M'], { encoding: 'utf8' });
  if (result.status !== 0) return `dd failed: ${result.stderr.trim()}`;
  const match = /(\d+) bytes .* copied, ([\d.]+) s/.exec(result.stderr);
  return match ? Number(match[1]) / Number(match[2]) : 'dd output not understood';
}

const work = mkdtempSync(join(tmpdir(), 'vireo-bench-blk-'));
try {
  const image = join(work, 'disk.img');
  makeImage(image);
  warmCache(image);
  console.log(
    `virtio-blk device path: ${FILE_SIZE / MIB} MiB image (page cache), queue depth ${DEPTH}, ${SECONDS} s each`,
  );

  const sequential = [
    { name: 'host dd bs=1M', value: ddRate(image) },
    { name: 'host libuv pool 1 MiB', value: await hostReads(image, MIB, false) },
    { name: 'Vireo virtio-blk 1 MiB', value: await deviceReads(image, MIB, false) },
  ].map((row) => ({ ...row, value: typeof row.value === 'number' ? row.value / MIB : row.value }));
  printFigure(
    { title: 'Sequential 1 MiB reads', unit: 'MiB/s', baseline: 'host dd bs=1M', better: 'higher' },
    sequential,
  );

  const random = [
    { name: 'host libuv pool 4 KiB', value: (await hostReads(image, 4096, true)) / 4096 },
    { name: 'Vireo virtio-blk 4 KiB', value: (await deviceReads(image, 4096, true)) / 4096 },
  ];
  printFigure(
    {
      title: 'Random 4 KiB reads',
      unit: 'IOPS',
      baseline: 'host libuv pool 4 KiB',
      better: 'higher',
      digits: 0,
    },
    random,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
