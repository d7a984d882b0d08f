// The preload: exposes `window.vireo` (the VireoBridge of ipc.ts) through contextBridge and nothing
// else. A sandboxed preload can require only `electron`, so the channel names are written out here;
// `satisfies` ties them to ipc.ts.

import electron = require('electron');

import type { CallOutcome, IpcChannel, NotificationName, VireoBridge } from './ipc.js';

const CALL = 'vireo:call' satisfies (typeof IpcChannel)['call'];
const NOTIFICATION = 'vireo:notification' satisfies (typeof IpcChannel)['notification'];
const CLOSED = 'vireo:closed' satisfies (typeof IpcChannel)['closed'];
const NOTIFICATIONS: readonly NotificationName[] = ['event', 'console.output'];

const listeners = new Map<string, Set<(params: unknown) => void>>();
const closeListeners = new Set<(reason: string) => void>();

electron.ipcRenderer.on(NOTIFICATION, (_event, method, params) => {
  if (typeof method !== 'string') return;
  for (const listener of listeners.get(method) ?? []) listener(params);
});
electron.ipcRenderer.on(CLOSED, (_event, reason) => {
  for (const listener of closeListeners) listener(String(reason));
});

const vireo: VireoBridge = {
  async call(method, params) {
    const outcome = (await electron.ipcRenderer.invoke(CALL, method, params)) as CallOutcome;
    if ('error' in outcome) return Promise.reject(outcome.error);
    return outcome.result;
  },
  on(notification, listener) {
    if (!NOTIFICATIONS.includes(notification)) throw new Error(`no notification '${notification}'`);
    let set = listeners.get(notification);
    if (!set) {
      set = new Set();
      listeners.set(notification, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  },
  onClose(listener) {
    closeListeners.add(listener);
    return () => {
      closeListeners.delete(listener);
    };
  },
};

electron.contextBridge.exposeInMainWorld('vireo', vireo);
