// The IPC between the window and the main process: channel names, what the preload exposes as
// `window.vireo`, and the main process's checks. The window is treated like any API client: every
// call is checked against the API schema here before it travels on to the daemon.

import { ErrorCode, type MethodName, type Notifications } from '../core/src/api/schema.js';
import { checkRequest, type JsonRpcError } from '../core/src/api/server.js';

export const IpcChannel = {
  /** renderer -> main (invoke): (method, params) -> CallOutcome */
  call: 'vireo:call',
  /** main -> renderer: (method, params), a JSON-RPC notification from the daemon */
  notification: 'vireo:notification',
  /** main -> renderer: (reason), the daemon connection ended */
  closed: 'vireo:closed',
} as const;

export type NotificationName = keyof typeof Notifications;

/** A call's answer as it crosses IPC: errors are data, because an Error loses its code on the way. */
export type CallOutcome = { result: unknown } | { error: JsonRpcError };

/**
 * `window.vireo` in Electron. `call` resolves with the method's result or rejects with the JSON-RPC
 * error object `{ code, message, data? }` (a plain object: contextBridge drops an Error's own
 * properties); `on` returns the function that unsubscribes; `onClose` hears that the daemon
 * connection ended (the next call makes a new one).
 */
export interface VireoBridge {
  call(method: MethodName, params: unknown): Promise<unknown>;
  on(notification: NotificationName, listener: (params: unknown) => void): () => void;
  onClose(listener: (reason: string) => void): () => void;
}

export const RENDERER_SCHEME = 'vireo';
const RENDERER_HOST = 'app';
export const RENDERER_URL = `${RENDERER_SCHEME}://${RENDERER_HOST}/`;

/** Whether `url` is a page of the renderer bundle (vireo://app/...). Compared by parts: outside a
 *  browser that registered the scheme, URL.origin of a custom scheme is "null". */
export function isRendererUrl(url: string | undefined): boolean {
  if (url === undefined) return false;
  try {
    const parsed = new URL(url);
    return parsed.protocol === `${RENDERER_SCHEME}:` && parsed.host === RENDERER_HOST;
  } catch {
    return false;
  }
}

/** Calls are taken only from the main frame of a page we loaded from our own protocol. */
export function isTrustedSender(frameUrl: string | undefined, isMainFrame: boolean): boolean {
  return isMainFrame && isRendererUrl(frameUrl);
}

export type CheckedCall =
  | { ok: true; method: MethodName; params: unknown }
  | { ok: false; error: JsonRpcError };

/** The arguments of one `vireo:call`, checked like a JSON-RPC request. */
export function checkCall(method: unknown, params: unknown): CheckedCall {
  if (typeof method !== 'string') {
    return { ok: false, error: { code: ErrorCode.invalidRequest, message: 'method must be a string' } };
  }
  return checkRequest(method, params);
}
