// The VM list as the window shows it: loaded once, then kept current by the daemon's event stream.
// A zustand store without React, so it runs (and is tested) under Node as well.

import { createStore, type StoreApi } from 'zustand/vanilla';
import type {
  InvalidVm,
  MethodResult,
  VmChanges,
  VmCreateParams,
  VmEvent,
  VmInfo,
} from '../../../core/src/api/schema.js';
import { describeError, type VireoClient } from './client.js';
import type { VmAction } from './vm-actions.js';
import { copiesImages } from './wizard.js';

export type HostInfo = MethodResult<'daemon.info'>['host'];

/** Something this window saw happen to a VM, for its log tab. */
export interface LogEntry {
  at: string;
  text: string;
}

export type LifecycleAction = Exclude<VmAction, 'edit'>;

/**
 * A vm.create or vm.update this window sent and is waiting for. Copying images takes a while: the
 * daemon's `progress` events for its token give the bytes copied so far of all it copies.
 */
export interface PendingSave {
  /** The request's progressToken, when it copies images. */
  token: string | undefined;
  copied: { done: number; total: number } | undefined;
}

export interface VmStoreState {
  phase: 'loading' | 'ready' | 'error';
  /** Why loading failed or the connection ended. */
  error: string | undefined;
  /** Sorted by name, as the library sorts them. */
  vms: VmInfo[];
  invalid: InvalidVm[];
  host: HostInfo | undefined;
  /** The lifecycle call running for a VM, by id. */
  busy: Record<string, LifecycleAction>;
  /** The last failed call for a VM, by id, until the next call. */
  actionErrors: Record<string, string>;
  log: Record<string, LogEntry[]>;
  /** The create or update under way; another is refused until it ends. */
  pending: PendingSave | undefined;
  load(): Promise<void>;
  run(vm: string, action: LifecycleAction): Promise<void>;
  create(params: VmCreateParams): Promise<VmInfo>;
  update(vm: string, changes: VmChanges): Promise<VmInfo>;
}

export type VmStore = StoreApi<VmStoreState>;

const MAX_LOG_ENTRIES = 500;
const nameOrder = new Intl.Collator(undefined, { numeric: true });

function sorted(vms: VmInfo[]): VmInfo[] {
  return [...vms].sort(
    (a, b) => nameOrder.compare(a.spec.name, b.spec.name) || nameOrder.compare(a.spec.id, b.spec.id),
  );
}

function upsert(vms: VmInfo[], info: VmInfo): VmInfo[] {
  return sorted([...vms.filter((vm) => vm.spec.id !== info.spec.id), info]);
}

function describeState(status: VmInfo['status']): string {
  const exit = status.lastExit;
  if (!exit || (status.state !== 'stopped' && status.state !== 'crashed')) return status.state;
  return `${status.state} (${exit.reason}${exit.message ? `: ${exit.message}` : ''})`;
}

function withoutKey<T>(record: Record<string, T>, key: string): Record<string, T> {
  const { [key]: _, ...rest } = record;
  return rest;
}

