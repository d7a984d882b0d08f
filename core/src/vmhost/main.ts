// The VM host process: one per running VM, started detached by the supervisor. It runs the Machine,
// keeps the console history, and serves one supervisor connection at a time on its own Unix socket,
// so the VM outlives a daemon restart and the new daemon reattaches. When the VM ends the host
// writes an exit record (for a daemon that is not connected), tells a connected daemon, and exits.

import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { encodeMessage, readLines } from '../api/framing.js';
import { ErrorCode, MAX_MESSAGE_BYTES } from '../api/schema.js';
import type { Machine, MachineExit, MachineIo } from '../machine/machine.js';
import { writeFileAtomic } from '../manager/atomic-file.js';
import { ByteRing } from '../manager/byte-ring.js';
import {
  decodeLaunch,
  type HostExit,
  type HostLaunch,
  type HostMessage,
  type HostRequest,
  type HostVmState,
} from './protocol.js';

type HostedMachine = Pick<
  Machine,
  'run' | 'sendConsoleInput' | 'sendConsoleBreak' | 'pressPowerButton' | 'pause' | 'resume' | 'reset' | 'stop'
>;

interface MachineFactory {
  create(config: HostLaunch['config'], io: MachineIo): Promise<HostedMachine>;
  isInputError(error: unknown): boolean;
}

/** The real Machine, or the test stand-in when VIREO_FAKE_MACHINE=1 (loaded lazily: no KVM addon). */
async function machineFactory(): Promise<MachineFactory> {
  if (process.env.VIREO_FAKE_MACHINE === '1') {
    const { FakeMachine } = await import('./fake-machine.js');
    return { create: (config, io) => FakeMachine.create(config, io), isInputError: () => true };
  }
  const { Machine, MachineInputError } = await import('../machine/machine.js');
  return {
    // Under the daemon a guest that resets reboots in place, as a PC does.
    create: (config, io) => Machine.create(config, io, { onGuestReset: 'reboot' }),
    isInputError: (error) => error instanceof MachineInputError,
  };
}

class VmHost {
  private readonly history: ByteRing;
  private state: HostVmState = 'starting';
  private machine: HostedMachine | undefined;
  private connection: Socket | undefined;
  private started = false;
  private ending = false;
  private pendingConsole: Buffer[] = [];

  constructor(private readonly launch: HostLaunch) {
    this.history = new ByteRing(launch.historyBytes);
  }

  listen(): void {
    mkdirSync(dirname(this.launch.socket), { recursive: true, mode: 0o700 });
    rmSync(this.launch.socket, { force: true });
    const server = createServer((socket) => this.accept(socket));
    server.on('error', (error) => {
      this.log(`socket error: ${error.message}`);
      process.exit(3);
    });
    const previousUmask = process.umask(0o077);
    server.listen(this.launch.socket, () => {
      process.umask(previousUmask);
      chmodSync(this.launch.socket, 0o600);
    });
  }

  private accept(socket: Socket): void {
    // One supervisor at a time: a newer connection (a restarted daemon) replaces an older one.
    this.connection?.destroy();
    this.connection = socket;
    readLines(socket, MAX_MESSAGE_BYTES, (line) => this.handleLine(line));
    socket.on('error', () => {});
    socket.on('close', () => {
      if (this.connection === socket) this.connection = undefined;
    });
    this.send({
      type: 'hello',
      id: this.launch.id,
      pid: process.pid,
      state: this.state,
      history: this.history.contents().toString('base64'),
    });
  }

  private send(message: HostMessage): void {
    const connection = this.connection;
    if (connection && !connection.destroyed) connection.write(encodeMessage(message));
  }

  private log(line: string): void {
    process.stderr.write(`${new Date().toISOString()} ${line}\n`);
    this.send({ type: 'log', line });
  }

  private setState(state: HostVmState): void {
    this.state = state;
    this.send({ type: 'state', state });
  }

  private handleLine(line: string): void {
    let request: HostRequest;
    try {
      request = JSON.parse(line) as HostRequest;
    } catch {
      this.log('ignored a malformed message from the supervisor');
      return;
    }
    this.handle(request).then(
      () => this.send({ type: 'reply', seq: request.seq }),
      (error: unknown) => {
        const failure = error as Error & { code?: number };
        this.send({
          type: 'reply',
          seq: request.seq,
          error: {
            code: typeof failure.code === 'number' ? failure.code : ErrorCode.internalError,
            message: failure.message,
          },
        });
      },
    );
  }

