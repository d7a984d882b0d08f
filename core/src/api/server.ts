// JSON-RPC 2.0 dispatch, whatever carries the messages: every request is checked against the
// schema before a handler sees it, a bad message gets an error reply, a client that stops reading
// what it asked for is dropped, and the server goes on serving everyone else. Transports only frame
// messages: the Unix socket here (one message per line), the WebSocket in ui-server/ (one message
// per text frame).

import { chmodSync, lstatSync, mkdirSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { userInfo } from 'node:os';
import { LineSplitter, MessageTooLargeError } from './framing.js';
import {
  ApiError,
  ErrorCode,
  isMethodName,
  MAX_MESSAGE_BYTES,
  type MethodName,
  type MethodResult,
  Methods,
  type Notifications,
  zodIssues,
} from './schema.js';

/** A client whose unread output grows past this is too slow to keep (a console nobody reads). */
const MAX_PENDING_OUTPUT_BYTES = 32 * 1024 * 1024;

type RequestId = string | number | null;

export interface Connection {
  readonly id: number;
  notify<N extends keyof typeof Notifications>(method: N, params: unknown): void;
  /** Called when the client goes away. */
  onClose(callback: () => void): void;
  readonly closed: boolean;
}

export type Handler<M extends MethodName> = (
  params: (typeof Methods)[M]['params']['_output'],
  connection: Connection,
) => Promise<MethodResult<M>> | MethodResult<M>;

export type Handlers = { [M in MethodName]: Handler<M> };

export interface ServerOptions {
  maxMessageBytes?: number;
  log?: (line: string) => void;
}

/** A JSON-RPC error object. */
export interface JsonRpcError {
  code: number;
  message: string;
  data?: unknown;
}

/**
 * A request's method and params checked against the schema: what the server accepts, whatever the
 * transport, and what Electron's IPC bridge checks before it passes a call on.
 */
export function checkRequest(
  method: string,
  rawParams: unknown,
): { ok: true; method: MethodName; params: unknown } | { ok: false; error: JsonRpcError } {
  if (!isMethodName(method)) {
    return { ok: false, error: { code: ErrorCode.methodNotFound, message: `no method '${method}'` } };
  }
  const params = rawParams ?? {};
  if (typeof params !== 'object' || params === null || Array.isArray(params)) {
    return { ok: false, error: { code: ErrorCode.invalidParams, message: 'params must be an object' } };
  }
  const parsed = Methods[method].params.safeParse(params);
  if (!parsed.success) {
    const issues = zodIssues(parsed.error);
    return {
      ok: false,
      error: {
        code: ErrorCode.invalidParams,
        message: `invalid params: ${issues.map((issue) => `${issue.path}: ${issue.message}`).join('; ')}`,
        data: issues,
      },
    };
  }
  return { ok: true, method, params: parsed.data };
}

/** Makes $XDG_RUNTIME_DIR/vireo private (0700, ours); refuses a folder someone else controls. */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stat = lstatSync(dir);
  if (!stat.isDirectory()) throw new Error(`${dir} is not a directory`);
  if (stat.uid !== userInfo().uid) throw new Error(`${dir} belongs to another user (uid ${stat.uid})`);
  if ((stat.mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

function isLiveSocket(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * One client's message stream as a transport carries it. The transport frames messages and reports
 * what arrives through the Session that ApiServer.open() returns.
 */
export interface MessageTransport {
  /** Queues one message (JSON text, without framing) for the client. */
  send(message: string): void;
  /** Bytes queued for the client and not written yet. */
  readonly pendingBytes: number;
  /** Ends the connection once what was queued has been written. */
  end(): void;
  /** Ends the connection at once. */
  destroy(): void;
}

/** What a transport tells the server about its client. */
export interface Session {
  readonly connection: Connection;
  /** One complete message (JSON text) from the client. */
  receive(message: string): void;
  /** The transport cannot frame what follows (a message past the size limit): say why, hang up. */
  fail(error: ApiError): void;
  /** The connection is gone. */
  closed(): void;
}

export class ApiServer {
  private unixServer: Server | undefined;
  private nextConnectionId = 1;
  private readonly transports = new Set<MessageTransport>();
  readonly maxMessageBytes: number;
  private readonly log: (line: string) => void;

  constructor(
    private readonly handlers: Handlers,
    options: ServerOptions = {},
  ) {
    this.maxMessageBytes = options.maxMessageBytes ?? MAX_MESSAGE_BYTES;
    this.log = options.log ?? (() => {});
  }

  /** Serves the API on a Unix socket (mode 0600), one message per line. */
  async listen(socketPath: string): Promise<void> {
    try {
      lstatSync(socketPath);
      if (await isLiveSocket(socketPath)) throw new Error(`a daemon is already serving ${socketPath}`);
      rmSync(socketPath, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const server = createServer((socket) => this.acceptSocket(socket));
    this.unixServer = server;
    const previousUmask = process.umask(0o077);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socketPath, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(previousUmask);
    }
    chmodSync(socketPath, 0o600);
    server.on('error', (error) => this.log(`server error: ${error.message}`));
  }

  /** Stops listening and drops every client of every transport. */
  async close(): Promise<void> {
    for (const transport of this.transports) transport.destroy();
    const server = this.unixServer;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Starts serving one client; the transport feeds the returned session. */
  open(transport: MessageTransport): Session {
    this.transports.add(transport);
    const closeCallbacks: (() => void)[] = [];
    let closed = false;
    const send = (message: unknown) => {
      if (closed) return;
      if (transport.pendingBytes > MAX_PENDING_OUTPUT_BYTES) {
        this.log(`connection ${connection.id}: client is not reading; dropped`);
        transport.destroy();
        return;
      }
      transport.send(JSON.stringify(message));
    };
    const connection: Connection = {
      id: this.nextConnectionId++,
      notify: (method, params) => send({ jsonrpc: '2.0', method, params }),
      onClose: (callback) => {
        if (closed) callback();
        else closeCallbacks.push(callback);
      },
      get closed() {
        return closed;
      },
    };
    return {
      connection,
      receive: (message) => {
        if (closed || message.trim() === '') return;
        void this.handleMessage(message, connection).then((response) => {
          if (response !== undefined) send(response);
        });
      },
      fail: (error) => {
        if (closed) return;
        send(errorResponse(null, { code: error.code, message: error.message }));
        transport.end();
      },
      closed: () => {
        if (closed) return;
        closed = true;
        this.transports.delete(transport);
        for (const callback of closeCallbacks.splice(0)) {
          try {
            callback();
          } catch (error) {
            this.log(`close callback failed: ${(error as Error).message}`);
          }
        }
      },
    };
  }

  private acceptSocket(socket: Socket): void {
    const session = this.open({
      send: (message) => {
        if (!socket.destroyed && socket.writable) socket.write(`${message}\n`);
      },
      get pendingBytes() {
        return socket.writableLength;
      },
      end: () => {
        socket.pause();
        socket.end(() => socket.destroy());
      },
      destroy: () => socket.destroy(),
    });
    const splitter = new LineSplitter(this.maxMessageBytes);
    socket.on('data', (chunk: Buffer) => {
      let lines: string[];
      try {
        lines = splitter.push(chunk);
      } catch (error) {
        if (!(error instanceof MessageTooLargeError)) throw error;
        // The rest of the oversized line cannot be told apart from the next message: hang up.
        session.fail(new ApiError(ErrorCode.messageTooLarge, error.message));
        return;
      }
      for (const line of lines) session.receive(line);
    });
    socket.on('error', () => {});
    socket.on('close', () => session.closed());
  }

  /** The response to one message, or undefined for a notification. */
  async handleMessage(text: string, connection: Connection): Promise<unknown> {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch (error) {
      return errorResponse(null, {
        code: ErrorCode.parseError,
        message: `parse error: ${(error as Error).message}`,
      });
    }
    if (Array.isArray(message)) {
      return errorResponse(null, {
        code: ErrorCode.invalidRequest,
        message: 'batch requests are not supported',
      });
    }
    if (typeof message !== 'object' || message === null) {
      return errorResponse(null, { code: ErrorCode.invalidRequest, message: 'a request is a JSON object' });
    }
    const request = message as Record<string, unknown>;
    const hasId = Object.hasOwn(request, 'id');
    const id = request.id;
    if (hasId && !(typeof id === 'string' || typeof id === 'number' || id === null)) {
      return errorResponse(null, {
        code: ErrorCode.invalidRequest,
        message: 'id must be a string, number or null',
      });
    }
    const requestId = (hasId ? id : null) as RequestId;
    if (request.jsonrpc !== '2.0') {
      return errorResponse(requestId, { code: ErrorCode.invalidRequest, message: 'jsonrpc must be "2.0"' });
    }
    if (typeof request.method !== 'string') {
      return errorResponse(requestId, { code: ErrorCode.invalidRequest, message: 'method must be a string' });
    }
    const method = request.method;
    const reply = (response: unknown) => (hasId ? response : undefined);
    const checked = checkRequest(method, request.params);
    if (!checked.ok) return reply(errorResponse(requestId, checked.error));
    try {
      const handler = this.handlers[checked.method] as Handler<MethodName>;
      const result = await handler(checked.params as never, connection);
      return reply({ jsonrpc: '2.0', id: requestId, result });
    } catch (error) {
      if (error instanceof ApiError) {
        return reply(
          errorResponse(requestId, {
            code: error.code,
            message: error.message,
            ...(error.data === undefined ? {} : { data: error.data }),
          }),
        );
      }
      this.log(`${method} failed: ${error instanceof Error ? (error.stack ?? error.message) : error}`);
      return reply(
        errorResponse(requestId, {
          code: ErrorCode.internalError,
          message: `internal error: ${error instanceof Error ? error.message : String(error)}`,
        }),
      );
    }
  }
}

function errorResponse(id: RequestId, error: JsonRpcError): unknown {
  return { jsonrpc: '2.0', id, error };
}
