import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GuestMemory } from '../../../memory/guest-memory.js';
import { Reader, Writer } from '../descriptor-utils.js';
import type { DescriptorChain } from './chain.js';
import { Queue } from './queue.js';
import { QueueError } from './queue-error.js';
import {
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_USED_F_NO_NOTIFY,
  vringNeedEvent,
} from './ring-layout.js';
import { layoutRings, TestDriver } from './test-driver.js';

const RAM_SIZE = 0x10_0000;
const HIGH_REGION = 0x20_0000;
const SIZE = 16;
const RINGS = 0x1000;
const BUFFERS = 0x8000;
const BUFFERS_END = 0xf_0000;

function setup(
  options: { eventIdx?: boolean; indirect?: boolean; size?: number; maxIndirect?: number } = {},
) {
  const memory = new GuestMemory([
    { gpa: 0, bytes: new Uint8Array(RAM_SIZE) },
    { gpa: HIGH_REGION, bytes: new Uint8Array(0x1000) },
  ]);
  const size = options.size ?? SIZE;
  const queue = new Queue(memory, {
    maxSize: Math.max(size, SIZE),
    ...(options.maxIndirect === undefined ? {} : { maxIndirectDescriptors: options.maxIndirect }),
  });
  const driver = new TestDriver(memory, layoutRings(RINGS, size), BUFFERS, BUFFERS_END);
  assert.equal(driver.configure(queue, options), undefined);
  return { memory, queue, driver };
}

function expectChain(result: DescriptorChain | QueueError | undefined): DescriptorChain {
  assert.ok(result !== undefined && !(result instanceof QueueError), `expected a chain, got ${result}`);
  return result;
}

function expectError(
  result: DescriptorChain | QueueError | undefined,
  kind: string,
  fatal = false,
): QueueError {
  assert.ok(result instanceof QueueError, `expected a ${kind} error, got ${JSON.stringify(result)}`);
  assert.equal(result.kind, kind, result.message);
  assert.equal(result.fatal, fatal);
  return result;
}

const text = (s: string) => new TextEncoder().encode(s);

