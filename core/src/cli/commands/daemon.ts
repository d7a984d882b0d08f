// `vireo daemon`: the per-user daemon in the foreground. Other commands start it on demand.

import type { Command } from 'commander';
import { runDaemonForeground } from '../../daemon/main.js';
import { vireoPaths } from '../../manager/paths.js';
import { CliError } from '../errors.js';

export function registerDaemonCommand(program: Command): void {
  program
    .command('daemon')
    .description('run the Vireo daemon (VM library, VM supervisor, API socket) in the foreground')
    .addHelpText(
      'after',
      `\nThe API socket is ${vireoPaths().socket}.\n` +
        'Other commands start the daemon in the background when it is not running.\n' +
        'Stopping the daemon (Ctrl-C, SIGTERM) leaves VMs running; the next daemon reattaches to them.',
    )
    .action(async () => {
      try {
        await runDaemonForeground();
      } catch (error) {
        throw new CliError((error as Error).message);
      }
    });
}
