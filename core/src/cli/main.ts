// The `vireo` command.

import { Command, CommanderError } from 'commander';
import { registerConsoleCommand } from './commands/console.js';
import { registerDaemonCommand } from './commands/daemon.js';
import { registerRunCommand } from './commands/run.js';
import { registerUiCommand } from './commands/ui.js';
import { registerVmCommands } from './commands/vm.js';
import { CliError, ExitCode } from './errors.js';

export function buildProgram(): Command {
  const program = new Command('vireo')
    .description('Vireo: virtual machines on KVM with a hypervisor core of their own')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerRunCommand(program);
  registerVmCommands(program);
  registerConsoleCommand(program);
  registerDaemonCommand(program);
  registerUiCommand(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return process.exitCode === undefined ? ExitCode.ok : Number(process.exitCode);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are not errors; everything else Commander rejects is a usage error.
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    if (error instanceof CliError) {
      process.stderr.write(`vireo: ${error.message}\n`);
      return error.exitCode;
    }
    process.stderr.write(
      `vireo: internal error: ${error instanceof Error ? (error.stack ?? error.message) : error}\n`,
    );
    return ExitCode.failure;
  }
}

const isEntryPoint = process.argv[1] && /(?:^|\/)(?:vireo|main\.js)$/.test(process.argv[1]);
if (isEntryPoint || process.env.VIREO_CLI_ENTRY === '1') {
  // Exit explicitly: a VM's worker threads must not keep a finished command alive.
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
