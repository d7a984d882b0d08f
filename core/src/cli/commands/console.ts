// `vireo console <vm>`: the serial console of a running VM on this terminal. Ctrl-A d detaches and
// leaves the VM running, Ctrl-A b sends a BREAK; the command also ends when the VM stops.

import type { ReadStream } from 'node:tty';
import type { Command } from 'commander';
import { CliError } from '../errors.js';
import { CONSOLE_ESCAPE_HELP, ConsoleEscapeParser } from './console-escape.js';
import { EXIT_CODES_HELP, VmExitCode, withDaemon } from './vm-client.js';

interface ConsoleFlags {
  history: boolean;
}

function isTty(stream: NodeJS.ReadableStream): stream is ReadStream {
  return (stream as ReadStream).isTTY === true && typeof (stream as ReadStream).setRawMode === 'function';
}

export function registerConsoleCommand(program: Command): void {
  program
    .command('console')
    .argument('<vm>', 'VM name or id')
    .description("attach this terminal to a running VM's console (Ctrl-A d detaches, Ctrl-A b BREAK)")
    .option('--no-history', 'do not replay the console output from before attaching')
    .addHelpText('after', `\n${CONSOLE_ESCAPE_HELP.replaceAll('\r\n', '\n')}\n${EXIT_CODES_HELP}`)
    .action(async (vm: string, flags: ConsoleFlags) => {
      process.exitCode = await withDaemon(false, async (client) => {
        await client.call('events.subscribe', {});
        const info = await client.call('vm.get', { vm });
        const id = info.spec.id;
        if (info.status.state !== 'running' && info.status.state !== 'paused') {
          throw new CliError(
            `${info.spec.name} is ${info.status.state}; start it with \`vireo start ${info.spec.name}\``,
            VmExitCode.wrongState,
          );
        }
        return new Promise<number>((resolve, reject) => {
          const stdin = process.stdin;
          const raw = isTty(stdin);
          const parser = new ConsoleEscapeParser();
          let finished = false;
          const finish = (code: number, message?: string) => {
            if (finished) return;
            finished = true;
            stdin.off('data', onData);
            stdin.pause();
            if (raw) stdin.setRawMode(false);
            process.off('exit', restore);
            if (message) process.stderr.write(`\r\nvireo: ${message}\n`);
            resolve(code);
          };
          const restore = () => {
            if (raw) stdin.setRawMode(false);
          };
          // Requests go out in the order typed and the daemon hands them to the VM in that order.
          const write = (params: { data: Uint8Array; break?: boolean }) => {
            client
              .call('console.write', {
                vm: id,
                data: Buffer.from(params.data).toString('base64'),
                ...(params.break ? { break: true } : {}),
              })
              .catch((error: Error) => finish(VmExitCode.failure, `console input failed: ${error.message}`));
          };
          const onData = (chunk: Buffer) => {
            for (const action of parser.feed(chunk)) {
              if (action.kind === 'bytes') {
                write({ data: action.bytes });
                continue;
              }
              switch (action.command) {
                case 'detach':
                  finish(VmExitCode.ok, `detached; ${info.spec.name} keeps running`);
                  return;
                case 'help':
                  process.stdout.write(`\r\n${CONSOLE_ESCAPE_HELP}\r\n`);
                  break;
                case 'break':
                  write({ data: new Uint8Array(0), break: true });
                  break;
                case 'power-button':
                  client.call('vm.stop', { vm: id, timeoutMs: 3_600_000 }).catch(() => {});
                  break;
              }
            }
          };
          client.on('console.output', (note) => {
            if (note.vm === id && !finished) process.stdout.write(Buffer.from(note.data, 'base64'));
          });
          client.on('event', (event) => {
            if (event.vm !== id || finished) return;
            if (event.kind === 'reset') {
              process.stderr.write(`\r\nvireo: ${info.spec.name} rebooted (${event.message})\r\n`);
              return;
            }
            if (event.kind !== 'state') return;
            const { state, lastExit } = event.status;
            if (state === 'stopped' || state === 'crashed') {
              const why = lastExit
                ? ` (${lastExit.reason}${lastExit.message ? `: ${lastExit.message}` : ''})`
                : '';
              finish(
                state === 'crashed' ? VmExitCode.failure : VmExitCode.ok,
                `${info.spec.name} ${state}${why}`,
              );
            }
          });
          client.on('close', () => finish(VmExitCode.daemonUnreachable, 'the daemon went away'));
          client.call('console.attach', { vm: id, history: flags.history }).then((attached) => {
            if (attached.history) process.stdout.write(Buffer.from(attached.history, 'base64'));
            if (raw) stdin.setRawMode(true);
            process.once('exit', restore);
            stdin.on('data', onData);
            stdin.resume();
            if (process.stderr.isTTY) {
              process.stderr.write(
                `vireo: attached to ${info.spec.name} (Ctrl-A d detaches, Ctrl-A h help)\r\n`,
              );
            }
          }, reject);
        });
      });
    });
}
