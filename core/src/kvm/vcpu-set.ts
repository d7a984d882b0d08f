// Runs a VM's vCPUs, each on its own worker thread looping on KVM_RUN, and answers their exits.
//
// Two paths for an exit that needs device code:
// - fast path: devices from `workerDevices.module` live inside every vCPU worker and answer
//   synchronously there (for stateless or per-vCPU devices: debug ports, benchmarks);
// - device-thread path: everything else is forwarded through the mailbox (mailbox.ts) to this,
//   the VM host's main thread, where the single-owner device models answer from `pio`/`mmio`
//   while the vCPU waits. The main thread never blocks: it waits with Atomics.waitAsync.
// Other exits (shutdown, system events, entry failures, internal errors) also come here and go
// through `onSpecialExit`, then the default policy.
//
// Booting a worker is booting a Node environment (~25 ms here), longer than building the VM. With
// `startOnMainThread`, vCPU 0 enters the guest on the main thread at once, answering its exits
// right there, until its worker is up and takes it over (Ctl.HANDOFF); a VM that ends before
// then never needs that thread.
import type { Worker } from 'node:worker_threads';
import { ExitReason, exitReasonName, SystemEvent } from './constants.js';
import {
  decodeFailEntry,
  decodeInternalError,
  decodeSystemEvent,
  EXIT_BUFFER_SIZE,
  ExitBuffer,
  type InternalErrorInfo,
  internalErrorName,
  systemEventName,
} from './exit.js';
import { dispatchIo, dispatchMmio, type ExitBus } from './exit-bus.js';
import type { Vcpu } from './kvm.js';
import { Answer, Command, Ctl, createControl, Handoff, type VcpuWorkerData, waitAsync } from './mailbox.js';
import { native } from './native.js';
import { type PostedWriteConfig, PostedWriteRing, SPACE_PIO } from './posted-writes.js';
import { takeVcpuWorker } from './vcpu-threads.js';

export type StopReason = 'stopped' | 'shutdown' | 'reset' | 'error';

export interface VmStop {
  reason: StopReason;
  message: string;
  /** The vCPU whose exit ended the VM, if one did. */
  vcpu?: number;
  /** The status a guest gave (e.g. through a debug-exit port). */
  status?: number;
}

export interface SpecialExit {
  index: number;
  vcpu: Vcpu;
  reason: number;
  exit: ExitBuffer;
}

/** 'continue' runs the vCPU on; a VmStop ends the VM; undefined = use the default policy. */
export type ExitDecision = 'continue' | VmStop | undefined;

export interface VcpuSetOptions {
  vcpus: readonly Vcpu[];
  /** Port and MMIO buses of the main-thread devices. */
  pio: ExitBus;
  mmio: ExitBus;
  /** A module exporting createWorkerDevices(context), loaded in every vCPU worker (fast path). */
  workerDevices?: { module: string | URL; options?: unknown };
  onSpecialExit?: (exit: SpecialExit) => ExitDecision;
  /** KVM_EXIT_INTERNAL_ERROR (e.g. emulation failures): 'continue' after fixing the vCPU up. */
  onInternalError?: (vcpu: Vcpu, info: InternalErrorInfo, index: number) => ExitDecision;
  log?: (line: string) => void;
  /** Where details go that only matter when debugging a guest (unclaimed ports); default: log. */
  debug?: (line: string) => void;
  /**
   * After answering an exit on the main thread, wait this long for the same vCPU's next one
   * before going back to the event loop (0 = never wait, the default: on the test hosts a
   * sleeping handoff costs the same either way, measured with bench/exit-roundtrip).
   */
  lingerMicros?: number;
  /** Longest the main thread keeps answering one vCPU before yielding to the event loop. Default 2. */
  burstBudgetMs?: number;
  /**
   * Guest writes that may complete before the device sees them (posted-writes.ts): the vCPU
   * queues them and runs on; the main thread applies them in order before any other exit.
   */
  postedWrites?: PostedWriteConfig;
  /**
   * Run vCPU 0 on the main thread from start() until its worker takes it over (see above). The
   * event loop waits meanwhile, so this is for a VM host whose devices can wait that long. Not
   * with worker devices or posted writes, which live on the worker's path.
   */
  startOnMainThread?: boolean;
  /**
   * While the main thread runs vCPU 0 the event loop stands still: this is called after its
   * first exit, then at most once per tick of its timer (1 ms), and when the worker takes over, for what devices
   * leave to the loop (batched console output).
   */
  onMainThreadTurn?: () => void;
}