export function createVmStore(client: VireoClient, now: () => Date = () => new Date()): VmStore {
  return createStore<VmStoreState>()((set, get) => {
    const note = (vm: string, text: string) =>
      set((state) => ({
        log: {
          ...state.log,
          [vm]: [...(state.log[vm] ?? []), { at: now().toISOString(), text }].slice(-MAX_LOG_ENTRIES),
        },
      }));

    const refresh = async (vm: string) => {
      try {
        const info = await client.call('vm.get', { vm });
        set((state) => ({ vms: upsert(state.vms, info) }));
      } catch {
        // Deleted again before we asked; its `deleted` event follows.
      }
    };

    const call = (vm: string, action: LifecycleAction): Promise<VmInfo | { id: string }> => {
      switch (action) {
        case 'start':
          return client.call('vm.start', { vm });
        case 'stop':
          return client.call('vm.stop', { vm });
        case 'forceStop':
          return client.call('vm.stop', { vm, force: true });
        case 'pause':
          return client.call('vm.pause', { vm });
        case 'resume':
          return client.call('vm.resume', { vm });
        case 'reset':
          return client.call('vm.reset', { vm });
        case 'delete':
          return client.call('vm.delete', { vm });
      }
    };

    /** Runs a create or update, one at a time, following its copy's progress. */
    const save = async (
      params: Pick<VmCreateParams, 'disks'>,
      send: (progressToken: string | undefined) => Promise<VmInfo>,
    ): Promise<VmInfo> => {
      if (get().pending) throw new Error('a VM is still being saved; wait until it is done');
      const token = copiesImages(params) ? globalThis.crypto.randomUUID() : undefined;
      set({ pending: { token, copied: undefined } });
      try {
        const info = await send(token);
        set((state) => ({ vms: upsert(state.vms, info) }));
        return info;
      } finally {
        set({ pending: undefined });
      }
    };

    const onEvent = (event: VmEvent): void => {
      if (event.kind === 'progress') {
        const pending = get().pending;
        if (pending?.token !== undefined && event.token === pending.token) {
          set({ pending: { ...pending, copied: { done: event.done, total: event.total } } });
        }
        return;
      }
      if (get().phase !== 'ready') return;
      switch (event.kind) {
        case 'state': {
          const known = get().vms.find((info) => info.spec.id === event.vm);
          if (!known) return;
          set((state) => ({ vms: upsert(state.vms, { spec: known.spec, status: event.status }) }));
          // A state is reported again when its details change (the VM host's pid): logged once.
          const text = describeState(event.status);
          if (get().log[event.vm]?.at(-1)?.text !== text) note(event.vm, text);
          return;
        }
        case 'created':
        case 'updated':
          note(event.vm, event.kind === 'created' ? 'created' : 'settings changed');
          void refresh(event.vm);
          return;
        case 'deleted':
          set((state) => ({ vms: state.vms.filter((info) => info.spec.id !== event.vm) }));
          return;
        case 'reset':
          note(event.vm, `rebooted: ${event.message}`);
          return;
        case 'network':
          note(event.vm, `network ${event.up ? 'up' : 'down'}: ${event.message}`);
          return;
        default:
          return;
      }
    };
    client.onEvent(onEvent);

    return {
      phase: 'loading',
      error: undefined,
      vms: [],
      invalid: [],
      host: undefined,
      busy: {},
      actionErrors: {},
      log: {},
      pending: undefined,

      async load() {
        set({ phase: 'loading', error: undefined });
        try {
          // Subscribe first: answers and events share one ordered channel, so every event after
          // the list's answer is news, and those before it are already in the list.
          await client.call('events.subscribe', {});
          const [listed, info] = await Promise.all([
            client.call('vm.list', {}),
            client.call('daemon.info', {}),
          ]);
          set({ phase: 'ready', vms: sorted(listed.vms), invalid: listed.invalid, host: info.host });
        } catch (error) {
          set({ phase: 'error', error: describeError(error) });
        }
      },

      async run(vm, action) {
        set((state) => ({
          busy: { ...state.busy, [vm]: action },
          actionErrors: withoutKey(state.actionErrors, vm),
        }));
        try {
          const result = await call(vm, action);
          if ('spec' in result) set((state) => ({ vms: upsert(state.vms, result) }));
          else set((state) => ({ vms: state.vms.filter((info) => info.spec.id !== result.id) }));
        } catch (error) {
          const message = describeError(error);
          set((state) => ({ actionErrors: { ...state.actionErrors, [vm]: message } }));
          note(vm, `${action} failed: ${message}`);
        } finally {
          set((state) => ({ busy: withoutKey(state.busy, vm) }));
        }
      },

      create(params) {
        return save(params, (progressToken) =>
          client.call('vm.create', { ...params, ...(progressToken && { progressToken }) }),
        );
      },

      update(vm, changes) {
        return save(changes, (progressToken) =>
          client.call('vm.update', { vm, changes, ...(progressToken && { progressToken }) }),
        );
      },
    };
  });
}
