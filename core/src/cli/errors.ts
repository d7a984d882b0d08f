// Exit statuses scripts can test, and the error that carries one.

export const ExitCode = {
  ok: 0,
  /** The VM or the operation failed. */
  failure: 1,
  /** Wrong or missing arguments, unreadable inputs: nothing was started. */
  usage: 2,
} as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = ExitCode.failure,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export function usageError(message: string): CliError {
  return new CliError(message, ExitCode.usage);
}
