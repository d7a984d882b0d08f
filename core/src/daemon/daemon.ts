// The daemon: one per user. Owns the VM library and the supervisor, serves the API on
// $XDG_RUNTIME_DIR/vireo/vireo.sock. Stopping the daemon leaves running VMs running; the next
// daemon reattaches to them.

import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { join } from 'node:path';
import { ApiError, ErrorCode, type VmEvent, type VmInfo, type VmSpec } from '../api/schema.js';
import { ApiServer, type Connection, ensurePrivateDir, type Handlers } from '../api/server.js';
import type { MachineConfig } from '../machine/config.js';
import { VmLibrary } from '../manager/library.js';
import { type VireoPaths, vireoPaths } from '../manager/paths.js';
import { Supervisor } from '../manager/supervisor.js';
import { startUiServer, type UiServer } from '../ui-server/server.js';

/** How long console bytes for a VM gather before they go out as one notification. */
const CONSOLE_BATCH_MS = 5;

export const DAEMON_VERSION = '0.1.0';
/** Progress events of a long operation come at most this often (and always at its end). */
const PROGRESS_INTERVAL_MS = 100;

export interface DaemonOptions {
  env?: NodeJS.ProcessEnv;
  paths?: VireoPaths;
  hostEntry?: string;
  machineConfig?: (spec: VmSpec) => MachineConfig;
  log?: (line: string) => void;
}

export interface Daemon {
  paths: VireoPaths;
  library: VmLibrary;
  supervisor: Supervisor;
  server: ApiServer;
  /** Stops serving; VMs keep running (their hosts are detached). */
  close(): Promise<void>;
}

