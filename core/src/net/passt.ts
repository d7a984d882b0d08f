// User-mode networking through passt (https://passt.top): NAT, DHCP, DNS, NDP/DHCPv6 and port
// forwards with no privileges. The VMM starts passt with one end of a Unix socket pair (--fd: no
// socket file, nothing to connect to or race for) and speaks its stream protocol on the other
// (frame-stream.ts). passt runs with --one-off, so it ends when our end closes, even if the VM
// host dies without cleaning up; close() also kills it. When passt dies the link goes down and
// passt is restarted with a growing delay.

import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, closeSync, constants } from 'node:fs';
import { Socket } from 'node:net';
import { delimiter, join } from 'node:path';
import type { NetBackend, NetBackendEvents } from './backend.js';
import type { PortForward } from './config.js';
import { encodeStreamFrame, StreamFrameDecoder } from './frame-stream.js';
import { socketPair } from './native-net.js';

/** Bytes queued towards passt before the device stops taking frames from the guest. */
const SEND_HIGH_WATER = 512 * 1024;
/** passt's end of the socket pair, in its fd table. */
const PASST_FD = 3;
/** passt prints its addresses once it has bound the forwarded ports and is about to serve. */
const READY_LINE = /^(Template interface|MAC:|DHCP:)/;
/** A passt that says nothing is taken as ready after this long. */
const READY_FALLBACK_MS = 3000;
const FIRST_RESTART_DELAY_MS = 500;
const MAX_RESTART_DELAY_MS = 30_000;
/** A passt that ran this long without dying starts the delay over. */
const STABLE_AFTER_MS = 30_000;
/** passt's stderr lines kept for error messages. */
const STDERR_LINES = 8;

/** The passt binary on PATH, or undefined when passt is not installed. */
export function findPasst(path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'passt');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

/** passt's command line for the connected socket at `fd` and the port forwards. */
export function passtArgs(fd: number, forwards: readonly PortForward[]): string[] {
  const args = ['--foreground', '--one-off', '--fd', String(fd)];
  for (const f of forwards) {
    args.push(
      f.protocol === 'tcp' ? '--tcp-ports' : '--udp-ports',
      `${f.hostAddress}/${f.hostPort}:${f.guestPort}`,
    );
  }
  return args;
}

export interface PasstOptions {
  forwards?: readonly PortForward[];
  /** passt's path (default: found on PATH). */
  binary?: string;
  log(line: string): void;
  /** First restart delay after passt dies (doubles up to 30 s). */
  restartDelayMs?: number;
}

export class PasstError extends Error {
  override name = 'PasstError';
}

/** One running passt and our connection to it. */
interface Session {
  child: ChildProcess;
  socket: Socket;
  startedAt: number;
}

export class PasstBackend implements NetBackend {
  readonly description = 'passt';
  readonly vnetHeader = false;
  private session: Session | undefined;
  private events: NetBackendEvents | undefined;
  private receivePaused = false;
  private blocked = false;
  private closed = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private restartDelay: number;
  private readonly binary: string;

  private constructor(private readonly options: PasstOptions) {
    const binary = options.binary ?? findPasst();
    if (!binary)
      throw new PasstError('user-mode networking needs passt, which is not installed (apt install passt)');
    this.binary = binary;
    this.restartDelay = options.restartDelayMs ?? FIRST_RESTART_DELAY_MS;
  }

  /** Starts passt and connects to it; rejects with passt's own words when it cannot start. */
  static async launch(options: PasstOptions): Promise<PasstBackend> {
    const backend = new PasstBackend(options);
    try {
      backend.session = await backend.startPasst();
      backend.attach(backend.session);
    } catch (error) {
      backend.close();
      throw error;
    }
    return backend;
  }

  /** passt's process id while it runs. */
  get pid(): number | undefined {
    return this.session?.child.pid;
  }

  get up(): boolean {
    return this.session !== undefined;
  }

  get writable(): boolean {
    return !this.blocked;
  }

  start(events: NetBackendEvents): void {
    this.events = events;
    if (!this.receivePaused) this.session?.socket.resume();
  }

  send(pieces: readonly Uint8Array[]): boolean {
    const socket = this.session?.socket;
    if (!socket) return false;
    // The frames of one transmit burst leave in one writev: corked until the burst is over.
    if (socket.writableCorked === 0) {
      socket.cork();
      process.nextTick(() => socket.uncork());
    }
    socket.write(encodeStreamFrame(pieces));
    if (socket.writableLength >= SEND_HIGH_WATER) this.blocked = true;
    return true;
  }

  pauseReceive(): void {
    this.receivePaused = true;
    this.session?.socket.pause();
  }

