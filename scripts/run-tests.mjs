#!/usr/bin/env node
// Runs every test (node's test runner over the compiled *.test.js files) and ends with one
// summary line: "tests: N passed, N failed, N skipped".
//   --quick   leave out slow real-Linux boots (never in CI)
//   --filter  only test files whose path contains this text
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, filter: { type: 'string' } },
});

function findTests(dir) {
  const found = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...findTests(path));
    else if (name.endsWith('.test.js')) found.push(path);
  }
  return found;
}

const files = findTests(join(root, 'dist'))
  .filter((f) => !values.filter || relative(root, f).includes(values.filter))
  .sort();
if (files.length === 0) {
  console.error('run-tests: no test files found under dist/ (did the build run?)');
  process.exit(1);
}

const env = { ...process.env };
if (values.quick) env.VIREO_QUICK = '1';

const child = spawn(process.execPath, ['--test', '--test-concurrency=1', ...files], {
  cwd: root,
  env,
  stdio: ['ignore', 'pipe', 'inherit'],
});

const counts = { pass: 0, fail: 0, skipped: 0, cancelled: 0, todo: 0 };
let pending = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  pending += chunk.toString();
  const lines = pending.split('\n');
  pending = lines.pop() ?? '';
  for (const line of lines) {
    const m = /^# (pass|fail|skipped|cancelled|todo) (\d+)$/.exec(line);
    if (m) counts[m[1]] = Number(m[2]);
  }
});
child.on('close', (code) => {
  const failed = counts.fail + counts.cancelled;
  console.log(`\ntests: ${counts.pass} passed, ${failed} failed, ${counts.skipped} skipped`);
  process.exit(code === 0 && failed === 0 && counts.pass > 0 ? 0 : 1);
});
