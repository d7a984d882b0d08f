import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GuestMemory } from '../../../memory/guest-memory.js';
import { Writer } from '../descriptor-utils.js';
import { drainQueue } from './drain.js';
import { Queue } from './queue.js';
import { layoutRings, TestDriver } from './test-driver.js';

function setup(eventIdx: boolean) {
  const memory = new GuestMemory([{ gpa: 0, bytes: new Uint8Array(0x2_0000) }]);
  const queue = new Queue(memory, { maxSize: 16 });
  const driver = new TestDriver(memory, layoutRings(0x1000, 16), 0x4000, 0x2_0000);
  assert.equal(driver.configure(queue, { eventIdx }), undefined);
  return { memory, queue, driver };
}

describe('drainQueue', () => {
  test('hands over good chains, completes bad ones with 0, leaves kicks enabled', () => {
    const { memory, queue, driver } = setup(true);
    const good = driver.addChain([], [4]);
    driver.writeDescriptor(9, { addr: 0x10_0000, len: 8, flags: 0, next: 0 });
    driver.publish(9);
    const good2 = driver.addChain([], [4]);
    const logs: string[] = [];
    const outcome = drainQueue(
      queue,
      (chain) => {
        const writer = Writer.fromChain(memory, chain);
        writer.writeU32(7);
        queue.addUsed(chain.headIndex, writer.bytesWritten);
        return true;
      },
      (m) => logs.push(m),
    );
    assert.deepEqual(outcome, { chains: 2, rejected: 1, fatal: undefined, paused: false });
    assert.equal(logs.length, 1);
    assert.match(logs[0]!, /buffer-outside-ram.*head 9/);
    assert.deepEqual(
      [driver.takeUsed(), driver.takeUsed(), driver.takeUsed()],
      [
        { id: good.head, len: 4 },
        { id: 9, len: 0 },
        { id: good2.head, len: 4 },
      ],
    );
    assert.equal(driver.availEvent, 3, 'kicks re-enabled at the next index');
    assert.equal(queue.needsNotification(), true);
  });

  test('stops at a fatal error and reports it', () => {
    const { queue, driver } = setup(false);
    driver.setAvailIdx(100);
    const logs: string[] = [];
    const outcome = drainQueue(
      queue,
      () => assert.fail('no chain expected'),
      (m) => logs.push(m),
    );
    assert.equal(outcome.fatal?.kind, 'avail-index-jump');
    assert.match(logs[0]!, /virtqueue broken/);
  });

  test('deferred completions: the handler may keep chains and complete them later', () => {
    const { queue, driver } = setup(false);
    driver.addChain([], [1]);
    driver.addChain([], [1]);
    const held: number[] = [];
    drainQueue(
      queue,
      (chain) => {
        held.push(chain.headIndex);
        return true;
      },
      () => {},
    );
    assert.equal(driver.usedFlags, 0, 'kicks back on');
    assert.equal(driver.takeUsed(), undefined);
    for (const head of held.reverse()) queue.addUsed(head, 1);
    assert.equal(queue.needsNotification(), true);
    assert.equal(driver.takeUsed()?.id, held[0]);
  });

  test('a handler with no room pauses the loop and gets the same chain next time', () => {
    const { queue, driver } = setup(false);
    const first = driver.addChain([], [1]);
    const second = driver.addChain([], [1]);
    const taken: number[] = [];
    const pause = drainQueue(
      queue,
      (chain) => {
        if (taken.length === 1) return false;
        taken.push(chain.headIndex);
        return true;
      },
      () => {},
    );
    assert.deepEqual(pause, { chains: 1, rejected: 0, fatal: undefined, paused: true });
    assert.equal(queue.metrics.chainsPopped, 1);
    assert.equal(driver.usedFlags, 1, 'kicks stay off while paused');
    const resume = drainQueue(
      queue,
      (chain) => {
        taken.push(chain.headIndex);
        return true;
      },
      () => {},
    );
    assert.equal(resume.paused, false);
    assert.deepEqual(taken, [first.head, second.head]);
  });
});