  resumeReceive(): void {
    this.receivePaused = false;
    if (this.events) this.session?.socket.resume();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.restartTimer);
    this.end(this.session);
    this.session = undefined;
  }

  private end(session: Session | undefined): void {
    if (!session) return;
    session.socket.destroy();
    if (session.child.exitCode === null && session.child.signalCode === null) session.child.kill('SIGKILL');
  }

  /** Spawns passt on one end of a socket pair and resolves once it has set itself up. */
  private startPasst(): Promise<Session> {
    const [ours, theirs] = socketPair();
    let child: ChildProcess;
    try {
      child = spawn(this.binary, passtArgs(PASST_FD, this.options.forwards ?? []), {
        stdio: ['ignore', 'ignore', 'pipe', theirs],
      });
    } finally {
      closeSync(theirs); // passt has its own copy (or failed to start)
    }
    const socket = new Socket({ fd: ours, readable: true, writable: true });
    socket.pause();
    const stderr: string[] = [];
    let partial = '';
    let onReady = () => {};
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (text: string) => {
      const lines = (partial + text).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        // Root passt says so; without a system logger it also complains about every message.
        if (line === '' || line.startsWith('Failed to send') || line.startsWith("Don't run as root"))
          continue;
        if (READY_LINE.test(line)) onReady();
        stderr.push(line);
        if (stderr.length > STDERR_LINES) stderr.shift();
        if (process.env.VIREO_DEBUG) this.options.log(`passt: ${line}`);
      }
    });
    const said = () => (stderr.length > 0 ? `: ${stderr.join('; ')}` : '');

    return new Promise<Session>((resolve, reject) => {
      let settled = false;
      const fallback = setTimeout(() => onReady(), READY_FALLBACK_MS);
      const settle = () => {
        settled = true;
        clearTimeout(fallback);
        child.removeAllListeners('exit');
        child.removeAllListeners('error');
      };
      onReady = () => {
        if (settled) return;
        settle();
        resolve({ child, socket, startedAt: Date.now() });
      };
      const fail = (message: string) => {
        if (settled) return;
        settle();
        socket.destroy();
        reject(new PasstError(message));
      };
      child.once('error', (error) =>
        fail(`cannot start ${this.binary}: ${(error as NodeJS.ErrnoException).code}`),
      );
      child.once('exit', (code, signal) => {
        const failed = () => fail(`passt exited (${signal ?? `status ${code}`}) while starting${said()}`);
        // The stderr pipe may still hold passt's last words: read them first.
        if (child.stderr!.readableEnded) failed();
        else child.stderr!.once('end', failed);
      });
    }).then((session) => {
      // Seen once the session is up: passt's death, or the connection closing under us.
      let lost = false;
      const onLost = (why: string) => {
        if (lost || this.session !== session) return;
        lost = true;
        this.lost(session, why);
      };
      session.child.once('exit', (code, signal) => {
        if (signal === 'SIGTERM') onLost('the connection to passt closed');
        // Killed, passt said nothing about it; failing, its last lines say why.
        else if (signal) onLost(`passt exited (${signal})`);
        else onLost(`passt exited (status ${code})${code === 0 ? '' : said()}`);
      });
      // passt's end closes when passt dies, or our end broke: either way this passt is done, and
      // its exit (SIGTERM when it was us) says which.
      session.socket.once('close', () => session.child.kill('SIGTERM'));
      return session;
    });
  }

  /** Routes the session's frames to whichever device has the backend now. */
  private attach(session: Session): void {
    const decoder = new StreamFrameDecoder((frame) => this.events?.frame(frame));
    session.socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch (error) {
        this.options.log(`passt: ${(error as Error).message}; dropping the connection`);
        session.socket.destroy();
      }
    });
    session.socket.on('drain', () => {
      if (!this.blocked || this.session !== session) return;
      this.blocked = false;
      this.events?.writable();
    });
    session.socket.on('error', () => {}); // 'close' follows and says what matters
    if (this.events && !this.receivePaused) session.socket.resume();
  }

  private lost(session: Session, reason: string): void {
    this.end(session);
    this.session = undefined;
    this.blocked = false;
    if (this.closed) return;
    if (Date.now() - session.startedAt >= STABLE_AFTER_MS) {
      this.restartDelay = this.options.restartDelayMs ?? FIRST_RESTART_DELAY_MS;
    }
    const delay = this.restartDelay;
    this.restartDelay = Math.min(delay * 2, MAX_RESTART_DELAY_MS);
    this.events?.link(false, `${reason}; restarting it in ${formatDelay(delay)}`);
    this.restartTimer = setTimeout(() => this.restart(), delay);
    this.restartTimer.unref();
  }

  private restart(): void {
    if (this.closed) return;
    this.startPasst().then(
      (session) => {
        if (this.closed) {
          this.end(session);
          return;
        }
        this.session = session;
        this.attach(session);
        this.events?.link(true, 'passt restarted');
        this.events?.writable();
      },
      (error: Error) => {
        if (this.closed) return;
        const delay = this.restartDelay;
        this.restartDelay = Math.min(delay * 2, MAX_RESTART_DELAY_MS);
        this.options.log(`${error.message}; trying again in ${formatDelay(delay)}`);
        this.restartTimer = setTimeout(() => this.restart(), delay);
        this.restartTimer.unref();
      },
    );
  }
}

function formatDelay(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${ms / 1000} s`;
}
