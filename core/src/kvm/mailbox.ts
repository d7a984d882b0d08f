import type { PostedWriteConfig } from './posted-writes.js';

// The shared words between a vCPU worker and the VM host's main thread (an Int32Array over a
// SharedArrayBuffer). The exit itself travels in the vCPU's ExitBuffer, which both sides share.
//
// Forwarding an exit: the worker bumps REQUEST and DOORBELL and Atomics.wait()s on RESPONSE; the
// main thread, parked in Atomics.waitAsync() on DOORBELL, drains posted writes, handles the
// request, stores RESPONSE = REQUEST and notifies.

/** Words of the control array. */
export const Ctl = {
  /** Bumped by the worker for each exit it forwards. */
  REQUEST: 0,
  /** Set by the main thread to the REQUEST value it answered. */
  RESPONSE: 1,
  /** The main thread's answer: Answer.CONTINUE or Answer.STOP. */
  ANSWER: 2,
  /** What the main thread wants the worker to do next: Command.*. */
  COMMAND: 3,
  /** 1 while the worker is parked by Command.PAUSE. */
  PARKED: 4,
  /** Exits answered inside the worker (the fast path). */
  LOCAL_EXITS: 5,
  /** Exits forwarded to the main thread. */
  FORWARDED_EXITS: 6,
  /** 1 once the worker left its run loop for good. */
  FINISHED: 7,
  /** Bumped by the worker whenever the main thread has something to do (a request, a posted write). */
  DOORBELL: 8,
  /** Writes posted to the ring instead of forwarded (see posted-writes.ts). */
  POSTED_EXITS: 9,
  /** Who runs the vCPU while the main thread starts it (Handoff.*; see VcpuSet's startOnMainThread). */
  HANDOFF: 10,
} as const;
export const CTL_WORDS = 11;

export const Command = { RUN: 0, PAUSE: 1, STOP: 2 } as const;
export const Answer = { CONTINUE: 0, STOP: 1 } as const;
/**
 * A vCPU the main thread runs first: MAIN while it does, WANTED once the worker is ready to take
 * it, then GRANTED (the worker runs it from there) or ABANDONED (the VM ended before that).
 */
export const Handoff = { NONE: 0, MAIN: 1, WANTED: 2, GRANTED: 3, ABANDONED: 4 } as const;

export function createControl(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(CTL_WORDS * 4));
}

/** What a vCPU worker is started with (its workerData), before it has a vCPU. */
export interface VcpuWorkerBoot {
  addonPath?: string;
}

/** A vCPU worker's assignment: its first message (a worker may be started ahead of its vCPU). */
export interface VcpuWorkerData {
  vcpuIndex: number;
  vcpuFd: number;
  exitBuffer: SharedArrayBuffer;
  control: SharedArrayBuffer;
  /** Module (URL or path) exporting createWorkerDevices for the fast path, if any. */
  devicesModule?: string;
  devicesOptions?: unknown;
  /** The vCPU's posted-write ring and what may be posted (absent: nothing is). */
  postedRing?: SharedArrayBuffer;
  posted?: PostedWriteConfig;
  /** The main thread is running this vCPU: take it over through Ctl.HANDOFF first. */
  handoff?: boolean;
}

type WaitAsyncResult =
  | { async: false; value: 'not-equal' | 'timed-out' }
  | { async: true; value: Promise<'ok' | 'timed-out'> };

/** Atomics.waitAsync (in Node 20's V8, though not in the ES2023 typings this project compiles with). */
export function waitAsync(
  array: Int32Array,
  index: number,
  value: number,
  timeoutMs?: number,
): WaitAsyncResult {
  return (
    Atomics as unknown as {
      waitAsync(a: Int32Array, i: number, v: number, t?: number): WaitAsyncResult;
    }
  ).waitAsync(array, index, value, timeoutMs);
}
