// For tests: a real daemon process with its own temporary XDG_DATA_HOME and XDG_RUNTIME_DIR.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../api/client.js';
import { type VireoPaths, vireoPaths } from '../manager/paths.js';
import { DAEMON_ENTRY } from './connect.js';

export interface TestDaemon {
  root: string;
  env: NodeJS.ProcessEnv;
  paths: VireoPaths;
  child: ChildProcess;
  output(): string;
  client(): Promise<ApiClient>;
  /** SIGTERM and wait (VMs keep running). */
  stop(): Promise<void>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  /** A new daemon process over the same folders. */
  restart(): Promise<TestDaemon>;
  /** Kill the daemon and every VM host it started, remove the folders. */
  cleanup(): Promise<void>;
}

export function testEnv(root: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    XDG_DATA_HOME: join(root, 'data'),
    XDG_RUNTIME_DIR: join(root, 'run'),
    ...extra,
  };
}

export async function waitForSocket(
  socket: string,
  child: ChildProcess,
  output: () => string,
): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      (await ApiClient.connect(socket)).close();
      return;
    } catch {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`the daemon exited early:\n${output()}`);
      }
      if (Date.now() > deadline) throw new Error(`the daemon did not listen:\n${output()}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

export async function startTestDaemon(
  options: { fakeMachine?: boolean; root?: string; extraEnv?: NodeJS.ProcessEnv } = {},
): Promise<TestDaemon> {
  const root = options.root ?? mkdtempSync(join(tmpdir(), 'vireo-daemon-'));
  const env = testEnv(root, {
    ...(options.fakeMachine ? { VIREO_FAKE_MACHINE: '1' } : {}),
    ...options.extraEnv,
  });
  const paths = vireoPaths(env);
  const child = spawn(process.execPath, [DAEMON_ENTRY], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitForSocket(paths.socket, child, () => text);
  const clients: ApiClient[] = [];
  const daemon: TestDaemon = {
    root,
    env,
    paths,
    child,
    output: () => text,
    async client() {
      const client = await ApiClient.connect(paths.socket);
      clients.push(client);
      return client;
    },
    async stop() {
      for (const client of clients) client.close();
      child.kill('SIGTERM');
      await exited;
    },
    async kill() {
      for (const client of clients) client.close();
      child.kill('SIGKILL');
      await exited;
    },
    restart() {
      return startTestDaemon({ ...options, root });
    },
    async cleanup() {
      if (child.exitCode === null && child.signalCode === null) await daemon.kill();
      killDaemonOf(root);
      killVmHosts(root);
      rmSync(root, { recursive: true, force: true });
    },
  };
  return daemon;
}

/** VM host processes whose launch argument names a socket under `root`. */
export function killVmHosts(root: string): void {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    const args = cmdline.split('\0').filter((arg) => arg !== '');
    if (!args.some((arg) => arg.endsWith('vmhost/main.js'))) continue;
    const launch = args.at(-1) ?? '';
    const decoded = Buffer.from(launch, 'base64').toString('utf8');
    if (decoded.includes(root)) {
      try {
        process.kill(Number(entry), 'SIGKILL');
      } catch {
        // Gone.
      }
    }
  }
}

/** The daemon whose lock file is under `root`, if any is left (a test that failed half-way). */
export function killDaemonOf(root: string): void {
  try {
    const pid = Number(readFileSync(join(root, 'run', 'vireo', 'daemon.pid'), 'utf8'));
    if (pid > 0) process.kill(pid, 'SIGKILL');
  } catch {
    // No daemon left.
  }
}
