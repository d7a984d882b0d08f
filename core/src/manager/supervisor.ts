// The supervisor: starts one VM host process per running VM and tracks each VM's state,
//   stopped -> starting -> running <-> paused -> stopping -> stopped, and crashed.
// A host that dies is recorded as crashed with its exit reason and the guest's last console lines;
// other VMs and the supervisor go on. Hosts are detached and listen on their own sockets, so a
// restarted supervisor reattaches to the VMs that kept running (reattach()).

import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeMessage, readLines } from '../api/framing.js';
import {
  ApiError,
  ErrorCode,
  MAX_MESSAGE_BYTES,
  type VmExit,
  VmExit as VmExitSchema,
  type VmSpec,
  type VmState,
  type VmStatus,
} from '../api/schema.js';
import type { MachineConfig } from '../machine/config.js';
import {
  encodeLaunch,
  type HostCommand,
  type HostExit,
  type HostMessage,
  type HostRequest,
} from '../vmhost/protocol.js';
import { writeFileAtomic } from './atomic-file.js';
import { ByteRing } from './byte-ring.js';
import type { VmLibrary } from './library.js';
import { machineConfigFromSpec } from './machine-config.js';
import { type VireoPaths, vmHostExitFile, vmHostSocket } from './paths.js';

/** Console lines kept in a crash report. */
const CRASH_CONSOLE_LINES = 30;
/** How long a host gets to open its socket after it was spawned. */
const HOST_CONNECT_TIMEOUT_MS = 15_000;
/** How long a host gets to answer a command before it is considered hung. */
const HOST_COMMAND_TIMEOUT_MS = 15_000;
const STATUS_FILE = 'status.json';

export const DEFAULT_HOST_ENTRY = join(dirname(fileURLToPath(import.meta.url)), '..', 'vmhost', 'main.js');

export interface SupervisorOptions {
  paths: VireoPaths;
  library: VmLibrary;
  /** The VM host program (compiled vmhost/main.js). */
  hostEntry?: string;
  machineConfig?: (spec: VmSpec) => MachineConfig;
  log?: (line: string) => void;
}

export interface SupervisorEvents {
  state: [id: string, status: VmStatus];
  console: [id: string, bytes: Buffer];
  /** The VM rebooted in place (its guest reset it, or reset()); it stays running. */
  reset: [id: string, message: string];
  /** The VM's network link went up or down; it stays running. */
  network: [id: string, up: boolean, message: string];
}

interface Pending {
  resolve(): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/** The supervisor's side of one VM host process. */
class HostLink {
  socket: Socket | undefined;
  child: ChildProcess | undefined;
  pid: number | undefined;
  exited = false;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  readonly ended: Promise<void>;
  private markEnded!: () => void;

  constructor(readonly id: string) {
    this.ended = new Promise((resolve) => {
      this.markEnded = resolve;
    });
  }

  command(
    command: HostCommand,
    extra: Pick<HostRequest, 'data' | 'break'> = {},
    timeoutMs = HOST_COMMAND_TIMEOUT_MS,
  ): Promise<void> {
    const socket = this.socket;
    if (!socket || socket.destroyed) {
      return Promise.reject(new ApiError(ErrorCode.invalidState, 'the VM host is not connected'));
    }
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        reject(new ApiError(ErrorCode.internalError, `the VM host did not answer '${command}' in time`));
      }, timeoutMs);
      this.pending.set(seq, { resolve, reject, timer });
      socket.write(encodeMessage({ type: 'command', seq, command, ...extra } satisfies HostRequest));
    });
  }

  settle(seq: number, error?: { code: number; message: string }): void {
    const pending = this.pending.get(seq);
    if (!pending) return;
    this.pending.delete(seq);
    clearTimeout(pending.timer);
    if (error) pending.reject(new ApiError(error.code, error.message));
    else pending.resolve();
  }

  finish(): void {
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new ApiError(ErrorCode.internalError, 'the VM host went away'));
    }
    this.pending.clear();
    this.markEnded();
  }
}

interface VmRuntime {
  status: VmStatus;
  history: ByteRing;
  link: HostLink | undefined;
}

export class Supervisor extends EventEmitter<SupervisorEvents> {
  private readonly vms = new Map<string, VmRuntime>();
  private readonly hostEntry: string;
  private readonly machineConfig: (spec: VmSpec) => MachineConfig;
  private readonly log: (line: string) => void;

  constructor(private readonly options: SupervisorOptions) {
    super();
    this.hostEntry = options.hostEntry ?? DEFAULT_HOST_ENTRY;
    this.machineConfig = options.machineConfig ?? ((spec) => machineConfigFromSpec(spec));
    this.log = options.log ?? (() => {});
    mkdirSync(join(options.paths.runtimeDir, 'vms'), { recursive: true, mode: 0o700 });
  }

