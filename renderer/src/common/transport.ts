// How the renderer reaches the daemon's API: a request/answer call plus notifications. Electron's
// preload exposes exactly this shape as `window.vireo`; browser mode builds it over a WebSocket.

export interface Transport {
  call(method: string, params: unknown): Promise<unknown>;
  /** Listens to one notification (`event`, `console.output`); returns the unsubscribe function. */
  on(notification: string, listener: (params: unknown) => void): () => void;
  /** Called once when the connection is gone for good (absent where it cannot end, as in Electron). */
  onClose?(listener: (reason: string) => void): () => void;
}
