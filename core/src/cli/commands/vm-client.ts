// What the VM commands share: reaching the daemon, mapping API errors to exit codes, --json output.

import { type ApiClient, ConnectionClosedError, RpcError } from '../../api/client.js';
import { ErrorCode, type VmInfo } from '../../api/schema.js';
import { formatSize } from '../../api/size.js';
import { connectToDaemon } from '../../daemon/connect.js';
import { formatPortForward } from '../../net/config.js';
import { CliError, ExitCode } from '../errors.js';

/**
 * Exit statuses of the VM commands. 0-2 are ExitCode's; the rest say what went wrong so scripts
 * can tell "no such VM" from "it is already running".
 */
export const VmExitCode = {
  ...ExitCode,
  notFound: 3,
  wrongState: 4,
  daemonUnreachable: 5,
} as const;

export const EXIT_CODES_HELP =
  '\nExit status: 0 done, 1 the operation failed, 2 bad arguments or settings, 3 no such VM,\n' +
  '4 the VM is not in a state that allows this, 5 the daemon cannot be reached.';

export interface JsonFlag {
  json?: boolean;
}

export function exitCodeFor(error: RpcError): number {
  switch (error.code) {
    case ErrorCode.vmNotFound:
      return VmExitCode.notFound;
    case ErrorCode.invalidState:
      return VmExitCode.wrongState;
    case ErrorCode.invalidParams:
    case ErrorCode.nameTaken:
    case ErrorCode.invalidSpec:
      return VmExitCode.usage;
    default:
      return VmExitCode.failure;
  }
}

/** Field issues the message does not already name, one per line. */
function describeData(message: string, data: unknown): string {
  if (!Array.isArray(data)) return '';
  return data
    .map((issue) => {
      if (typeof issue !== 'object' || !issue || !('path' in issue) || !('message' in issue)) return '';
      const line = `${String(issue.path)}: ${String(issue.message)}`;
      return message.includes(line) ? '' : `\n  ${line}`;
    })
    .join('');
}

/** Runs `body` with a daemon connection; API errors become CliErrors with the right exit code. */
export async function withDaemon<T>(
  json: boolean | undefined,
  body: (client: ApiClient) => Promise<T>,
): Promise<T> {
  let client: ApiClient;
  try {
    client = await connectToDaemon();
  } catch (error) {
    throw new CliError(
      `cannot reach the Vireo daemon: ${(error as Error).message}`,
      VmExitCode.daemonUnreachable,
    );
  }
  try {
    return await body(client);
  } catch (error) {
    if (error instanceof RpcError) {
      if (json) {
        process.stdout.write(
          `${JSON.stringify({ error: { code: error.code, name: error.codeName, message: error.message, data: error.data } })}\n`,
        );
      }
      throw new CliError(`${error.message}${describeData(error.message, error.data)}`, exitCodeFor(error));
    }
    if (error instanceof ConnectionClosedError) {
      throw new CliError('the daemon closed the connection', VmExitCode.daemonUnreachable);
    }
    throw error;
  } finally {
    client.close();
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function describeBoot(info: VmInfo): string {
  const boot = info.spec.boot;
  return boot.kind === 'default' ? 'built-in guest' : boot.kernel;
}

export function formatTable(rows: string[][]): string {
  const widths =
    rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
  return rows
    .map((row) =>
      row
        .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
        .join('  '),
    )
    .join('\n');
}

export function describeStatus(info: VmInfo): string {
  const { status } = info;
  let text = status.state;
  if ((status.state === 'stopped' || status.state === 'crashed') && status.lastExit) {
    text += ` (${status.lastExit.reason}${status.lastExit.message ? `: ${status.lastExit.message}` : ''})`;
  }
  return text;
}

export function describeVm(info: VmInfo): string {
  const { spec, status } = info;
  const lines = [
    `name:       ${spec.name}`,
    `id:         ${spec.id}`,
    `state:      ${describeStatus(info)}${status.pid ? `, VM host pid ${status.pid}` : ''}`,
    `since:      ${status.since}`,
    `cpus:       ${spec.cpus} (CPU profile ${spec.cpuProfile})`,
    `memory:     ${formatSize(spec.memoryBytes)}`,
    `boot:       ${describeBoot(info)}`,
  ];
  if (spec.boot.kind === 'default' && spec.boot.append) lines.push(`append:     ${spec.boot.append}`);
  if (spec.boot.kind === 'kernel') {
    if (spec.boot.initrd) lines.push(`initrd:     ${spec.boot.initrd}`);
    lines.push(`cmdline:    ${spec.boot.cmdline}`);
  }
  for (const disk of spec.disks) {
    const options = [disk.format, disk.readonly && 'read-only', disk.direct && 'O_DIRECT'].filter(Boolean);
    lines.push(`disk:       ${disk.path} (${options.join(', ')})`);
  }
  const network = spec.network;
  lines.push(`network:    ${network.mode === 'tap' ? `tap ${network.tap}` : network.mode}`);
  if (network.mode !== 'none' && network.mac) lines.push(`mac:        ${network.mac}`);
  if (network.mode === 'user') {
    for (const forward of network.forwards) lines.push(`forward:    ${formatPortForward(forward)}`);
  }
  lines.push(`console:    ${spec.console.kind}`);
  lines.push(`display:    ${spec.display.enabled ? `${spec.display.width}x${spec.display.height}` : 'none'}`);
  if (status.lastExit?.consoleTail) {
    lines.push('last console lines:');
    for (const line of status.lastExit.consoleTail.split('\n')) lines.push(`  | ${line}`);
  }
  return lines.join('\n');
}