const DEFAULT_LINGER_MICROS = 0;
/** While the main thread runs vCPU 0, it looks at the handoff at least this often (µs). */
const MAIN_THREAD_TICK_MICROS = 1000;
/**
 * The main thread starts vCPU 0's worker once the guest has run this long (ms): starting one costs
 * the main thread ~5 ms here, which a guest that is done sooner (a test, a benchmark) never needs.
 */
const WORKER_AFTER_MS = 2;
/** A worker not ready by then has failed to start: the VM stops with an error (ms). */
const HANDOFF_DEADLINE_MS = 10_000;
const DEFAULT_BURST_BUDGET_MS = 2;

export interface VcpuStats {
  /** Exits answered inside the vCPU's worker. */
  localExits: number;
  /** Exits forwarded to the main thread. */
  forwardedExits: number;
  /** Writes posted to the main thread without waiting. */
  postedExits: number;
  /** Exits answered while the main thread itself ran the vCPU (startOnMainThread). */
  mainThreadExits: number;
  /** Which thread runs the vCPU now ('none' once the VM ended). */
  thread: 'main' | 'worker' | 'none';
}

interface Runner {
  index: number;
  vcpu: Vcpu;
  ctl: Int32Array;
  exit: ExitBuffer;
  ring: PostedWriteRing;
  worker?: Worker;
  exited: boolean;
  mainThreadExits: number;
}

export class VcpuSet {
  /** Resolves once the VM stopped and every vCPU thread has ended (safe to close the VM then). */
  readonly done: Promise<VmStop>;
  private resolveDone!: (stop: VmStop) => void;
  private readonly runners: Runner[];
  private stopResult: VmStop | undefined;
  private started = false;
  private drainTimer: NodeJS.Timeout | undefined;
  private readonly unclaimedLogged = new Set<string>();
  private readonly log: (line: string) => void;

  constructor(private readonly options: VcpuSetOptions) {
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    this.log = options.log ?? ((line) => console.error(line));
    this.runners = options.vcpus.map((vcpu, index) => ({
      index,
      vcpu,
      ctl: createControl(),
      exit: new ExitBuffer(new Uint8Array(new SharedArrayBuffer(EXIT_BUFFER_SIZE))),
      ring: new PostedWriteRing(),
      exited: false,
      mainThreadExits: 0,
    }));
  }

  /** Gives each vCPU a worker thread (vcpu-threads.ts); they run the guest at once. */
  start(): void {
    if (this.started) throw new Error('VcpuSet already started');
    this.started = true;
    const first = this.options.startOnMainThread ? this.runners[0] : undefined;
    if (first && (this.options.workerDevices || this.options.postedWrites)) {
      throw new Error('startOnMainThread cannot be combined with worker devices or posted writes');
    }
    for (const runner of this.runners) {
      if (runner !== first) this.startWorker(runner, false);
    }
    const maxDelayMs = this.options.postedWrites?.maxDelayMs ?? 0;
    if (maxDelayMs > 0) {
      this.drainTimer = setInterval(() => this.drainPostedWrites(), maxDelayMs);
      this.drainTimer.unref();
    }
    if (first) this.runOnMainThread(first);
  }

  private startWorker(runner: Runner, handoff: boolean): void {
    const moduleSpec = this.options.workerDevices?.module;
    const workerData: VcpuWorkerData = {
      vcpuIndex: runner.index,
      vcpuFd: runner.vcpu.fd,
      exitBuffer: runner.exit.bytes.buffer as SharedArrayBuffer,
      control: runner.ctl.buffer as SharedArrayBuffer,
      devicesModule: moduleSpec === undefined ? undefined : String(moduleSpec),
      devicesOptions: this.options.workerDevices?.options,
      postedRing: this.options.postedWrites ? runner.ring.buffer : undefined,
      posted: this.options.postedWrites,
      handoff,
    };
    const worker = takeVcpuWorker(runner.index);
    worker.postMessage(workerData);
    runner.worker = worker;
    worker.on('message', (message: { type: string; message: string; code?: string }) => {
      if (message.type === 'error') {
        this.requestStop({
          reason: 'error',
          vcpu: runner.index,
          message: `vCPU ${runner.index} failed: ${message.message}`,
        });
      }
    });
    worker.on('error', (error) => {
      this.requestStop({
        reason: 'error',
        vcpu: runner.index,
        message: `vCPU ${runner.index} thread: ${error.message}`,
      });
    });
    worker.on('exit', () => {
      if (runner.exited) return; // abandoned: the VM ended before this worker ran its vCPU
      Atomics.notify(runner.ctl, Ctl.DOORBELL);
      this.requestStop({
        reason: 'error',
        vcpu: runner.index,
        message: `vCPU ${runner.index} thread ended`,
      });
      this.runnerEnded(runner);
    });
    if (!handoff) void this.serve(runner);
  }