describe('Queue: round trips', () => {
  for (const indirect of [false, true]) {
    test(`a request and its response through ${indirect ? 'an indirect table' : 'a direct chain'}`, () => {
      const { memory, queue, driver } = setup({ indirect: true });
      const added = driver.addChain([text('hello '), text('world')], [4, 8], { indirect });
      const chain = expectChain(queue.pop());
      assert.equal(chain.headIndex, added.head);
      assert.equal(chain.indirect, indirect);
      assert.equal(chain.readableLength, 11);
      assert.equal(chain.writableLength, 12);

      const reader = Reader.fromChain(memory, chain);
      assert.equal(new TextDecoder().decode(reader.readBytes(reader.remaining)), 'hello world');
      const writer = Writer.fromChain(memory, chain);
      writer.writeU32(0xa1b2c3d4);
      writer.writeU16(0xbeef);
      queue.addUsed(chain.headIndex, writer.bytesWritten);

      assert.equal(queue.pop(), undefined);
      assert.deepEqual(driver.takeUsed(), { id: added.head, len: 6 });
      assert.equal(driver.takeUsed(), undefined);
      assert.equal(memory.readU32(added.writable[0]!.addr), 0xa1b2c3d4);
      assert.equal(memory.readU16(added.writable[1]!.addr), 0xbeef);
      assert.equal(queue.metrics.chainsPopped, 1);
      assert.equal(queue.metrics.readableBytes, 11);
      assert.equal(queue.metrics.usedBytes, 6);
    });
  }

  test('many requests keep their order and reuse descriptors across the ring', () => {
    const { queue, driver } = setup();
    for (let round = 0; round < 100; round++) {
      const heads = [driver.addChain([text(`r${round}`)], [1]).head, driver.addChain([], [2]).head];
      for (const head of heads) {
        const chain = expectChain(queue.pop());
        assert.equal(chain.headIndex, head);
        queue.addUsed(head, 1);
      }
      assert.equal(driver.takeUsed()?.id, heads[0]);
      assert.equal(driver.takeUsed()?.id, heads[1]);
    }
    assert.equal(queue.nextAvail, 200);
    assert.equal(queue.nextUsed, 200);
    assert.equal(driver.usedIdx, 200);
  });

  test('a chain of exactly the queue size is accepted', () => {
    const { queue, driver } = setup();
    driver.addChain(
      Array.from({ length: SIZE }, (_, i) => new Uint8Array([i])),
      [],
    );
    assert.equal(expectChain(queue.pop()).descriptors.length, SIZE);
  });

  test('a queue that is not enabled pops nothing and ignores completions', () => {
    const memory = new GuestMemory([{ gpa: 0, bytes: new Uint8Array(0x1000) }]);
    const queue = new Queue(memory, { maxSize: 8 });
    assert.equal(queue.ready, false);
    assert.equal(queue.pop(), undefined);
    queue.addUsed(0, 0);
    assert.equal(queue.needsNotification(), false);
    assert.equal(queue.enableNotification(), false);
  });

  test('undoPop hands the same chain out again', () => {
    const { queue, driver } = setup();
    const { head } = driver.addChain([text('x')], []);
    assert.equal(expectChain(queue.pop()).headIndex, head);
    queue.undoPop();
    queue.undoPop(); // only one chain to put back
    assert.equal(queue.metrics.chainsPopped, 0);
    assert.equal(expectChain(queue.pop()).headIndex, head);
    assert.equal(queue.pop(), undefined);
    queue.undoPop(); // the last pop returned nothing: nothing to put back
    assert.equal(queue.pop(), undefined);
    assert.equal(queue.metrics.chainsPopped, 1);
  });

  test('addUsed refuses a head that is not a descriptor (device bug)', () => {
    const { queue } = setup();
    assert.throws(() => queue.addUsed(SIZE, 0), RangeError);
    assert.throws(() => queue.addUsed(-1, 0), RangeError);
  });

  test('copies descriptors at pop: rewriting the table afterwards changes nothing', () => {
    const { queue, driver } = setup();
    const added = driver.addChain([text('abc')], []);
    const chain = expectChain(queue.pop());
    driver.writeDescriptor(added.head, { addr: 0xdead_0000, len: 99, flags: 0, next: 0 });
    assert.deepEqual(chain.descriptors, [{ addr: added.readable[0]!.addr, len: 3, writable: false }]);
  });
});

