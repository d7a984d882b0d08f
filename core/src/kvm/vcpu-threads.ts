// The worker threads vCPUs run on. Booting a worker is booting a new Node environment (~25 ms
// here, longer than building the whole VM), so a VM host may start spares ahead of need; VcpuSet
// takes a spare, or starts a worker when there is none.
import { createRequire } from 'node:module';
import type { Worker } from 'node:worker_threads';
import type { VcpuWorkerBoot } from './mailbox.js';
import { nativeAddonPath } from './native.js';

const spares: Worker[] = [];

function startWorker(name: string): Worker {
  // Loaded on first use: node:worker_threads brings in node:stream (~3 ms here), which a VM's
  // first instruction need not wait for when vCPU 0 starts on the main thread (vcpu-set.ts).
  const { Worker } = createRequire(import.meta.url)(
    'node:worker_threads',
  ) as typeof import('node:worker_threads');
  const workerData: VcpuWorkerBoot = { addonPath: nativeAddonPath() };
  return new Worker(new URL('./vcpu-worker.js', import.meta.url), { workerData, name });
}

/** Starts `count` vCPU workers now; they load the addon and wait for their vCPU. */
export function prestartVcpuWorkers(count: number): void {
  for (let i = 0; i < count; i++) {
    const worker = startWorker('vcpu');
    // An unused spare (a command that fails before a VM runs) must not keep the process alive.
    worker.unref();
    spares.push(worker);
  }
}

/** A worker for a vCPU: a spare if one was started, else a new one. */
export function takeVcpuWorker(index: number): Worker {
  const spare = spares.shift();
  if (!spare) return startWorker(`vcpu-${index}`);
  spare.ref();
  return spare;
}
