// `node daemon/main.js`: the daemon in the foreground (what `vireo daemon` and autostart run).

import { startDaemon } from './daemon.js';

export async function runDaemonForeground(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const daemon = await startDaemon({ env });
  await new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      process.stderr.write(`${new Date().toISOString()} ${signal}: daemon stopping; VMs keep running\n`);
      void daemon.close().then(resolve);
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });
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
