#!/usr/bin/env node
// Runs every test (node's test runner over the compiled *.test.js files) and ends with one
// summary line: "tests: N passed, N failed, N skipped".
//   --quick   leave out slow real-Linux boots (never in CI)
//   --filter  only test files whose path contains this text
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

const countsDir = mkdtempSync(join(tmpdir(), 'vireo-tests-'));
const countsFile = join(countsDir, 'counts.json');
const reporters = [
  ['tap', 'stdout'],
  [join(root, 'scripts', 'lib', 'count-reporter.mjs'), countsFile],
].flatMap(([reporter, destination]) => [
  `--test-reporter=${reporter}`,
  `--test-reporter-destination=${destination}`,
]);
const child = spawn(process.execPath, ['--test', '--test-concurrency=1', ...reporters, ...files], {
  cwd: root,
  env,
  stdio: ['ignore', 'inherit', 'inherit'],
});

child.on('close', (code) => {
  let counts;
  try {
    counts = JSON.parse(readFileSync(countsFile, 'utf8'));
  } catch {
    counts = { passed: 0, failed: 1, skipped: 0 }; // the runner died before its reporter finished
  }
  rmSync(countsDir, { recursive: true, force: true });
  console.log(`\ntests: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
  process.exit(code === 0 && counts.failed === 0 && counts.passed > 0 ? 0 : 1);
});