  private runnerEnded(runner: Runner): void {
    runner.exited = true;
    if (this.runners.every((r) => r.exited)) {
      // Writes the guest made before it stopped still reach their devices (its last console bytes).
      this.drainPostedWrites();
      if (this.drainTimer) clearInterval(this.drainTimer);
      this.resolveDone(this.stopResult!);
    }
  }

  /**
   * Runs the vCPU here, answering its exits directly, until its worker (started once the guest has
   * run WORKER_AFTER_MS, so that the guest's first instruction does not wait for it) asks for it
   * or the VM ends.
   */
  private runOnMainThread(runner: Runner): void {
    const addon = native();
    const { ctl, exit } = runner;
    const fd = runner.vcpu.fd;
    const started = process.hrtime.bigint();
    const turn = this.options.onMainThreadTurn;
    let lastTurnMs = -Infinity;
    Atomics.store(ctl, Ctl.HANDOFF, Handoff.MAIN);
    addon.setThreadTicker(MAIN_THREAD_TICK_MICROS);
    try {
      while (!this.stopResult && Atomics.load(ctl, Ctl.HANDOFF) === Handoff.MAIN) {
        const reason = addon.run(fd, exit.bytes);
        if (reason !== ExitReason.INTR) {
          runner.mainThreadExits++;
          if (!this.handle(runner)) break;
        }
        const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
        if (turn && elapsedMs - lastTurnMs >= MAIN_THREAD_TICK_MICROS / 1000) {
          lastTurnMs = elapsedMs;
          turn();
        }
        if (!runner.worker) {
          if (elapsedMs >= WORKER_AFTER_MS) this.startWorker(runner, true);
        } else if (elapsedMs > HANDOFF_DEADLINE_MS) {
          this.requestStop({
            reason: 'error',
            vcpu: runner.index,
            message: `vCPU ${runner.index}: its thread did not start within ${HANDOFF_DEADLINE_MS / 1000} s`,
          });
        }
      }
    } catch (error) {
      this.requestStop({
        reason: 'error',
        vcpu: runner.index,
        message: `vCPU ${runner.index} failed: ${(error as Error).message}`,
      });
    } finally {
      addon.setThreadTicker(0);
      addon.releaseThread(fd);
    }
    turn?.();
    if (this.stopResult) {
      Atomics.store(ctl, Ctl.HANDOFF, Handoff.ABANDONED);
      Atomics.notify(ctl, Ctl.HANDOFF);
      // A worker still booting must not keep the process alive for a VM that is over.
      runner.worker?.unref();
      // Through the event loop: a guest that resets at once would otherwise reboot from a
      // promise continuation, again and again, and nothing else (a stop, a timer) ever ran.
      setImmediate(() => this.runnerEnded(runner));
      return;
    }
    Atomics.store(ctl, Ctl.HANDOFF, Handoff.GRANTED);
    Atomics.notify(ctl, Ctl.HANDOFF);
    void this.serve(runner);
  }

  /** Ends the VM (idempotent: the first stop wins). Safe to call from a device handler. */
  requestStop(stop: VmStop): void {
    if (this.stopResult) return;
    this.stopResult = stop;
    for (const runner of this.runners) {
      Atomics.store(runner.ctl, Ctl.COMMAND, Command.STOP);
      Atomics.notify(runner.ctl, Ctl.COMMAND);
      if (!runner.exited) this.kick(runner);
    }
    if (!this.started) this.resolveDone(stop);
  }

  /** Stops the VM and waits for every vCPU thread to end. */
  stop(message = 'stopped by the VMM'): Promise<VmStop> {
    this.requestStop({ reason: 'stopped', message });
    return this.done;
  }

