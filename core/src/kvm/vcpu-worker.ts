// One vCPU's thread: loops on KVM_RUN. Exits its worker-local devices claim are answered right
// here (the fast path); every other exit is forwarded to the VM host's main thread through the
// mailbox while this thread waits. Started by VcpuSet (vcpu-set.ts).
import { pathToFileURL } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';
import { ExitReason } from './constants.js';
import { ExitBuffer } from './exit.js';
import { type CreateWorkerDevices, dispatchIo, dispatchMmio, type WorkerDevices } from './exit-bus.js';
import { Answer, Command, Ctl, Handoff, type VcpuWorkerBoot, type VcpuWorkerData } from './mailbox.js';
import { native } from './native.js';
import {
  POSTED_RING_SLOTS,
  PostedWriteFilter,
  PostedWriteRing,
  SPACE_MMIO,
  SPACE_PIO,
} from './posted-writes.js';

const boot = workerData as VcpuWorkerBoot;
if (boot.addonPath) process.env.VIREO_NATIVE_ADDON = boot.addonPath;
const addon = native();

/** Runs one vCPU on this thread until the VM stops it; resolves when the thread is done. */
async function runVcpu(data: VcpuWorkerData): Promise<void> {
  const ctl = new Int32Array(data.control);
  const exit = new ExitBuffer(new Uint8Array(data.exitBuffer));
  const fd = data.vcpuFd;
  const filter = new PostedWriteFilter(data.posted);
  const ring = data.postedRing && !filter.empty ? new PostedWriteRing(data.postedRing) : undefined;
  // Lazy mode: the main thread drains on a timer; wake it only when the ring is half full.
  const wakeAt = (data.posted?.maxDelayMs ?? 0) > 0 ? POSTED_RING_SLOTS / 2 : 1;

  async function loadDevices(): Promise<WorkerDevices> {
    if (!data.devicesModule) return {};
    const specifier = data.devicesModule.includes('://')
      ? data.devicesModule
      : pathToFileURL(data.devicesModule).href;
    const module = (await import(specifier)) as { createWorkerDevices?: CreateWorkerDevices };
    if (typeof module.createWorkerDevices !== 'function') {
      throw new Error(`${data.devicesModule} does not export createWorkerDevices`);
    }
    return module.createWorkerDevices({ vcpuIndex: data.vcpuIndex, options: data.devicesOptions });
  }

  function ringDoorbell(): void {
    Atomics.add(ctl, Ctl.DOORBELL, 1);
    Atomics.notify(ctl, Ctl.DOORBELL);
  }

  /** Queues a single guest write the config allows to be posted; false = it must be forwarded. */
  function post(ring: PostedWriteRing, reason: number): boolean {
    if (!exit.isWrite) return false;
    let pending: number;
    if (reason === ExitReason.IO) {
      if (exit.count !== 1 || !filter.port(exit.port)) return false;
      pending = ring.post(SPACE_PIO, exit.port, exit.data());
    } else {
      const address = Number(exit.mmioAddress);
      if (!filter.mmioAddress(address, exit.size)) return false;
      pending = ring.post(SPACE_MMIO, address, exit.data());
    }
    if (pending === 0) return false;
    ctl[Ctl.POSTED_EXITS]!++;
    if (pending === wakeAt) ringDoorbell();
    return true;
  }

  /** Hands the current exit to the main thread and waits for its answer; true = keep running. */
  function forward(): boolean {
    const request = ctl[Ctl.REQUEST]! + 1;
    Atomics.add(ctl, Ctl.FORWARDED_EXITS, 1);
    Atomics.store(ctl, Ctl.REQUEST, request);
    ringDoorbell();
    while (Atomics.load(ctl, Ctl.RESPONSE) !== request) Atomics.wait(ctl, Ctl.RESPONSE, request - 1);
    return Atomics.load(ctl, Ctl.ANSWER) === Answer.CONTINUE;
  }

  function park(): void {
    Atomics.store(ctl, Ctl.PARKED, 1);
    Atomics.notify(ctl, Ctl.PARKED);
    while (Atomics.load(ctl, Ctl.COMMAND) === Command.PAUSE) Atomics.wait(ctl, Ctl.COMMAND, Command.PAUSE);
    Atomics.store(ctl, Ctl.PARKED, 0);
    Atomics.notify(ctl, Ctl.PARKED);
  }

  function runLoop(devices: WorkerDevices): void {
    const pio = devices.pio;
    const mmio = devices.mmio;
    for (;;) {
      const command = Atomics.load(ctl, Ctl.COMMAND);
      if (command === Command.STOP) return;
      if (command === Command.PAUSE) {
        park();
        continue;
      }
      const reason = addon.run(fd, exit.bytes);
      if (reason === ExitReason.IO) {
        if (pio && dispatchIo(pio, exit)) {
          ctl[Ctl.LOCAL_EXITS]!++;
          continue;
        }
        if (ring && post(ring, reason)) continue;
      } else if (reason === ExitReason.MMIO) {
        if (mmio && dispatchMmio(mmio, exit)) {
          ctl[Ctl.LOCAL_EXITS]!++;
          continue;
        }
        if (ring && post(ring, reason)) continue;
      } else if (reason === ExitReason.INTR) {
        continue;
      }
      if (!forward()) return;
    }
  }

  /** Takes the vCPU over from the main thread; false: the VM ended before it could. */
  function takeOver(): boolean {
    if (Atomics.compareExchange(ctl, Ctl.HANDOFF, Handoff.MAIN, Handoff.WANTED) !== Handoff.MAIN) {
      return Atomics.load(ctl, Ctl.HANDOFF) === Handoff.GRANTED;
    }
    addon.kick(fd); // out of KVM_RUN on the main thread, so it sees WANTED now
    while (Atomics.load(ctl, Ctl.HANDOFF) === Handoff.WANTED) Atomics.wait(ctl, Ctl.HANDOFF, Handoff.WANTED);
    return Atomics.load(ctl, Ctl.HANDOFF) === Handoff.GRANTED;
  }

  let abandoned = false;
  try {
    const devices = await loadDevices();
    if (data.handoff && !takeOver()) {
      abandoned = true; // the VM ended on the main thread: this thread never ran the vCPU
      return;
    }
    runLoop(devices);
  } catch (error) {
    const e = error as Error & { code?: string };
    parentPort?.postMessage({ type: 'error', message: e.message, code: e.code, stack: e.stack });
  } finally {
    if (!abandoned) {
      addon.releaseThread(fd);
      Atomics.store(ctl, Ctl.FINISHED, 1);
      Atomics.notify(ctl, Ctl.FINISHED);
      Atomics.notify(ctl, Ctl.PARKED);
      ringDoorbell();
    }
  }
}

// The worker may have been started ahead of its vCPU (vcpu-threads.ts): the vCPU comes as a message.
parentPort!.once('message', (data: VcpuWorkerData) => void runVcpu(data));
