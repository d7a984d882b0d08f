// Picks the transport: Electron's preload bridge when the window runs in Electron, else a WebSocket
// to the daemon that served this page (browser mode), carrying the page's token.

import { RpcPeer } from '../common/rpc-peer.js';
import type { Transport } from '../common/transport.js';

declare global {
  interface Window {
    /** Set by Electron's preload through contextBridge. */
    vireo?: Transport;
  }
}

/** ws://host/api?token=..., from the page's own address. */
export function apiSocketUrl(location: Location): string {
  const url = new URL('/api', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const token = new URLSearchParams(location.search).get('token');
  if (token) url.searchParams.set('token', token);
  return url.href;
}

function openWebSocket(url: string): Promise<Transport> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    const peer = new RpcPeer((text) => socket.send(text));
    let opened = false;
    socket.onopen = () => {
      opened = true;
      resolve(peer);
    };
    socket.onmessage = (message) => {
      if (typeof message.data === 'string') peer.receive(message.data);
    };
    socket.onclose = (event) => {
      const why = event.reason || `WebSocket closed with code ${event.code}`;
      if (!opened) reject(new Error(`cannot reach the daemon at ${new URL(url).host}: ${why}`));
      peer.close(why);
    };
  });
}

export function connectTransport(): Promise<Transport> {
  if (window.vireo) return Promise.resolve(window.vireo);
  return openWebSocket(apiSocketUrl(window.location));
}
