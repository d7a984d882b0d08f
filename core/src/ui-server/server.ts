// Browser mode: the daemon serves the renderer bundle and the API (as a WebSocket at /api) on
// 127.0.0.1, on a free port, behind a token made when the server starts. Without the token
// nothing is served and the WebSocket is refused.

import { createReadStream } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import type { ApiServer } from '../api/server.js';
import { allowedHosts, newToken, requestToken, tokenCookie, tokenMatches } from './access.js';
import { securityHeaders } from './csp.js';
import { DEFAULT_RENDERER_DIR, mediaType, rendererRoot, servableFile } from './static-files.js';
import { serveWebSocket } from './websocket.js';

export const API_PATH = '/api';

export interface UiServerOptions {
  api: ApiServer;
  rendererDir?: string;
  log?: (line: string) => void;
}

export interface UiServer {
  /** The address to open: http://127.0.0.1:PORT/?token=TOKEN */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

function baseHeaders(host: string): Record<string, string> {
  return securityHeaders([`ws://${host}${API_PATH}`]);
}

function refuseUpgrade(socket: Socket, status: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

export async function startUiServer(options: UiServerOptions): Promise<UiServer> {
  const rendererDir = options.rendererDir ?? DEFAULT_RENDERER_DIR;
  const log = options.log ?? (() => {});
  const root = rendererRoot(rendererDir);
  const token = newToken();
  let port = 0;
  const hostOf = (request: IncomingMessage) => {
    const host = request.headers.host ?? '';
    return allowedHosts(port).includes(host) ? host : undefined;
  };

  const answer = (
    response: ServerResponse,
    host: string,
    status: number,
    text: string,
    extra: Record<string, string> = {},
  ) => {
    response.writeHead(status, {
      ...baseHeaders(host),
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': String(Buffer.byteLength(text)),
      ...extra,
    });
    response.end(text);
  };

  const handleRequest = (request: IncomingMessage, response: ServerResponse) => {
    const host = hostOf(request);
    if (host === undefined) {
      answer(response, `127.0.0.1:${port}`, 403, 'forbidden: this server answers to 127.0.0.1 only\n');
      return;
    }
    const url = new URL(request.url ?? '/', `http://${host}`);
    const given = requestToken(url, request.headers.cookie, port);
    if (!tokenMatches(token, given)) {
      answer(response, host, 403, 'forbidden: open the address `vireo ui` prints (it carries the token)\n');
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      answer(response, host, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
      return;
    }
    const headers: Record<string, string> = baseHeaders(host);
    if (url.searchParams.has('token')) headers['Set-Cookie'] = tokenCookie(port, token);
    if (url.pathname === API_PATH) {
      answer(response, host, 426, 'the API is a WebSocket\n', { ...headers, Upgrade: 'websocket' });
      return;
    }
    const file = servableFile(root, url.pathname);
    if (file === undefined) {
      answer(response, host, 404, 'not found\n', headers);
      return;
    }
    response.writeHead(200, {
      ...headers,
      'Content-Type': mediaType(file.path),
      'Content-Length': String(file.size),
    });
    if (request.method === 'HEAD') {
      response.end();
      return;
    }
    createReadStream(file.path)
      .on('error', (error) => {
        log(`ui: reading ${file.path}: ${error.message}`);
        response.destroy();
      })
      .pipe(response);
  };

  const webSockets = new WebSocketServer({
    noServer: true,
    maxPayload: options.api.maxMessageBytes,
    perMessageDeflate: false,
  });
  const handleUpgrade = (request: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => {});
    const host = hostOf(request);
    const url = new URL(request.url ?? '/', 'http://invalid');
    if (host === undefined || url.pathname !== API_PATH) {
      refuseUpgrade(socket, '404 Not Found');
      return;
    }
    if (request.headers.origin !== `http://${host}`) {
      log(`ui: WebSocket refused: origin ${request.headers.origin ?? '(none)'} is not http://${host}`);
      refuseUpgrade(socket, '403 Forbidden');
      return;
    }
    if (!tokenMatches(token, requestToken(url, request.headers.cookie, port))) {
      refuseUpgrade(socket, '403 Forbidden');
      return;
    }
    webSockets.handleUpgrade(request, socket, head, (ws) => serveWebSocket(ws, options.api, log));
  };

  const server: Server = createServer(handleRequest);
  server.on('upgrade', handleUpgrade);
  server.on('clientError', (_error, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the UI server has no TCP port');
  port = address.port;
  const url = `http://127.0.0.1:${port}/?token=${token}`;
  log(`ui: serving ${rendererDir} on http://127.0.0.1:${port}/`);
  return {
    url,
    port,
    async close() {
      for (const ws of webSockets.clients) ws.terminate();
      webSockets.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