describe('Queue: hostile chains fail one request', () => {
  function publishRaw(
    driver: TestDriver,
    descriptors: Parameters<TestDriver['writeDescriptor']>[1][],
    head = 0,
  ) {
    for (const [i, d] of descriptors.entries()) driver.writeDescriptor(i, d);
    driver.publish(head);
  }

  test('a buffer past the end of RAM, across a region edge, or at a 64-bit address', () => {
    for (const [addr, len] of [
      [RAM_SIZE - 4, 8],
      [RAM_SIZE, 1],
      [HIGH_REGION - 1, 2],
      [2 ** 63, 1],
      [0, 0xffff_ffff],
    ] as const) {
      const { queue, driver } = setup();
      publishRaw(driver, [{ addr, len, flags: 0, next: 0 }]);
      const error = expectError(queue.pop(), 'buffer-outside-ram');
      assert.equal(error.headIndex, 0);
      assert.equal(queue.metrics.chainErrors, 1);
    }
  });

  test('the queue goes on after a bad chain', () => {
    const { queue, driver } = setup();
    driver.writeDescriptor(5, { addr: RAM_SIZE, len: 16, flags: 0, next: 0 });
    driver.publish(5);
    const good = driver.addChain([text('ok')], []);
    const bad = expectError(queue.pop(), 'buffer-outside-ram');
    queue.addUsed(bad.headIndex!, 0);
    assert.equal(expectChain(queue.pop()).headIndex, good.head);
  });

  test('a loop is cut off by the chain length cap', () => {
    const { queue, driver } = setup();
    publishRaw(driver, [
      { addr: BUFFERS, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 1 },
      { addr: BUFFERS, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 0 },
    ]);
    expectError(queue.pop(), 'chain-too-long');
  });

  test('a descriptor that points at itself', () => {
    const { queue, driver } = setup();
    publishRaw(driver, [{ addr: BUFFERS, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 0 }]);
    expectError(queue.pop(), 'chain-too-long');
  });

  test('next past the end of the table', () => {
    const { queue, driver } = setup();
    publishRaw(driver, [{ addr: BUFFERS, len: 4, flags: VIRTQ_DESC_F_NEXT, next: SIZE }]);
    expectError(queue.pop(), 'next-out-of-range');
  });

  test('a readable descriptor after a writable one', () => {
    const { queue, driver } = setup();
    publishRaw(driver, [
      { addr: BUFFERS, len: 4, flags: VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, next: 1 },
      { addr: BUFFERS, len: 4, flags: 0, next: 0 },
    ]);
    expectError(queue.pop(), 'readable-after-writable');
  });

  test('lengths that add up past 2^32 - 1', () => {
    // 17 descriptors of 256 MiB over the same (lazily zeroed) RAM: 4.25 GiB.
    const big = 0x1000_0000;
    const memory = new GuestMemory([{ gpa: 0, bytes: new Uint8Array(big) }]);
    const queue = new Queue(memory, { maxSize: 32 });
    const driver = new TestDriver(memory, layoutRings(RINGS, 32), BUFFERS, BUFFERS_END);
    driver.configure(queue);
    for (let i = 0; i < 17; i++) {
      driver.writeDescriptor(i, { addr: 0, len: big, flags: i < 16 ? VIRTQ_DESC_F_NEXT : 0, next: i + 1 });
    }
    driver.publish(0);
    expectError(queue.pop(), 'chain-too-large');
  });
});

