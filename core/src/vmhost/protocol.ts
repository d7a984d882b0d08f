// What a VM host process and its supervisor say to each other over the host's Unix socket
// ($XDG_RUNTIME_DIR/vireo/vms/<id>.sock), one JSON message per line. A socket rather than the
// fork IPC channel so a restarted daemon can reattach to VMs that kept running.

import type { MachineConfig } from '../machine/config.js';

export type HostVmState = 'starting' | 'running' | 'paused' | 'stopping';

/** How the VM inside a host ended. `start-failed`: Machine.create refused the inputs. */
export type HostExit =
  | { reason: 'poweroff' | 'reset' | 'stopped' }
  | { reason: 'error' | 'start-failed'; message: string };

export type HostMessage =
  | { type: 'hello'; id: string; pid: number; state: HostVmState; history: string }
  | { type: 'state'; state: HostVmState }
  | { type: 'console'; data: string }
  | { type: 'log'; line: string }
  /** The machine rebooted in place (the guest reset it, or a 'reset' command). */
  | { type: 'reset'; message: string; at: string }
  /** The network link went up or down. */
  | { type: 'network'; up: boolean; message: string }
  | { type: 'reply'; seq: number; error?: { code: number; message: string } }
  | { type: 'exit'; exit: HostExit; at: string };

export type HostCommand = 'start' | 'input' | 'power-button' | 'pause' | 'resume' | 'reset' | 'stop';

export interface HostRequest {
  type: 'command';
  seq: number;
  command: HostCommand;
  /** base64 console input for 'input'. */
  data?: string;
  /** 'input': a BREAK on the serial line before `data`. */
  break?: boolean;
}

/** What the supervisor hands a new VM host process (base64 JSON in argv). */
export interface HostLaunch {
  id: string;
  socket: string;
  exitFile: string;
  config: MachineConfig;
  historyBytes: number;
}

export function encodeLaunch(launch: HostLaunch): string {
  return Buffer.from(JSON.stringify(launch)).toString('base64');
}

export function decodeLaunch(text: string): HostLaunch {
  return JSON.parse(Buffer.from(text, 'base64').toString('utf8')) as HostLaunch;
}
