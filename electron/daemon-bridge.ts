// One window's connection to the daemon, as the main process keeps it: calls checked and passed
// on, notifications (`event`, `console.output`) passed back. Each page gets its own connection, the
// way each browser tab gets its own WebSocket, so subscriptions end with the page that made them.

import { type ApiClient, RpcError } from '../core/src/api/client.js';
import { ErrorCode } from '../core/src/api/schema.js';
import { type CallOutcome, checkCall, type NotificationName } from './ipc.js';

export type BridgeMessage =
  | { kind: 'notification'; method: NotificationName; params: unknown }
  | { kind: 'closed'; reason: string };

export class DaemonBridge {
  private client: Promise<ApiClient> | undefined;

  constructor(
    private readonly connect: () => Promise<ApiClient>,
    private readonly deliver: (message: BridgeMessage) => void,
  ) {}

  async call(method: unknown, params: unknown): Promise<CallOutcome> {
    const checked = checkCall(method, params);
    if (!checked.ok) return { error: checked.error };
    let client: ApiClient;
    try {
      client = await this.connection();
    } catch (error) {
      return {
        error: {
          code: ErrorCode.internalError,
          message: `cannot reach the Vireo daemon: ${(error as Error).message}`,
        },
      };
    }
    try {
      return { result: await client.call(checked.method, checked.params as never) };
    } catch (error) {
      if (error instanceof RpcError) {
        return {
          error: {
            code: error.code,
            message: error.message,
            ...(error.data === undefined ? {} : { data: error.data }),
          },
        };
      }
      return { error: { code: ErrorCode.internalError, message: (error as Error).message } };
    }
  }

  /** The page is gone or reloading: its connection (and every subscription on it) ends quietly. */
  reset(): void {
    const pending = this.client;
    this.client = undefined;
    void pending?.then(
      (client) => client.close(),
      () => {},
    );
  }

  private connection(): Promise<ApiClient> {
    if (this.client) return this.client;
    const pending: Promise<ApiClient> = this.connect().then((client) => {
      const current = () => this.client === pending;
      client.on('event', (params) => {
        if (current()) this.deliver({ kind: 'notification', method: 'event', params });
      });
      client.on('console.output', (params) => {
        if (current()) this.deliver({ kind: 'notification', method: 'console.output', params });
      });
      client.on('close', () => {
        if (!current()) return;
        this.client = undefined;
        this.deliver({ kind: 'closed', reason: 'the Vireo daemon closed the connection' });
      });
      return client;
    });
    pending.catch(() => {
      if (this.client === pending) this.client = undefined;
    });
    this.client = pending;
    return pending;
  }
}

/**
 * The environment a daemon started from here gets. Under Electron, process.execPath is Electron
 * itself: ELECTRON_RUN_AS_NODE makes it run the daemon (and the VM hosts the daemon starts) as
 * plain Node.
 */
export function daemonEnvironment(
  env: NodeJS.ProcessEnv,
  versions: NodeJS.ProcessVersions = process.versions,
): NodeJS.ProcessEnv {
  return 'electron' in versions ? { ...env, ELECTRON_RUN_AS_NODE: '1' } : env;
}
