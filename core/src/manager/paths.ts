// Where Vireo keeps things for one user: the VM library under the XDG data directory, sockets
// under the XDG runtime directory.

import { existsSync } from 'node:fs';
import { homedir, tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export interface VireoPaths {
  /** $XDG_DATA_HOME/vireo */
  dataDir: string;
  /** $XDG_DATA_HOME/vireo/vms: one folder per VM. */
  vmsDir: string;
  /** $XDG_RUNTIME_DIR/vireo: mode 0700, the daemon's socket and the VM host sockets. */
  runtimeDir: string;
  socket: string;
}

function runtimeBase(env: NodeJS.ProcessEnv): string {
  if (env.XDG_RUNTIME_DIR) return env.XDG_RUNTIME_DIR;
  // Without a session manager (containers, cron) fall back the way systemd would place it, then
  // to a per-user folder in /tmp, which ensureRuntimeDir() makes private.
  const uid = userInfo().uid;
  const runUser = `/run/user/${uid}`;
  if (existsSync(runUser)) return runUser;
  return join(tmpdir(), `vireo-runtime-${uid}`);
}

export function vireoPaths(env: NodeJS.ProcessEnv = process.env): VireoPaths {
  const dataHome = env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  const dataDir = join(dataHome, 'vireo');
  const runtimeDir = join(runtimeBase(env), 'vireo');
  return { dataDir, vmsDir: join(dataDir, 'vms'), runtimeDir, socket: join(runtimeDir, 'vireo.sock') };
}

export function vmHostSocket(paths: VireoPaths, id: string): string {
  return join(paths.runtimeDir, 'vms', `${id}.sock`);
}

/** What a VM host leaves behind when its VM ended while no daemon was connected. */
export function vmHostExitFile(paths: VireoPaths, id: string): string {
  return join(paths.runtimeDir, 'vms', `${id}.exit.json`);
}

export function vmHostPidFile(paths: VireoPaths, id: string): string {
  return join(paths.runtimeDir, 'vms', `${id}.pid`);
}
