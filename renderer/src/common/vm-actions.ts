// Which lifecycle buttons a VM's state allows: the list and the VM page show the same ones.

import type { VmState } from '../../../core/src/api/schema.js';

export type VmAction = 'start' | 'stop' | 'forceStop' | 'pause' | 'resume' | 'reset' | 'delete' | 'edit';

const ALLOWED: Record<VmState, readonly VmAction[]> = {
  stopped: ['start', 'delete', 'edit'],
  crashed: ['start', 'delete', 'edit'],
  starting: ['forceStop'],
  running: ['stop', 'forceStop', 'pause', 'reset'],
  paused: ['resume', 'stop', 'forceStop'],
  stopping: ['forceStop'],
};

export function actionAllowed(state: VmState, action: VmAction): boolean {
  return ALLOWED[state].includes(action);
}

/** Each button's label, and what it says while its call runs. */
export const ACTION_LABELS: Record<VmAction, { label: string; busy: string }> = {
  start: { label: 'Start', busy: 'Starting…' },
  stop: { label: 'Shut down', busy: 'Shutting down…' },
  forceStop: { label: 'Force off', busy: 'Forcing off…' },
  pause: { label: 'Pause', busy: 'Pausing…' },
  resume: { label: 'Resume', busy: 'Resuming…' },
  reset: { label: 'Reset', busy: 'Resetting…' },
  delete: { label: 'Delete', busy: 'Deleting…' },
  edit: { label: 'Edit', busy: 'Saving…' },
};
