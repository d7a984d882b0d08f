// The API over a WebSocket: one JSON-RPC message per text frame, served by the same ApiServer
// dispatch as the Unix socket. The frame size limit is ws's maxPayload (the API's message limit):
// a longer message closes the connection with 1009, a binary frame with 1003.

import type { WebSocket } from 'ws';
import type { ApiServer } from '../api/server.js';

export const CLOSE_UNSUPPORTED_DATA = 1003;

export function serveWebSocket(ws: WebSocket, api: ApiServer, log: (line: string) => void): void {
  const session = api.open({
    send: (message) => {
      if (ws.readyState === ws.OPEN) ws.send(message);
    },
    get pendingBytes() {
      return ws.bufferedAmount;
    },
    end: () => ws.close(),
    destroy: () => ws.terminate(),
  });
  ws.on('message', (data, isBinary) => {
    if (isBinary) {
      ws.close(CLOSE_UNSUPPORTED_DATA, 'messages are JSON text frames');
      return;
    }
    session.receive(data.toString());
  });
  ws.on('error', (error) => log(`connection ${session.connection.id} (WebSocket): ${error.message}`));
  ws.on('close', () => session.closed());
}
