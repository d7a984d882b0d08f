// Test support: a guest driver on its own thread (a worker), racing a device on the main thread
// over shared guest RAM, the way a vCPU races the VMM. It kicks only when the device asked for
// kicks and sleeps until an interrupt when it has nothing to do, so a lost kick or a lost
// interrupt shows up as a timeout rather than passing silently.

import { parentPort, workerData } from 'node:worker_threads';
import { GuestMemory } from '../../../memory/guest-memory.js';
import { VIRTQ_AVAIL_F_NO_INTERRUPT } from './ring-layout.js';
import { type RingLayout, TestDriver } from './test-driver.js';

/** Indices into the shared control words. */
export const KICKS = 0;
export const INTERRUPTS = 1;

export interface ConcurrentDriverConfig {
  readonly ram: SharedArrayBuffer;
  readonly control: SharedArrayBuffer;
  readonly layout: RingLayout;
  readonly bufferBase: number;
  readonly bufferEnd: number;
  readonly eventIdx: boolean;
  readonly requests: number;
  readonly timeoutMs: number;
}

export interface ConcurrentDriverResult {
  readonly error?: string;
  readonly kicks: number;
  readonly waits: number;
}

/** The device answers request `seq` with this value in the writable buffer. */
export function expectedAnswer(seq: number): number {
  return Math.imul(seq, 2654435761) >>> 0;
}

function run(config: ConcurrentDriverConfig): ConcurrentDriverResult {
  const memory = new GuestMemory([{ gpa: 0, bytes: new Uint8Array(config.ram) }]);
  const control = new Int32Array(config.control);
  const driver = new TestDriver(memory, config.layout, config.bufferBase, config.bufferEnd);
  const inFlight = new Map<number, { seq: number; answerAt: number }>();
  let sent = 0;
  let reaped = 0;
  let kicks = 0;
  let waits = 0;
  // Like Linux's virtqueue_disable_cb while the driver is busy.
  if (!config.eventIdx) driver.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);

  while (reaped < config.requests) {
    for (let used = driver.takeUsed(); used !== undefined; used = driver.takeUsed()) {
      const request = inFlight.get(used.id);
      if (!request) return { error: `used element names head ${used.id}, not in flight`, kicks, waits };
      inFlight.delete(used.id);
      const answer = memory.readU32(request.answerAt);
      if (used.len !== 4 || answer !== expectedAnswer(request.seq)) {
        return { error: `request ${request.seq}: len ${used.len}, answer ${answer}`, kicks, waits };
      }
      reaped++;
    }
    if (sent < config.requests && driver.freeDescriptors >= 2) {
      const seq = new Uint8Array(4);
      new DataView(seq.buffer).setUint32(0, sent, true);
      const old = driver.availIndex;
      const added = driver.addChain([seq], [4]);
      inFlight.set(added.head, { seq: sent, answerAt: added.writable[0]!.addr });
      sent++;
      if (driver.kickNeeded(old, config.eventIdx)) {
        kicks++;
        Atomics.add(control, KICKS, 1);
        Atomics.notify(control, KICKS);
      }
      continue;
    }
    if (reaped >= config.requests) break;
    // Nothing to add: ask for an interrupt, look once more (the device may have completed
    // meanwhile), then sleep until it comes.
    const seenInterrupts = Atomics.load(control, INTERRUPTS);
    if (config.eventIdx) driver.setUsedEvent(driver.lastUsedIdx);
    else driver.setAvailFlags(0);
    if (driver.usedIdx !== driver.lastUsedIdx) continue;
    waits++;
    if (Atomics.wait(control, INTERRUPTS, seenInterrupts, config.timeoutMs) === 'timed-out') {
      return {
        error: `lost interrupt: waited ${config.timeoutMs} ms with ${sent - reaped} in flight`,
        kicks,
        waits,
      };
    }
    if (!config.eventIdx) driver.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
  }
  return { kicks, waits };
}

if (parentPort && workerData) {
  let result: ConcurrentDriverResult;
  try {
    result = run(workerData as ConcurrentDriverConfig);
  } catch (e) {
    result = { error: e instanceof Error ? (e.stack ?? e.message) : String(e), kicks: 0, waits: 0 };
  }
  parentPort.postMessage(result);
}
