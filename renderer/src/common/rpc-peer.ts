// JSON-RPC 2.0 over a channel of text messages (one message per WebSocket frame): numbers the
// requests, matches answers to them, hands notifications to their listeners. No I/O of its own, so
// the WebSocket transport is this plus a socket.

import { ApiError, ErrorCode } from '../../../core/src/api/schema.js';
import type { Transport } from './transport.js';

interface Waiting {
  resolve(result: unknown): void;
  reject(error: Error): void;
}

interface Message {
  id?: unknown;
  method?: unknown;
  params?: unknown;
  result?: unknown;
  error?: { code?: unknown; message?: unknown; data?: unknown };
}

function toApiError(error: NonNullable<Message['error']>): ApiError {
  const code = typeof error.code === 'number' ? error.code : ErrorCode.internalError;
  const message = typeof error.message === 'string' ? error.message : 'the daemon reported an error';
  return new ApiError(code, message, error.data);
}

export class RpcPeer implements Transport {
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();
  private readonly listeners = new Map<string, Set<(params: unknown) => void>>();
  private readonly closeListeners = new Set<(reason: string) => void>();
  private closedReason: string | undefined;

  constructor(private readonly send: (text: string) => void) {}

  call(method: string, params: unknown): Promise<unknown> {
    if (this.closedReason !== undefined) return Promise.reject(new Error(this.closedReason));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    });
  }

  on(notification: string, listener: (params: unknown) => void): () => void {
    let set = this.listeners.get(notification);
    if (!set) {
      set = new Set();
      this.listeners.set(notification, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  onClose(listener: (reason: string) => void): () => void {
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  /** One message from the daemon. Malformed ones are dropped: they answer nothing we asked. */
  receive(text: string): void {
    let message: Message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof message !== 'object' || message === null) return;
    if (typeof message.method === 'string') {
      for (const listener of this.listeners.get(message.method) ?? []) listener(message.params);
      return;
    }
    if (typeof message.id !== 'number') {
      // An error about the connection as a whole (a message too large, unparsable): fails every call.
      if (message.error) this.rejectAll(toApiError(message.error));
      return;
    }
    const waiting = this.waiting.get(message.id);
    if (!waiting) return;
    this.waiting.delete(message.id);
    if (message.error) waiting.reject(toApiError(message.error));
    else waiting.resolve(message.result);
  }

  /** The channel ended: every open call fails with `reason`, and so does every later one. */
  close(reason: string): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    this.rejectAll(new Error(reason));
    for (const listener of this.closeListeners) listener(reason);
  }

  private rejectAll(error: Error): void {
    for (const waiting of this.waiting.values()) waiting.reject(error);
    this.waiting.clear();
  }
}
