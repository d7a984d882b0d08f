// `node daemon/main.js`: the daemon in the foreground (what `vireo daemon` and autostart run).

import { startDaemon } from './daemon.js';

function logLine(text: string): void {
  process.stderr.write(`${new Date().toISOString()} ${text}\n`);
}

export async function runDaemonForeground(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  // One failed operation must not take the daemon, and with it every client and VM record, down.
  const onRejection = (reason: unknown) =>
    logLine(`unhandled rejection: ${(reason as Error)?.stack ?? reason}`);
  const onException = (error: Error) => logLine(`uncaught exception: ${error.stack ?? error.message}`);
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  try {
    const daemon = await startDaemon({ env });
    await new Promise<void>((resolve) => {
      const shutdown = (signal: string) => {
        logLine(`${signal}: daemon stopping; VMs keep running`);
        void daemon.close().then(resolve);
      };
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
    });
  } finally {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  }
}

const isEntryPoint = process.argv[1]?.endsWith('/daemon/main.js');
if (isEntryPoint) {
  // Started detached from a terminal that may close.
  process.on('SIGHUP', () => {});
  runDaemonForeground().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`vireo daemon: ${(error as Error).message}\n`);
      process.exit(1);
    },
  );
}