describe('Queue: indirect descriptors', () => {
  const TABLE = 0x6000;

  function indirectHead(driver: TestDriver, len: number, flags = VIRTQ_DESC_F_INDIRECT, addr = TABLE) {
    driver.writeDescriptor(0, { addr, len, flags, next: 1 });
    driver.publish(0);
  }

  test('refused unless negotiated', () => {
    const { queue, driver } = setup({ indirect: false });
    driver.writeDescriptor(0, { addr: BUFFERS, len: 4, flags: 0, next: 0 }, TABLE);
    indirectHead(driver, 16);
    expectError(queue.pop(), 'indirect-not-negotiated');
  });

  test('nested indirect tables', () => {
    const { queue, driver } = setup({ indirect: true });
    driver.writeDescriptor(0, { addr: TABLE + 0x100, len: 16, flags: VIRTQ_DESC_F_INDIRECT, next: 0 }, TABLE);
    driver.writeDescriptor(0, { addr: BUFFERS, len: 4, flags: 0, next: 0 }, TABLE + 0x100);
    indirectHead(driver, 16);
    expectError(queue.pop(), 'nested-indirect');
  });

  test('INDIRECT together with NEXT', () => {
    const { queue, driver } = setup({ indirect: true });
    driver.writeDescriptor(0, { addr: BUFFERS, len: 4, flags: 0, next: 0 }, TABLE);
    driver.writeDescriptor(1, { addr: BUFFERS, len: 4, flags: 0, next: 0 });
    indirectHead(driver, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT);
    expectError(queue.pop(), 'indirect-with-next');
  });

  for (const len of [0, 15, 17, 24]) {
    test(`a table of ${len} bytes`, () => {
      const { queue, driver } = setup({ indirect: true });
      indirectHead(driver, len);
      expectError(queue.pop(), 'indirect-bad-length');
    });
  }

  test('a table over the cap', () => {
    const { queue, driver } = setup({ indirect: true, maxIndirect: 8 });
    indirectHead(driver, 9 * 16);
    expectError(queue.pop(), 'indirect-too-long');
  });

  test('a table partly outside RAM', () => {
    const { queue, driver } = setup({ indirect: true });
    indirectHead(driver, 64, VIRTQ_DESC_F_INDIRECT, RAM_SIZE - 32);
    expectError(queue.pop(), 'indirect-outside-ram');
  });

  test('a loop inside the table', () => {
    const { queue, driver } = setup({ indirect: true });
    driver.writeDescriptor(0, { addr: BUFFERS, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 1 }, TABLE);
    driver.writeDescriptor(1, { addr: BUFFERS, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 0 }, TABLE);
    indirectHead(driver, 32);
    expectError(queue.pop(), 'chain-too-long');
  });

  test('next past the end of the table', () => {
    const { queue, driver } = setup({ indirect: true });
    driver.writeDescriptor(0, { addr: BUFFERS, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 2 }, TABLE);
    driver.writeDescriptor(1, { addr: BUFFERS, len: 4, flags: 0, next: 0 }, TABLE);
    indirectHead(driver, 32);
    expectError(queue.pop(), 'next-out-of-range');
  });

  test('direct descriptors then an indirect table form one chain', () => {
    const { queue, driver } = setup({ indirect: true });
    driver.writeDescriptor(0, { addr: BUFFERS, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 3 });
    driver.writeDescriptor(3, { addr: TABLE, len: 16, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
    driver.writeDescriptor(0, { addr: BUFFERS + 16, len: 8, flags: VIRTQ_DESC_F_WRITE, next: 0 }, TABLE);
    driver.publish(0);
    const chain = expectChain(queue.pop());
    assert.deepEqual(chain.descriptors, [
      { addr: BUFFERS, len: 4, writable: false },
      { addr: BUFFERS + 16, len: 8, writable: true },
    ]);
  });
});

describe('Queue: broken drivers stop the queue', () => {
  test('avail.idx more than the queue size ahead', () => {
    const { queue, driver } = setup();
    driver.setAvailIdx(SIZE + 1);
    const error = expectError(queue.pop(), 'avail-index-jump', true);
    assert.equal(queue.error, error);
    // It stays stopped, even once the index looks sane again.
    driver.setAvailIdx(1);
    expectError(queue.pop(), 'avail-index-jump', true);
    assert.equal(queue.enableNotification(), false);
    assert.equal(queue.pending(), 0);
    assert.equal(queue.metrics.fatalErrors, 1);
  });

  test('avail.idx moving backwards', () => {
    const { queue, driver } = setup();
    driver.addChain([text('a')], []);
    expectChain(queue.pop());
    driver.setAvailIdx(0);
    expectError(queue.pop(), 'avail-index-jump', true);
  });

  test('exactly the queue size ahead is fine', () => {
    const { queue, driver } = setup();
    for (let i = 0; i < SIZE; i++) driver.addChain([new Uint8Array([i])], []);
    assert.equal(queue.pending(), SIZE);
    for (let i = 0; i < SIZE; i++) expectChain(queue.pop());
    assert.equal(queue.pop(), undefined);
  });

  test('an avail entry naming a descriptor past the table', () => {
    const { queue, driver } = setup();
    driver.publish(SIZE);
    expectError(queue.pop(), 'head-out-of-range', true);
  });

  test('reset and re-enable bring a stopped queue back', () => {
    const { memory, queue } = setup();
    const driver = new TestDriver(memory, layoutRings(RINGS, SIZE), BUFFERS, BUFFERS_END);
    driver.setAvailIdx(1000);
    expectError(queue.pop(), 'avail-index-jump', true);
    queue.reset();
    const fresh = new TestDriver(memory, layoutRings(RINGS, SIZE), BUFFERS, BUFFERS_END);
    assert.equal(fresh.configure(queue), undefined);
    fresh.addChain([text('again')], []);
    expectChain(queue.pop());
  });
});

describe('Queue: configuration checks', () => {
  function configured(change: (q: Queue) => void): string | undefined {
    const memory = new GuestMemory([
      { gpa: 0, bytes: new Uint8Array(RAM_SIZE) },
      { gpa: HIGH_REGION, bytes: new Uint8Array(0x1000) },
    ]);
    const queue = new Queue(memory, { maxSize: 256 });
    const layout = layoutRings(RINGS, 256);
    queue.size = 256;
    queue.descTableAddress = layout.descTable;
    queue.availRingAddress = layout.availRing;
    queue.usedRingAddress = layout.usedRing;
    change(queue);
    const problem = queue.validate();
    assert.equal(queue.enable(), problem);
    assert.equal(queue.ready, problem === undefined);
    return problem;
  }

  test('a sane layout passes', () => {
    assert.equal(
      configured(() => {}),
      undefined,
    );
  });

  test('configuration writes while enabled are ignored', () => {
    const { queue, driver } = setup();
    queue.size = 4;
    queue.descTableAddress = 0;
    queue.eventIdx = true;
    assert.equal(queue.size, SIZE);
    assert.equal(queue.descTableAddress, driver.layout.descTable);
    assert.equal(queue.eventIdx, false);
    queue.reset();
    queue.size = 4;
    assert.equal(queue.size, 4);
  });

  test('sizes: power of two, not above the maximum', () => {
    assert.match(configured((q) => (q.size = 0)) ?? '', /power of 2/);
    assert.match(configured((q) => (q.size = 100)) ?? '', /power of 2/);
    assert.match(configured((q) => (q.size = 512)) ?? '', /power of 2 up to 256/);
    assert.equal(
      configured((q) => (q.size = 64)),
      undefined,
    );
    assert.throws(() => new Queue(new GuestMemory([]), { maxSize: 65536 }), RangeError);
    assert.throws(() => new Queue(new GuestMemory([]), { maxSize: 3 }), RangeError);
  });

  test('misaligned rings', () => {
    assert.match(
      configured((q) => (q.descTableAddress += 8)) ?? '',
      /descriptor table .* not 16-byte aligned/,
    );
    assert.match(configured((q) => (q.availRingAddress += 1)) ?? '', /available ring .* not 2-byte aligned/);
    assert.match(configured((q) => (q.usedRingAddress += 2)) ?? '', /used ring .* not 4-byte aligned/);
  });

  test('rings partly or wholly outside RAM', () => {
    assert.match(configured((q) => (q.descTableAddress = RAM_SIZE - 16 * 128)) ?? '', /descriptor table/);
    assert.match(configured((q) => (q.availRingAddress = RAM_SIZE - 2)) ?? '', /available ring/);
    assert.match(configured((q) => (q.usedRingAddress = HIGH_REGION + 0x800)) ?? '', /used ring/);
    assert.match(configured((q) => (q.usedRingAddress = HIGH_REGION - 0x800)) ?? '', /used ring/);
    assert.match(configured((q) => (q.descTableAddress = 2 ** 64)) ?? '', /descriptor table/);
    assert.match(configured((q) => (q.availRingAddress = -2)) ?? '', /available ring/);
  });
});

describe('Queue: notifications', () => {
  test('vring_need_event across the 16-bit wrap', () => {
    assert.equal(vringNeedEvent(0xffff, 0x0000, 0xfffe), true);
    assert.equal(vringNeedEvent(0xffff, 0xffff, 0xfffe), false);
    assert.equal(vringNeedEvent(0x0000, 0x0001, 0xffff), true);
    assert.equal(vringNeedEvent(0x0001, 0x0001, 0xffff), false);
    assert.equal(vringNeedEvent(0xfffe, 0x0002, 0xfff0), true);
    assert.equal(vringNeedEvent(5, 5, 5), false);
  });

  test('EVENT_IDX: interrupt only when used.idx passes used_event, across 0xffff', () => {
    const { memory, queue, driver } = setup({ eventIdx: true });
    const state = { ...queue.state(), nextAvail: 0xfffd, nextUsed: 0xfffd, signalledUsed: 0xfffd };
    assert.equal(queue.restore(state), undefined);
    driver.startAt(0xfffd);
    assert.ok(memory);

    const complete = () => {
      const chain = expectChain(queue.pop());
      queue.addUsed(chain.headIndex, 0);
      driver.takeUsed();
    };
    // The driver wants to hear once entry 0xffff (the third completion) is used.
    driver.setUsedEvent(0xffff);
    for (let i = 0; i < 4; i++) driver.addChain([], [1]);
    complete(); // used.idx 0xfffe
    assert.equal(queue.needsNotification(), false);
    complete(); // 0xffff
    assert.equal(queue.needsNotification(), false);
    complete(); // 0x0000: stepped past used_event 0xffff
    assert.equal(queue.needsNotification(), true);
    complete(); // 0x0001
    assert.equal(queue.needsNotification(), false);
    assert.equal(driver.usedIdx, 1);
    assert.equal(queue.metrics.notificationsSent, 1);
    assert.equal(queue.metrics.notificationsSuppressed, 3);
    // Nothing new: no decision to make, nothing counted.
    assert.equal(queue.needsNotification(), false);
    assert.equal(queue.metrics.notificationsSuppressed, 3);
  });

  test('EVENT_IDX: several completions between checks still notify when one passed used_event', () => {
    const { queue, driver } = setup({ eventIdx: true });
    driver.setUsedEvent(1);
    for (let i = 0; i < 3; i++) driver.addChain([], [1]);
    for (let i = 0; i < 3; i++) queue.addUsed(expectChain(queue.pop()).headIndex, 1);
    assert.equal(queue.needsNotification(), true);
  });

  test('EVENT_IDX: the device asks for a kick at its next avail index', () => {
    const { queue, driver } = setup({ eventIdx: true });
    queue.disableNotification();
    for (let i = 0; i < 3; i++) driver.addChain([], [1]);
    while (queue.pop() !== undefined) {}
    assert.equal(queue.enableNotification(), false);
    assert.equal(driver.availEvent, 3);
    assert.equal(driver.usedFlags, 0);
    const old = driver.availIndex;
    driver.addChain([], [1]);
    assert.equal(driver.kickNeeded(old, true), true);
    // The device has not moved avail_event: a second buffer needs no kick.
    const old2 = driver.availIndex;
    driver.addChain([], [1]);
    assert.equal(driver.kickNeeded(old2, true), false);
  });

  for (const eventIdx of [true, false]) {
    test(`enableNotification reports buffers added while kicks were off (event idx ${eventIdx})`, () => {
      const { queue, driver } = setup({ eventIdx });
      queue.disableNotification();
      if (!eventIdx) assert.equal(driver.usedFlags, VIRTQ_USED_F_NO_NOTIFY);
      driver.addChain([], [1]);
      expectChain(queue.pop());
      // The driver adds one more after the device's last pop, seeing kicks suppressed.
      const old = driver.availIndex;
      driver.addChain([], [1]);
      if (!eventIdx) assert.equal(driver.kickNeeded(old, false), false);
      assert.equal(queue.enableNotification(), true, 'the device must look again');
      expectChain(queue.pop());
      assert.equal(queue.enableNotification(), false);
      if (!eventIdx) assert.equal(driver.usedFlags, 0);
    });
  }

  test('without EVENT_IDX: VIRTQ_AVAIL_F_NO_INTERRUPT suppresses interrupts', () => {
    const { queue, driver } = setup();
    driver.addChain([], [1]);
    driver.addChain([], [1]);
    driver.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
    queue.addUsed(expectChain(queue.pop()).headIndex, 0);
    assert.equal(queue.needsNotification(), false);
    driver.setAvailFlags(0);
    queue.addUsed(expectChain(queue.pop()).headIndex, 0);
    assert.equal(queue.needsNotification(), true);
  });

  test('with EVENT_IDX the NO_INTERRUPT flag is ignored', () => {
    const { queue, driver } = setup({ eventIdx: true });
    driver.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
    driver.setUsedEvent(0);
    driver.addChain([], [1]);
    queue.addUsed(expectChain(queue.pop()).headIndex, 0);
    assert.equal(queue.needsNotification(), true);
  });
});

describe('Queue: a long conversation with EVENT_IDX', () => {
  test('70,000 requests across the 16-bit wrap: one kick and one interrupt per batch', () => {
    const { queue, driver } = setup({ eventIdx: true });
    let kicks = 0;
    let interrupts = 0;
    let batches = 0;
    let completed = 0;
    while (completed < 70_000) {
      batches++;
      const batch = 1 + (batches % 8);
      let kicked = false;
      for (let i = 0; i < batch; i++) {
        const old = driver.availIndex;
        driver.addChain([new Uint8Array([i])], [4]);
        if (driver.kickNeeded(old, true)) {
          kicks++;
          kicked = true;
        }
      }
      assert.ok(kicked, `batch ${batches} was never kicked`);
      // The device's run loop, woken by the kick.
      let interrupted = false;
      do {
        queue.disableNotification();
        for (let c = queue.pop(); c !== undefined; c = queue.pop()) {
          const chain = expectChain(c);
          const writer = Writer.fromChain(driver.memory, chain);
          writer.writeU32(completed);
          queue.addUsed(chain.headIndex, writer.bytesWritten);
          if (queue.needsNotification()) {
            interrupts++;
            interrupted = true;
          }
        }
      } while (queue.enableNotification());
      assert.ok(interrupted, `batch ${batches} completed without an interrupt`);
      // The driver's interrupt handler: reap everything, then ask for the next one.
      let reaped = 0;
      while (driver.takeUsed() !== undefined) reaped++;
      assert.equal(reaped, batch);
      driver.setUsedEvent(driver.usedIdx);
      completed += batch;
    }
    assert.equal(kicks, batches);
    assert.equal(interrupts, batches);
    assert.equal(queue.nextUsed, completed & 0xffff);
    assert.equal(queue.metrics.notificationsSuppressed, completed - batches);
  });
});

describe('Queue: state', () => {
  test('survives JSON and carries on where it left off', () => {
    const { memory, queue, driver } = setup({ eventIdx: true, indirect: true });
    for (let i = 0; i < 5; i++) {
      driver.addChain([text(`${i}`)], [1]);
      queue.addUsed(expectChain(queue.pop()).headIndex, 1);
      driver.takeUsed();
    }
    driver.addChain([text('pending')], [1], { indirect: true });
    const saved = JSON.parse(JSON.stringify(queue.state()));
    assert.deepEqual(saved, {
      maxSize: SIZE,
      size: SIZE,
      ready: true,
      descTableAddress: driver.layout.descTable,
      availRingAddress: driver.layout.availRing,
      usedRingAddress: driver.layout.usedRing,
      nextAvail: 5,
      nextUsed: 5,
      eventIdx: true,
      indirectDescriptors: true,
      signalledUsed: 0,
    });

    const restored = new Queue(memory, { maxSize: SIZE });
    assert.equal(restored.restore(saved), undefined);
    assert.equal(restored.ready, true);
    const chain = expectChain(restored.pop());
    assert.equal(new TextDecoder().decode(Reader.fromChain(memory, chain).readBytes(7)), 'pending');
    restored.addUsed(chain.headIndex, 1);
    assert.equal(driver.usedIdx, 6);
  });

  test('a damaged or mismatched state is refused and leaves the queue reset', () => {
    const { memory, queue } = setup();
    const good = queue.state();
    const other = new Queue(memory, { maxSize: SIZE });
    assert.match(other.restore({ ...good, nextAvail: 70000 }) ?? '', /nextAvail/);
    assert.match(other.restore({ ...good, ready: 'yes' } as never) ?? '', /ready/);
    assert.match(other.restore(null as never) ?? '', /not an object/);
    assert.match(other.restore({ ...good, maxSize: 32 }) ?? '', /max size/);
    assert.match(other.restore({ ...good, usedRingAddress: RAM_SIZE }) ?? '', /used ring/);
    assert.equal(other.ready, false);
    assert.equal(other.restore({ ...good, ready: false }), undefined);
    assert.equal(other.ready, false);
  });
});