  /** Brings every vCPU out of KVM_RUN and parks it (for snapshots, or to change state). */
  async pause(): Promise<void> {
    for (const runner of this.runners) {
      if (Atomics.load(runner.ctl, Ctl.COMMAND) === Command.STOP) continue;
      Atomics.store(runner.ctl, Ctl.COMMAND, Command.PAUSE);
      this.kick(runner);
    }
    for (const runner of this.runners) {
      while (Atomics.load(runner.ctl, Ctl.PARKED) === 0 && Atomics.load(runner.ctl, Ctl.FINISHED) === 0) {
        if (Atomics.load(runner.ctl, Ctl.COMMAND) !== Command.PAUSE) break;
        const wait = waitAsync(runner.ctl, Ctl.PARKED, 0, 1000);
        if (wait.async) await wait.value;
      }
    }
    // Parked vCPUs post nothing more: bring the devices up to date for a consistent snapshot.
    this.drainPostedWrites();
  }

  resume(): void {
    for (const runner of this.runners) {
      if (Atomics.compareExchange(runner.ctl, Ctl.COMMAND, Command.PAUSE, Command.RUN) === Command.PAUSE) {
        Atomics.notify(runner.ctl, Ctl.COMMAND);
      }
    }
  }

  /** True while parked by pause(). */
  get paused(): boolean {
    return this.runners.every((r) => Atomics.load(r.ctl, Ctl.PARKED) === 1 || r.exited);
  }

  stats(): VcpuStats[] {
    return this.runners.map((r) => {
      const handoff = Atomics.load(r.ctl, Ctl.HANDOFF);
      const onMain = handoff === Handoff.MAIN || handoff === Handoff.WANTED;
      return {
        localExits: Atomics.load(r.ctl, Ctl.LOCAL_EXITS),
        forwardedExits: Atomics.load(r.ctl, Ctl.FORWARDED_EXITS),
        postedExits: Atomics.load(r.ctl, Ctl.POSTED_EXITS),
        mainThreadExits: r.mainThreadExits,
        thread: r.exited || handoff === Handoff.ABANDONED ? 'none' : onMain ? 'main' : 'worker',
      };
    });
  }

  private kick(runner: Runner): void {
    try {
      native().kick(runner.vcpu.fd);
    } catch (error) {
      this.log(`vcpu ${runner.index}: kick failed: ${(error as Error).message}`);
    }
  }

  /**
   * The main-thread side of one vCPU's mailbox: answers forwarded exits until the worker ends.
   * Waking through the event loop (waitAsync) costs tens of microseconds, so after an answer
   * the main thread waits briefly (Atomics.wait, sleeping, not spinning) for the same vCPU's
   * next exit: device exits come in bursts (a string to the UART, a PCI scan). The event loop
   * is held at most `burstBudgetMs` before it gets its turn.
   */
  private async serve(runner: Runner): Promise<void> {
    const ctl = runner.ctl;
    const lingerMs = (this.options.lingerMicros ?? DEFAULT_LINGER_MICROS) / 1000;
    const budgetMs = this.options.burstBudgetMs ?? DEFAULT_BURST_BUDGET_MS;
    let bell = 0;
    let seen = 0;
    while (!runner.exited) {
      const wait = waitAsync(ctl, Ctl.DOORBELL, bell);
      if (wait.async) await wait.value;
      // Only lingering needs the clock (and its first read loads perf_hooks: the first exit of a
      // VM, its first console byte, would wait for that).
      const burstStart = lingerMs > 0 ? performance.now() : 0;
      for (;;) {
        // Read the doorbell before looking, so anything rung after this is not slept through.
        bell = Atomics.load(ctl, Ctl.DOORBELL);
        this.drainPostedWrites();
        const request = Atomics.load(ctl, Ctl.REQUEST);
        if (request === seen) {
          if (this.postedPending()) continue;
          break;
        }
        seen = request;
        const keepRunning = this.handle(runner) && !this.stopResult;
        Atomics.store(ctl, Ctl.ANSWER, keepRunning ? Answer.CONTINUE : Answer.STOP);
        Atomics.store(ctl, Ctl.RESPONSE, request);
        Atomics.notify(ctl, Ctl.RESPONSE);
        if (!keepRunning || lingerMs <= 0 || performance.now() - burstStart > budgetMs) break;
        Atomics.wait(ctl, Ctl.DOORBELL, bell, lingerMs);
      }
    }
  }

  private postedPending(): boolean {
    return this.options.postedWrites !== undefined && this.runners.some((r) => r.ring.pending > 0);
  }

  /** Applies every vCPU's posted writes, oldest first per vCPU. */
  private drainPostedWrites(): void {
    if (!this.options.postedWrites) return;
    for (const runner of this.runners) {
      if (runner.ring.pending === 0) continue;
      runner.ring.drain((space, address, data) => {
        const bus = space === SPACE_PIO ? this.options.pio : this.options.mmio;
        try {
          if (!bus.write(address, data))
            this.logUnclaimed(
              space === SPACE_PIO ? 'port' : 'mmio',
              address,
              true,
              data.length,
              runner.index,
            );
        } catch (error) {
          this.log(`vcpu ${runner.index}: posted write handler failed: ${(error as Error).stack ?? error}`);
        }
      });
    }
  }

