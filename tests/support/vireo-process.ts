// Drives the real `vireo` command as a child process: what a person at the terminal does.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repositoryRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const VIREO_BIN = join(repositoryRoot, 'bin', 'vireo');

export interface VireoRun {
  child: ChildProcessWithoutNullStreams;
  /** Everything the command printed so far (stdout and stderr interleaved). */
  output(): string;
  /** Resolves with the output once `pattern` matches it; rejects after `timeoutMs` or on exit. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<string>;
  type(text: string): void;
  /** Kills the command (SIGKILL) if it still runs, and waits for it to be gone. */
  stop(): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function startVireo(args: string[], env: NodeJS.ProcessEnv = {}): VireoRun {
  const child = spawn(process.execPath, [VIREO_BIN, ...args], { env: { ...process.env, ...env } });
  let text = '';
  const waiters = new Set<() => void>();
  const collect = (chunk: Buffer) => {
    text += chunk.toString('latin1');
    for (const wake of waiters) wake();
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      done = true;
      for (const wake of waiters) wake();
      resolve({ code, signal });
    });
  });
  return {
    child,
    output: () => text,
    exited,
    type: (input) => child.stdin.write(input),
    async stop() {
      child.kill('SIGKILL');
      await exited;
    },
    waitFor(pattern, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (pattern.test(text)) {
            finish();
            resolve(text);
          } else if (done) {
            finish();
            reject(new Error(`vireo exited before ${pattern} appeared; output:\n${text.slice(-3000)}`));
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(
            new Error(
              `timed out after ${timeoutMs} ms waiting for ${pattern}; output:\n${text.slice(-3000)}`,
            ),
          );
        }, timeoutMs);
        const finish = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
  };
}