/** One daemon per user: a pid file taken with O_EXCL, replaced when its owner is gone. */
function takeLock(lockPath: string): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockPath, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(lockPath, 'utf8').trim() === String(process.pid)) rmSync(lockPath);
        } catch {
          // Already gone.
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number(readFileSync(lockPath, 'utf8').trim());
      if (Number.isInteger(owner) && owner > 0 && processAlive(owner)) {
        throw new Error(`a Vireo daemon is already running (pid ${owner})`);
      }
      rmSync(lockPath, { force: true });
    }
  }
  throw new Error('cannot take the daemon lock');
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function startDaemon(options: DaemonOptions = {}): Promise<Daemon> {
  const paths = options.paths ?? vireoPaths(options.env);
  const log =
    options.log ?? ((line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`));
  ensurePrivateDir(paths.runtimeDir);
  const releaseLock = takeLock(join(paths.runtimeDir, 'daemon.pid'));
  try {
    const library = new VmLibrary(paths.vmsDir);
    const supervisor = new Supervisor({
      paths,
      library,
      hostEntry: options.hostEntry,
      machineConfig: options.machineConfig,
      log,
    });
    await supervisor.reattach();
    library.removeLeftovers().then(
      (names) => {
        if (names.length > 0) log(`removed what an earlier daemon left half-done: ${names.join(', ')}`);
      },
      (error: Error) => log(`cannot remove leftovers in ${library.vmsDir}: ${error.message}`),
    );

    const eventSubscribers = new Set<Connection>();
    const consoleSubscribers = new Map<string, Set<Connection>>();
    const broadcast = (event: VmEvent) => {
      for (const connection of eventSubscribers) connection.notify('event', event);
    };
    supervisor.on('state', (id, status) => broadcast({ kind: 'state', vm: id, status }));
    supervisor.on('reset', (id, message) => broadcast({ kind: 'reset', vm: id, message }));
    supervisor.on('network', (id, up, message) => broadcast({ kind: 'network', vm: id, up, message }));
    // A guest's UART hands over a byte or two per message: what arrives for a VM within a few
    // milliseconds goes out as one notification (a byte per WebSocket frame starved the browser;
    // people typing do not notice the wait).
    const pendingConsole = new Map<string, Buffer[]>();
    const flushConsole = (id: string) => {
      const chunks = pendingConsole.get(id);
      if (!chunks) return;
      pendingConsole.delete(id);
      const subscribers = consoleSubscribers.get(id);
      if (!subscribers || subscribers.size === 0) return;
      const data = Buffer.concat(chunks).toString('base64');
      for (const connection of subscribers) connection.notify('console.output', { vm: id, data });
    };
    supervisor.on('console', (id, bytes) => {
      if (!consoleSubscribers.get(id)?.size) return;
      const chunks = pendingConsole.get(id);
      if (chunks) chunks.push(bytes);
      else {
        pendingConsole.set(id, [bytes]);
        setTimeout(() => flushConsole(id), CONSOLE_BATCH_MS);
      }
    });

    // Browser mode starts with the first `ui.serve` and lasts as long as the daemon (one token).
    let uiServer: Promise<UiServer> | undefined;
    const serveUi = () => {
      uiServer ??= startUiServer({ api: server, log }).catch((error: Error) => {
        uiServer = undefined;
        throw new ApiError(ErrorCode.notSupported, error.message);
      });
      return uiServer;
    };

    /** Progress events of one operation: the first, then at most one per interval, then the last. */
    const progressReporter = (operation: string, token: string | undefined) => {
      let lastAt = Number.NEGATIVE_INFINITY;
      return (vm: string, { done, total }: { done: number; total: number }) => {
        const now = performance.now();
        if (done < total && now - lastAt < PROGRESS_INTERVAL_MS) return;
        lastAt = now;
        broadcast({ kind: 'progress', vm, operation, done, total, ...(token ? { token } : {}) });
      };
    };

    const info = (spec: VmSpec): VmInfo => ({ spec, status: supervisor.status(spec.id) });
    const resolve = (ref: string): VmSpec => library.get(library.resolve(ref));

    const handlers: Handlers = {
      'daemon.info': () => ({
        pid: process.pid,
        version: DAEMON_VERSION,
        socket: paths.socket,
        dataDir: paths.dataDir,
        host: { memoryBytes: totalmem(), cpus: availableParallelism() },
      }),
      'vm.list': () => {
        const { specs, invalid } = library.scan();
        return { vms: specs.map(info), invalid };
      },
      'vm.get': ({ vm }) => info(resolve(vm)),
      'vm.create': async ({ progressToken, ...settings }) => {
        const spec = await library.create(settings, {
          onProgress: progressReporter('copy-disks', progressToken),
        });
        broadcast({ kind: 'created', vm: spec.id });
        return info(spec);
      },
      'vm.update': async ({ vm, changes, progressToken }) => {
        const spec = await library.update(library.resolve(vm), changes, {
          onProgress: progressReporter('copy-disks', progressToken),
        });
        broadcast({ kind: 'updated', vm: spec.id });
        return info(spec);
      },
      'vm.delete': async ({ vm }) => {
        const id = library.resolve(vm);
        if (supervisor.isActive(id)) {
          throw new ApiError(
            ErrorCode.invalidState,
            `VM '${vm}' is ${supervisor.status(id).state}; stop it first`,
          );
        }
        supervisor.forget(id);
        const removed = library.delete(id);
        broadcast({ kind: 'deleted', vm: id });
        await removed;
        return { id };
      },
      'vm.start': async ({ vm }) => {
        const spec = resolve(vm);
        await supervisor.start(spec);
        return info(spec);
      },
      'vm.stop': async ({ vm, force, timeoutMs }) => {
        const spec = resolve(vm);
        await supervisor.stop(spec.id, { force, timeoutMs });
        return info(spec);
      },
      'vm.pause': async ({ vm }) => {
        const spec = resolve(vm);
        await supervisor.pause(spec.id);
        return info(spec);
      },
      'vm.resume': async ({ vm }) => {
        const spec = resolve(vm);
        await supervisor.resume(spec.id);
        return info(spec);
      },
      'vm.reset': async ({ vm }) => {
        const spec = resolve(vm);
        await supervisor.reset(spec.id);
        return info(spec);
      },
      'console.attach': ({ vm, history }, connection) => {
        const id = library.resolve(vm);
        // Bytes still waiting to go out are in the history already: the others get them first.
        flushConsole(id);
        let subscribers = consoleSubscribers.get(id);
        if (!subscribers) {
          subscribers = new Set();
          consoleSubscribers.set(id, subscribers);
        }
        if (!subscribers.has(connection)) {
          subscribers.add(connection);
          connection.onClose(() => consoleSubscribers.get(id)?.delete(connection));
        }
        return { id, history: history ? supervisor.history(id).toString('base64') : '' };
      },
      'console.detach': ({ vm }, connection) => {
        consoleSubscribers.get(library.resolve(vm))?.delete(connection);
        return {};
      },
      'console.write': async ({ vm, data, break: sendBreak }) => {
        await supervisor.consoleWrite(library.resolve(vm), Buffer.from(data, 'base64'), sendBreak);
        return {};
      },
      'events.subscribe': (_params, connection) => {
        if (!eventSubscribers.has(connection)) {
          eventSubscribers.add(connection);
          connection.onClose(() => eventSubscribers.delete(connection));
        }
        return {};
      },
      'ui.serve': async () => ({ url: (await serveUi()).url }),
    };

    const server = new ApiServer(handlers, { log });
    await server.listen(paths.socket);
    log(`serving ${paths.socket} (pid ${process.pid})`);
    return {
      paths,
      library,
      supervisor,
      server,
      async close() {
        await (await uiServer?.catch(() => undefined))?.close();
        await server.close();
        supervisor.detachAll();
        rmSync(paths.socket, { force: true });
        releaseLock();
      },
    };
  } catch (error) {
    releaseLock();
    throw error;
  }
}
