// The device on this thread and a driver on a worker thread share guest RAM and race for real:
// this exercises the ordering of the ring indices and the notification handshake both ways
// (a lost kick or interrupt would stall one side until its timeout).

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { GuestMemory } from '../../../memory/guest-memory.js';
import { Reader, Writer } from '../descriptor-utils.js';
import {
  type ConcurrentDriverConfig,
  type ConcurrentDriverResult,
  expectedAnswer,
  INTERRUPTS,
  KICKS,
} from './concurrent-driver.js';
import { Queue } from './queue.js';
import { QueueError } from './queue-error.js';
import { layoutRings } from './test-driver.js';

const RAM_SIZE = 0x10_0000;
const TIMEOUT_MS = 5000;

async function race(eventIdx: boolean, requests: number) {
  const ram = new SharedArrayBuffer(RAM_SIZE);
  const control = new SharedArrayBuffer(8);
  const memory = new GuestMemory([{ gpa: 0, bytes: new Uint8Array(ram) }]);
  const layout = layoutRings(0x1000, 64);
  const config: ConcurrentDriverConfig = {
    ram,
    control,
    layout,
    bufferBase: 0x1_0000,
    bufferEnd: RAM_SIZE,
    eventIdx,
    requests,
    timeoutMs: TIMEOUT_MS,
  };
  const queue = new Queue(memory, { maxSize: 64 });
  queue.size = layout.size;
  queue.descTableAddress = layout.descTable;
  queue.availRingAddress = layout.availRing;
  queue.usedRingAddress = layout.usedRing;
  queue.eventIdx = eventIdx;
  assert.equal(queue.enable(), undefined);

  const worker = new Worker(new URL('./concurrent-driver.js', import.meta.url), { workerData: config });
  const finished = once(worker, 'message') as Promise<[ConcurrentDriverResult]>;
  const words = new Int32Array(control);
  let completed = 0;
  let interrupts = 0;
  let sleeps = 0;
  try {
    while (completed < requests) {
      const seenKicks = Atomics.load(words, KICKS);
      do {
        queue.disableNotification();
        for (let c = queue.pop(); c !== undefined; c = queue.pop()) {
          assert.ok(!(c instanceof QueueError), `${c}`);
          const seq = Reader.fromChain(memory, c).readU32();
          const writer = Writer.fromChain(memory, c);
          writer.writeU32(expectedAnswer(seq));
          queue.addUsed(c.headIndex, writer.bytesWritten);
          completed++;
          if (queue.needsNotification()) {
            interrupts++;
            Atomics.add(words, INTERRUPTS, 1);
            Atomics.notify(words, INTERRUPTS);
          }
        }
      } while (queue.enableNotification());
      if (completed >= requests) break;
      sleeps++;
      const woke = Atomics.wait(words, KICKS, seenKicks, TIMEOUT_MS);
      assert.notEqual(
        woke,
        'timed-out',
        `lost kick: device idle ${TIMEOUT_MS} ms after ${completed} requests`,
      );
    }
    const [result] = await finished;
    assert.equal(result.error, undefined, result.error);
    return { ...result, completed, interrupts, sleeps, metrics: queue.metrics };
  } finally {
    await worker.terminate();
  }
}

describe('Queue: device and driver on two threads', () => {
  for (const eventIdx of [true, false]) {
    test(`20,000 requests, no lost kick or interrupt (event idx ${eventIdx})`, async (t) => {
      const r = await race(eventIdx, 20_000);
      t.diagnostic(
        `kicks ${r.kicks}, interrupts ${r.interrupts}, device sleeps ${r.sleeps}, driver waits ${r.waits}`,
      );
      assert.equal(r.completed, 20_000);
      assert.equal(r.metrics.notificationsSent, r.interrupts);
      // Both kinds of suppression did something: fewer kicks and interrupts than requests.
      assert.ok(r.kicks < 20_000, `kicks ${r.kicks}`);
      assert.ok(r.interrupts < 20_000, `interrupts ${r.interrupts}`);
      assert.ok(r.metrics.notificationsSuppressed > 0);
    });
  }
});
