#!/usr/bin/env node
// One build: TypeScript (core, bench, tests), the `vireo` command's bundle, the Node-API addon,
// the renderer bundle.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);

const steps = [
  ['TypeScript', bin('tsc'), ['-p', 'tsconfig.json']],
  ['CLI bundle', process.execPath, [join(root, 'scripts', 'bundle-cli.mjs')]],
  ['renderer types', bin('tsc'), ['-p', 'renderer/tsconfig.json']],
  ['native addon', bin('node-gyp'), ['rebuild', '-C', 'native', '--silent']],
  ['renderer', bin('vite'), ['build', '--config', 'renderer/vite.config.ts', '--logLevel', 'warn']],
];

for (const [what, cmd, args] of steps) {
  const started = Date.now();
  const result = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`build: ${what} failed (exit ${result.status ?? result.signal})`);
    process.exit(1);
  }
  console.log(`build: ${what} ok (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}
