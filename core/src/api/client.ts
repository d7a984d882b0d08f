// The typed client of the daemon's JSON-RPC socket: what the CLI (and later the Electron main
// process) uses. Calls are typed by the schema; notifications arrive as events.

import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { encodeMessage, readLines } from './framing.js';
import {
  type ConsoleOutputNotification,
  ErrorCodeName,
  MAX_MESSAGE_BYTES,
  type MethodName,
  type MethodParams,
  type MethodResult,
  type VmEvent,
} from './schema.js';

export class RpcError extends Error {
  override name = 'RpcError';
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }

  get codeName(): string {
    return ErrorCodeName[this.code] ?? String(this.code);
  }
}

/** The connection ended before the answer came. */
export class ConnectionClosedError extends Error {
  override name = 'ConnectionClosedError';
}

export interface ClientEvents {
  'console.output': [ConsoleOutputNotification];
  event: [VmEvent];
  close: [];
}

interface Waiting {
  resolve(result: unknown): void;
  reject(error: Error): void;
}

export class ApiClient extends EventEmitter<ClientEvents> {
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();
  private closed = false;

  private constructor(private readonly socket: Socket) {
    super();
    readLines(socket, MAX_MESSAGE_BYTES, (line) => this.onLine(line));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      for (const waiting of this.waiting.values()) {
        waiting.reject(new ConnectionClosedError('the daemon closed the connection'));
      }
      this.waiting.clear();
      this.emit('close');
    });
  }

  static connect(socketPath: string): Promise<ApiClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(socketPath);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new ApiClient(socket));
      });
      socket.once('error', reject);
    });
  }

  call<M extends MethodName>(method: M, params: MethodParams<M>): Promise<MethodResult<M>> {
    if (this.closed) return Promise.reject(new ConnectionClosedError('the connection is closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (result: unknown) => void, reject });
      this.socket.write(encodeMessage({ jsonrpc: '2.0', id, method, params }));
    });
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }

  /** Keep the process alive only for this connection's sake or not (a daemon watcher). */
  unref(): void {
    this.socket.unref();
  }

  private onLine(line: string): void {
    let message: {
      id?: unknown;
      result?: unknown;
      error?: { code: number; message: string; data?: unknown };
      method?: string;
      params?: unknown;
    };
    try {
      message = JSON.parse(line);
    } catch {
      return;
    }
    if (typeof message.method === 'string') {
      if (message.method === 'console.output') {
        this.emit('console.output', message.params as ConsoleOutputNotification);
      } else if (message.method === 'event') {
        this.emit('event', message.params as VmEvent);
      }
      return;
    }
    if (typeof message.id !== 'number') {
      // An error about the connection as a whole (oversized message, parse error): fail everything.
      if (message.error) {
        for (const waiting of this.waiting.values()) {
          waiting.reject(new RpcError(message.error.code, message.error.message, message.error.data));
        }
        this.waiting.clear();
      }
      return;
    }
    const waiting = this.waiting.get(message.id);
    if (!waiting) return;
    this.waiting.delete(message.id);
    if (message.error)
      waiting.reject(new RpcError(message.error.code, message.error.message, message.error.data));
    else waiting.resolve(message.result);
  }
}
