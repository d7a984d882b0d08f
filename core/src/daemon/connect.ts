// How a client reaches the daemon: connect to its socket, and when nobody answers start one
// (detached, logging to $XDG_RUNTIME_DIR/vireo/daemon.log) and wait for it.

import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../api/client.js';
import { type VireoPaths, vireoPaths } from '../manager/paths.js';

export const DAEMON_ENTRY = join(dirname(fileURLToPath(import.meta.url)), 'main.js');
const START_TIMEOUT_MS = 15_000;

function isNotListening(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ECONNREFUSED';
}

export function spawnDaemon(paths: VireoPaths, env: NodeJS.ProcessEnv = process.env): number | undefined {
  mkdirSync(paths.runtimeDir, { recursive: true, mode: 0o700 });
  const logFd = openSync(join(paths.runtimeDir, 'daemon.log'), 'a', 0o600);
  try {
    const child = spawn(process.execPath, [DAEMON_ENTRY], {
      detached: true,
      stdio: ['ignore', logFd, logFd],
      env,
    });
    child.unref();
    return child.pid;
  } finally {
    closeSync(logFd);
  }
}

export async function connectToDaemon(
  options: { env?: NodeJS.ProcessEnv; autostart?: boolean } = {},
): Promise<ApiClient> {
  const env = options.env ?? process.env;
  const paths = vireoPaths(env);
  try {
    return await ApiClient.connect(paths.socket);
  } catch (error) {
    if (!isNotListening(error) || options.autostart === false) throw error;
  }
  spawnDaemon(paths, env);
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    try {
      return await ApiClient.connect(paths.socket);
    } catch (error) {
      if (!isNotListening(error) || Date.now() > deadline) {
        throw new Error(
          `the Vireo daemon did not start (see ${join(paths.runtimeDir, 'daemon.log')}): ${(error as Error).message}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