  status(id: string): VmStatus {
    return this.runtime(id).status;
  }

  history(id: string): Buffer {
    return this.runtime(id).history.contents();
  }

  isActive(id: string): boolean {
    const state = this.vms.get(id)?.status.state;
    return state !== undefined && state !== 'stopped' && state !== 'crashed';
  }

  /** Forget a deleted VM (it must not be running). */
  forget(id: string): void {
    if (this.isActive(id)) throw new ApiError(ErrorCode.invalidState, `VM '${id}' is running; stop it first`);
    this.vms.delete(id);
  }

  async start(spec: VmSpec): Promise<VmStatus> {
    const vm = this.runtime(spec.id);
    if (this.isActive(spec.id)) {
      throw new ApiError(ErrorCode.invalidState, `VM '${spec.name}' is already ${vm.status.state}`);
    }
    const config = this.machineConfig(spec);
    vm.history = new ByteRing(spec.console.historyBytes);
    this.setState(spec.id, 'starting', { pid: undefined });
    const link = new HostLink(spec.id);
    vm.link = link;
    const socketPath = vmHostSocket(this.options.paths, spec.id);
    const exitFile = vmHostExitFile(this.options.paths, spec.id);
    rmSync(exitFile, { force: true });
    rmSync(socketPath, { force: true });

    const logPath = join(this.options.library.vmsDir, spec.id, 'host.log');
    const logFd = openSync(logPath, 'a', 0o600);
    let child: ChildProcess;
    try {
      child = spawn(
        process.execPath,
        [
          this.hostEntry,
          encodeLaunch({
            id: spec.id,
            socket: socketPath,
            exitFile,
            config,
            historyBytes: spec.console.historyBytes,
          }),
        ],
        { detached: true, stdio: ['ignore', logFd, logFd] },
      );
    } finally {
      closeSync(logFd);
    }
    child.unref();
    link.child = child;
    link.pid = child.pid;
    const childExit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', () => resolve({ code: null, signal: null }));
    });
    this.setState(spec.id, 'starting', { pid: child.pid });

    try {
      await this.connectLink(link, socketPath, childExit);
      await link.command('start');
    } catch (error) {
      if (!link.exited) {
        await Promise.race([link.ended, delay(2000)]);
      }
      if (!link.exited) {
        child.kill('SIGKILL');
        this.recordExit(spec.id, {
          reason: 'start-failed',
          message: (error as Error).message,
          at: new Date().toISOString(),
        });
      }
      const lastExit = vm.status.lastExit;
      throw new ApiError(ErrorCode.startFailed, lastExit?.message ?? (error as Error).message, lastExit);
    }
    return vm.status;
  }

  /** Ask the guest to power off (ACPI power button), force it off after `timeoutMs`; or at once. */
  async stop(id: string, options: { force: boolean; timeoutMs: number }): Promise<VmStatus> {
    const vm = this.runtime(id);
    const link = vm.link;
    if (!this.isActive(id) || !link) {
      throw new ApiError(ErrorCode.invalidState, `VM '${id}' is not running (${vm.status.state})`);
    }
    if (!options.force && vm.status.state !== 'paused') {
      this.setState(id, 'stopping');
      try {
        await link.command('power-button');
        await Promise.race([link.ended, delay(options.timeoutMs)]);
      } catch (error) {
        this.log(`${id}: power button failed (${(error as Error).message}); forcing off`);
      }
    }
    if (!link.exited) {
      this.setState(id, 'stopping');
      try {
        await link.command('stop');
        await Promise.race([link.ended, delay(5000)]);
      } catch (error) {
        this.log(`${id}: stop failed (${(error as Error).message}); killing the VM host`);
      }
      if (!link.exited) {
        this.killHost(link);
        await Promise.race([link.ended, delay(5000)]);
      }
    }
    return vm.status;
  }

  async pause(id: string): Promise<VmStatus> {
    const link = this.requireState(id, ['running']);
    await link.command('pause');
    return this.status(id);
  }

  async resume(id: string): Promise<VmStatus> {
    const link = this.requireState(id, ['paused']);
    await link.command('resume');
    return this.status(id);
  }

  /** The reset button: the VM host reboots the machine in place; it runs again (also if paused). */
  async reset(id: string): Promise<VmStatus> {
    const link = this.requireState(id, ['running', 'paused']);
    await link.command('reset');
    return this.status(id);
  }

  /** Console input for the guest; with `sendBreak`, a BREAK on the serial line comes first. */
  async consoleWrite(id: string, bytes: Buffer, sendBreak = false): Promise<void> {
    const link = this.requireState(id, ['running', 'paused']);
    await link.command('input', { data: bytes.toString('base64'), ...(sendBreak ? { break: true } : {}) });
  }

  /** Finds VM hosts left by an earlier supervisor: reattaches to live ones, records the ended ones. */
  async reattach(): Promise<void> {
    const dir = join(this.options.paths.runtimeDir, 'vms');
    const names = readdirSync(dir);
    const ids = new Set<string>();
    for (const name of names) {
      const match = /^(.+)\.(sock|exit\.json)$/.exec(name);
      if (match?.[1]) ids.add(match[1]);
    }
    for (const id of ids) {
      const socketPath = vmHostSocket(this.options.paths, id);
      const vm = this.runtime(id);
      if (existsSync(socketPath)) {
        const link = new HostLink(id);
        vm.link = link;
        try {
          await this.connectLink(link, socketPath, undefined, 0);
          this.log(`${id}: reattached to VM host ${link.pid}`);
          if (vm.status.state === 'starting') {
            // Its start was cut short with the old daemon; nobody is waiting for it any more.
            await link.command('stop').catch(() => {});
          }
          continue;
        } catch {
          rmSync(socketPath, { force: true });
          vm.link = undefined;
        }
      }
      if (!this.consumeExitFile(id)) {
        this.recordExit(id, {
          reason: 'crashed',
          message: 'the VM host process ended while the daemon was not running',
          at: new Date().toISOString(),
        });
      }
    }
  }

  /** Disconnects from every VM host without stopping them (the daemon is going away). */
  detachAll(): void {
    for (const vm of this.vms.values()) vm.link?.socket?.destroy();
  }

  listIds(): string[] {
    return [...this.vms.keys()];
  }

  private requireState(id: string, states: VmState[]): HostLink {
    const vm = this.runtime(id);
    if (!states.includes(vm.status.state) || !vm.link) {
      throw new ApiError(
        ErrorCode.invalidState,
        `VM '${id}' is ${vm.status.state}; this needs it ${states.join(' or ')}`,
      );
    }
    return vm.link;
  }

  private runtime(id: string): VmRuntime {
    let vm = this.vms.get(id);
    if (!vm) {
      vm = { status: this.loadStatus(id), history: new ByteRing(64 * 1024), link: undefined };
      this.vms.set(id, vm);
    }
    return vm;
  }

  private statusPath(id: string): string {
    return join(this.options.library.vmsDir, id, STATUS_FILE);
  }

  /** The last recorded end of a VM that is not running (kept on disk across daemon restarts). */
  private loadStatus(id: string): VmStatus {
    const fallback: VmStatus = { state: 'stopped', since: new Date().toISOString() };
    try {
      const saved = JSON.parse(readFileSync(this.statusPath(id), 'utf8')) as {
        state?: unknown;
        since?: unknown;
        lastExit?: unknown;
      };
      const lastExit = VmExitSchema.safeParse(saved.lastExit);
      const state = saved.state === 'crashed' ? 'crashed' : 'stopped';
      return {
        state,
        since: typeof saved.since === 'string' ? saved.since : fallback.since,
        lastExit: lastExit.success ? lastExit.data : undefined,
      };
    } catch {
      return fallback;
    }
  }

  private setState(id: string, state: VmState, extra: Partial<VmStatus> = {}): void {
    const vm = this.runtime(id);
    const changed = vm.status.state !== state;
    vm.status = {
      ...vm.status,
      ...extra,
      state,
      since: changed ? new Date().toISOString() : vm.status.since,
    };
    if (state === 'stopped' || state === 'crashed') {
      delete vm.status.pid;
      if (existsSync(join(this.options.library.vmsDir, id))) {
        try {
          writeFileAtomic(this.statusPath(id), JSON.stringify(vm.status));
        } catch (error) {
          this.log(`${id}: cannot record its status: ${(error as Error).message}`);
        }
      }
    }
    if (changed || Object.keys(extra).length > 0) this.emit('state', id, vm.status);
  }

  private recordExit(id: string, exit: VmExit): void {
    const vm = this.runtime(id);
    const crashed = exit.reason === 'crashed' || exit.reason === 'error';
    const consoleTail = vm.history.lastLines(CRASH_CONSOLE_LINES);
    // A reset (a panicking guest with panic=-1 ends this way too) also keeps the console's last words.
    const keepTail = crashed || exit.reason === 'start-failed' || exit.reason === 'reset';
    const lastExit: VmExit = keepTail ? { ...exit, consoleTail } : exit;
    if (vm.link) {
      vm.link.exited = true;
      vm.link.finish();
      vm.link.socket?.destroy();
      vm.link = undefined;
    }
    rmSync(vmHostExitFile(this.options.paths, id), { force: true });
    this.log(`${id}: ${lastExit.reason}${lastExit.message ? `: ${lastExit.message}` : ''}`);
    this.setState(id, crashed ? 'crashed' : 'stopped', { lastExit });
  }

  private consumeExitFile(id: string): boolean {
    const file = vmHostExitFile(this.options.paths, id);
    let record: { exit: HostExit; at: string; history?: string };
    try {
      record = JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      return false;
    }
    const vm = this.runtime(id);
    if (record.history) {
      vm.history = new ByteRing(vm.history.capacity);
      vm.history.push(Buffer.from(record.history, 'base64'));
    }
    this.recordExit(id, hostExitToVmExit(record.exit, record.at));
    return true;
  }

  private async connectLink(
    link: HostLink,
    socketPath: string,
    childExit?: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
    timeoutMs = HOST_CONNECT_TIMEOUT_MS,
  ): Promise<void> {
    let childGone: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    void childExit?.then((exit) => {
      childGone = exit;
    });
    const deadline = Date.now() + timeoutMs;
    let socket: Socket | undefined;
    while (!socket) {
      if (childGone) {
        throw new ApiError(ErrorCode.startFailed, `the VM host process ${describeProcessEnd(childGone)}`);
      }
      try {
        socket = await tryConnect(socketPath);
      } catch (error) {
        if (Date.now() >= deadline) {
          throw new ApiError(
            ErrorCode.startFailed,
            `the VM host did not open its socket: ${(error as Error).message}`,
          );
        }
        await delay(25);
      }
    }
    link.socket = socket;
    const hello = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('the VM host did not say hello')),
        Math.max(timeoutMs, 2000),
      );
      this.wireSocket(link, socket, childExit, () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('close', () => {
        clearTimeout(timer);
        reject(new Error('the VM host closed its socket'));
      });
    });
    await hello;
  }

  private wireSocket(
    link: HostLink,
    socket: Socket,
    childExit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined,
    onHello: () => void,
  ): void {
    const id = link.id;
    readLines(socket, MAX_MESSAGE_BYTES, (line) => {
      let message: HostMessage;
      try {
        message = JSON.parse(line) as HostMessage;
      } catch {
        this.log(`${id}: malformed message from the VM host`);
        return;
      }
      this.onHostMessage(link, message, onHello);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      if (link.exited || this.vms.get(id)?.link !== link) return;
      void this.onHostGone(link, childExit);
    });
  }

  private onHostMessage(link: HostLink, message: HostMessage, onHello: () => void): void {
    const id = link.id;
    const vm = this.runtime(id);
    if (vm.link !== link) return;
    switch (message.type) {
      case 'hello':
        link.pid = message.pid;
        if (message.history) {
          const bytes = Buffer.from(message.history, 'base64');
          if (bytes.length > 0) {
            vm.history = new ByteRing(Math.max(vm.history.capacity, bytes.length));
            vm.history.push(bytes);
          }
        }
        this.setState(id, message.state, { pid: message.pid });
        onHello();
        return;
      case 'state':
        this.setState(id, message.state);
        return;
      case 'console': {
        const bytes = Buffer.from(message.data, 'base64');
        vm.history.push(bytes);
        this.emit('console', id, bytes);
        return;
      }
      case 'log':
        this.log(`${id}: ${message.line}`);
        return;
      case 'reset':
        this.emit('reset', id, message.message);
        return;
      case 'network':
        this.log(`${id}: network link ${message.up ? 'up' : 'down'}: ${message.message}`);
        this.emit('network', id, message.up, message.message);
        return;
      case 'reply':
        link.settle(message.seq, message.error);
        return;
      case 'exit':
        this.recordExit(id, hostExitToVmExit(message.exit, message.at));
        return;
    }
  }

  /** The host's socket closed without an exit message: it crashed or was killed. */
  private async onHostGone(
    link: HostLink,
    childExit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined,
  ): Promise<void> {
    const id = link.id;
    let how = 'ended without saying why';
    if (childExit) {
      const exit = await Promise.race([childExit, delay(2000).then(() => undefined)]);
      if (exit) how = describeProcessEnd(exit);
    }
    if (link.exited || this.vms.get(id)?.link !== link) return;
    // It may have written its exit record and died before telling us.
    if (this.consumeExitFile(id)) return;
    this.recordExit(id, {
      reason: 'crashed',
      message: `the VM host process ${how}`,
      at: new Date().toISOString(),
    });
  }

  private killHost(link: HostLink): void {
    const pid = link.pid;
    if (pid === undefined) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

function hostExitToVmExit(exit: HostExit, at: string): VmExit {
  return 'message' in exit ? { reason: exit.reason, message: exit.message, at } : { reason: exit.reason, at };
}

function describeProcessEnd(exit: { code: number | null; signal: NodeJS.Signals | null }): string {
  if (exit.signal) return `was killed by ${exit.signal}`;
  if (exit.code !== null) return `exited with status ${exit.code}`;
  return 'could not be started';
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function tryConnect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}