  private async handle(request: HostRequest): Promise<void> {
    switch (request.command) {
      case 'start':
        return this.start();
      case 'input': {
        const machine = this.machine;
        if (!machine) throw codedError(ErrorCode.invalidState, 'the VM is not running yet');
        if (request.break && !machine.sendConsoleBreak()) {
          throw codedError(ErrorCode.notSupported, 'a BREAK needs the serial console (this VM uses virtio)');
        }
        machine.sendConsoleInput(Buffer.from(request.data ?? '', 'base64'));
        return;
      }
      case 'power-button':
        if (!this.machine) throw codedError(ErrorCode.invalidState, 'the VM is not running yet');
        this.machine.pressPowerButton();
        return;
      case 'pause': {
        const machine = this.machine;
        if (!machine || this.state !== 'running') throw codedError(ErrorCode.invalidState, 'not running');
        await machine.pause();
        this.setState('paused');
        return;
      }
      case 'resume': {
        const machine = this.machine;
        if (!machine || this.state !== 'paused') throw codedError(ErrorCode.invalidState, 'not paused');
        machine.resume();
        this.setState('running');
        return;
      }
      case 'reset': {
        const machine = this.machine;
        if (!machine || (this.state !== 'running' && this.state !== 'paused')) {
          throw codedError(ErrorCode.invalidState, 'not running');
        }
        await machine.reset();
        // A reset machine runs its new boot, even if it was paused before.
        if (!this.ending) this.setState('running');
        return;
      }
      case 'stop':
        if (!this.machine) {
          this.end({ reason: 'stopped' });
          return;
        }
        this.setState('stopping');
        await this.machine.stop();
        return;
      default:
        throw codedError(ErrorCode.methodNotFound, `unknown command '${String(request.command)}'`);
    }
  }

  private async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const factory = await machineFactory();
    try {
      this.machine = await factory.create(this.launch.config, {
        onConsoleOutput: (bytes) => this.consoleOutput(bytes),
        log: (line) => this.log(line),
        onReboot: (message) => {
          this.flushConsole();
          this.send({ type: 'reset', message, at: new Date().toISOString() });
        },
        onNetworkLink: (up, message) => this.send({ type: 'network', up, message }),
      });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const kind = factory.isInputError(error) ? 'invalid VM inputs' : 'cannot create the VM';
      this.log(`${kind}: ${message}`);
      this.end({ reason: 'start-failed', message: `${kind}: ${message}` });
      throw codedError(ErrorCode.startFailed, `${kind}: ${message}`);
    }
    this.setState('running');
    this.machine.run().then(
      (exit) => this.end(fromMachineExit(exit)),
      (error: unknown) =>
        this.end({ reason: 'error', message: `the VM failed: ${(error as Error).message}` }),
    );
  }

  /** A UART hands over a byte at a time: send what one event-loop turn produced as one message. */
  private consoleOutput(bytes: Uint8Array): void {
    this.history.push(bytes);
    this.pendingConsole.push(Buffer.from(bytes));
    if (this.pendingConsole.length === 1) setImmediate(() => this.flushConsole());
  }

  private flushConsole(): void {
    if (this.pendingConsole.length === 0) return;
    const data = Buffer.concat(this.pendingConsole).toString('base64');
    this.pendingConsole = [];
    this.send({ type: 'console', data });
  }

  /** SIGTERM: switch the VM off and leave with an exit record, rather than vanish as a crash. */
  terminate(): void {
    if (this.machine) void this.machine.stop();
    else this.end({ reason: 'stopped' });
  }

  /** Records how the VM ended, tells the supervisor, and leaves. */
  private end(exit: HostExit): void {
    if (this.ending) return;
    this.ending = true;
    const at = new Date().toISOString();
    try {
      writeFileAtomic(
        this.launch.exitFile,
        JSON.stringify({ exit, at, history: this.history.contents().toString('base64') }),
      );
    } catch (error) {
      process.stderr.write(`cannot write the exit record: ${(error as Error).message}\n`);
    }
    this.log(`VM ended: ${exit.reason}${'message' in exit ? ` (${exit.message})` : ''}`);
    // After the reply to a command that ended the VM (console input "poweroff", stop) goes out.
    setImmediate(() => {
      this.flushConsole();
      this.send({ type: 'exit', exit, at });
    });
    const leave = () => {
      rmSync(this.launch.socket, { force: true });
      process.exit(0);
    };
    const connection = this.connection;
    if (connection && !connection.destroyed) {
      // Give the reply to the command that caused this a moment to go out first.
      setTimeout(() => connection.end(leave), 20);
      setTimeout(leave, 2000).unref();
    } else {
      leave();
    }
  }
}

function codedError(code: number, message: string): Error & { code: number } {
  return Object.assign(new Error(message), { code });
}

function fromMachineExit(exit: MachineExit): HostExit {
  return exit.reason === 'error' ? { reason: 'error', message: exit.message } : { reason: exit.reason };
}

const launchArg = process.argv[2];
if (!launchArg) {
  process.stderr.write('usage: vmhost <launch description>; started by the Vireo supervisor\n');
  process.exit(2);
}
// The terminal the daemon was started from must not stop the VM.
process.on('SIGHUP', () => {});
process.on('SIGINT', () => {});
const launch = decodeLaunch(launchArg);
const host = new VmHost(launch);
process.on('SIGTERM', () => host.terminate());
host.listen();
if (process.env.VIREO_FAKE_MACHINE !== '1') {
  // A vCPU worker boots a Node environment of its own (tens of ms): let them boot while the
  // supervisor connects and the Machine is built, rather than after (bench/api-roundtrip.ts).
  const { prestartVcpuWorkers } = await import('../kvm/vcpu-threads.js');
  prestartVcpuWorkers(launch.config.cpus);
}
