// `vireo ui`: browser mode. The daemon serves the window on 127.0.0.1 behind a token; this command
// prints the address and opens it in the default browser.

import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { EXIT_CODES_HELP, type JsonFlag, printJson, withDaemon } from './vm-client.js';

interface UiFlags extends JsonFlag {
  open: boolean;
}

/** Starts the desktop's opener (xdg-open) detached; resolves with why it could not start, if so. */
export function openInBrowser(url: string, opener = 'xdg-open'): Promise<Error | undefined> {
  return new Promise((resolve) => {
    const child = spawn(opener, [url], { detached: true, stdio: 'ignore' });
    child.once('spawn', () => {
      child.unref();
      resolve(undefined);
    });
    child.once('error', resolve);
  });
}

export function registerUiCommand(program: Command): void {
  program
    .command('ui')
    .description('open the Vireo window in a web browser (the daemon serves it on 127.0.0.1)')
    .option('--no-open', 'print the address without opening a browser')
    .option('--json', 'print { "url": ... } as JSON')
    .addHelpText(
      'after',
      '\nThe address carries a token the daemon made for this purpose: anyone who has it can manage\n' +
        'your VMs while the daemon runs, so do not share it. It stops working when the daemon stops.\n' +
        EXIT_CODES_HELP,
    )
    .action(async (flags: UiFlags) => {
      const { url } = await withDaemon(flags.json, (client) => client.call('ui.serve', {}));
      if (flags.json) printJson({ url });
      else process.stdout.write(`Vireo is at ${url}\n`);
      if (!flags.open) return;
      const failure = await openInBrowser(url);
      if (failure) {
        process.stderr.write(
          `vireo: cannot start a browser (xdg-open: ${failure.message}); open the address yourself\n`,
        );
      }
    });
}