  /** Answers one forwarded exit; false ends the VM. */
  private handle(runner: Runner): boolean {
    const exit = runner.exit;
    const reason = exit.reason;
    try {
      if (reason === ExitReason.IO) {
        if (!dispatchIo(this.options.pio, exit)) this.unclaimed('port', exit.port, exit, runner);
        return true;
      }
      if (reason === ExitReason.MMIO) {
        if (!dispatchMmio(this.options.mmio, exit))
          this.unclaimed('mmio', Number(exit.mmioAddress), exit, runner);
        return true;
      }
      const special = this.options.onSpecialExit?.({ index: runner.index, vcpu: runner.vcpu, reason, exit });
      const decision = special ?? this.defaultPolicy(runner);
      if (decision === 'continue' || decision === undefined) return true;
      this.requestStop(decision);
      return false;
    } catch (error) {
      // A device bug must not take the VM host down: log it and let the guest carry on.
      this.log(
        `vcpu ${runner.index}: ${exitReasonName(reason)} handler failed: ${(error as Error).stack ?? error}`,
      );
      return true;
    }
  }

  private unclaimed(space: 'port' | 'mmio', address: number, exit: ExitBuffer, runner: Runner): void {
    this.logUnclaimed(space, address, exit.isWrite, exit.size, runner.index);
  }

  private logUnclaimed(
    space: 'port' | 'mmio',
    address: number,
    isWrite: boolean,
    size: number,
    index: number,
  ): void {
    const key = `${space}:${address}:${isWrite}`;
    if (this.unclaimedLogged.has(key)) return;
    this.unclaimedLogged.add(key);
    const what = space === 'port' ? `port 0x${address.toString(16)}` : `MMIO 0x${address.toString(16)}`;
    (this.options.debug ?? this.log)(
      `vcpu ${index}: guest ${isWrite ? 'wrote' : 'read'} ${size} byte(s) at ${what}: nothing there (${isWrite ? 'ignored' : 'reads all-ones'}; logged once)`,
    );
  }

  private defaultPolicy(runner: Runner): ExitDecision {
    const exit = runner.exit;
    const index = runner.index;
    switch (exit.reason) {
      case ExitReason.HLT:
        // With the local APICs in KVM (full or split irqchip), KVM waits for interrupts itself; a
        // HLT exit just resumes.
        return 'continue';
      case ExitReason.SHUTDOWN:
        return {
          reason: 'reset',
          vcpu: index,
          message: `vCPU ${index}: triple fault (KVM_EXIT_SHUTDOWN): the machine resets`,
        };
      case ExitReason.SYSTEM_EVENT: {
        const event = decodeSystemEvent(exit.union());
        if (event.type === SystemEvent.SHUTDOWN)
          return { reason: 'shutdown', vcpu: index, message: 'guest powered off' };
        if (event.type === SystemEvent.RESET)
          return { reason: 'reset', vcpu: index, message: 'guest requested a reset' };
        if (event.type === SystemEvent.CRASH)
          return { reason: 'error', vcpu: index, message: 'guest crashed (system event)' };
        this.log(`vcpu ${index}: system event ${systemEventName(event.type)} ignored`);
        return 'continue';
      }
      case ExitReason.FAIL_ENTRY: {
        const fail = decodeFailEntry(exit.union());
        return {
          reason: 'error',
          vcpu: index,
          message: `vCPU ${index}: KVM could not enter the guest (hardware reason 0x${fail.hardwareReason.toString(16)})`,
        };
      }
      case ExitReason.INTERNAL_ERROR: {
        const info = decodeInternalError(exit.union());
        const decision = this.options.onInternalError?.(runner.vcpu, info, index);
        if (decision !== undefined) return decision;
        const words = info.data.map((w) => `0x${w.toString(16)}`).join(' ');
        return {
          reason: 'error',
          vcpu: index,
          message: `vCPU ${index}: KVM internal error: ${internalErrorName(info.suberror)} (data ${words})`,
        };
      }
      default:
        return {
          reason: 'error',
          vcpu: index,
          message: `vCPU ${index}: unexpected exit ${exitReasonName(exit.reason)}`,
        };
    }
  }
}
