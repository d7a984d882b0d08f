// The worker threads vCPUs run on, started ahead of need. Booting a worker is booting a new Node
// environment (~20-30 ms here, longer than creating the whole VM), so `vireo run` starts one as
// the process starts (bin/vireo) and it boots while the main thread loads the VMM and builds the
// VM; VcpuSet then hands it its vCPU. Without a spare, VcpuSet starts a worker when it needs one.
import { Worker } from 'node:worker_threads';
import type { VcpuWorkerBoot } from './mailbox.js';
import { nativeAddonPath } from './native.js';

const spares: Worker[] = [];

function startWorker(name: string): Worker {
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
