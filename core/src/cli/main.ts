// The `vireo` command.

import { Command, CommanderError } from 'commander';
import { registerRunCommand } from './commands/run.js';
import { CliError, ExitCode } from './errors.js';

/**
 * The command line. `vireo run` is a VM's start-up path (bench/startup.ts), so only it is
 * loaded when it is the command; the other commands pull in the API schema (zod) and the
 * daemon, which would cost more than QEMU needs to start a VM.
 */
export async function buildProgram(argv: readonly string[]): Promise<Command> {
  const program = new Command('vireo')
    .description('Vireo: virtual machines on KVM with a hypervisor core of their own')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerRunCommand(program);
  if (argv[0] === 'run') return program;
  const [vm, console, daemon, ui] = await Promise.all([
    import('./commands/vm.js'),
    import('./commands/console.js'),
    import('./commands/daemon.js'),
    import('./commands/ui.js'),
  ]);
  vm.registerVmCommands(program);
  console.registerConsoleCommand(program);
  daemon.registerDaemonCommand(program);
  ui.registerUiCommand(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    const program = await buildProgram(argv);
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
