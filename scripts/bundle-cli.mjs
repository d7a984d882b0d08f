#!/usr/bin/env node
// Bundles the compiled `vireo` command (dist/core/src/cli/main.js) and its vCPU worker into
// dist/cli/, what bin/vireo runs for `vireo run`. Start-up is most of a short VM's life
// (bench/startup.ts), and Node's ES module loader takes tens of milliseconds resolving and
// reading the ~150 compiled files; a few CommonJS files load in a fraction of that. Other
// commands run from the compiled modules (they locate the daemon and VM host entries next to
// themselves). The native addon is not bundled: it is found and loaded at run time as before
// (native.ts), so Electron loads it unchanged.
import { rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'rolldown';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

// commander requires node:child_process at load, for executable subcommands Vireo does not have;
// loading it (and node:net with it) is ~2 ms of every `vireo run` start. It is required on first
// use instead.
const COMMANDER_CHILD_PROCESS = "const childProcess = require('node:child_process');";
const lazyChildProcess = {
  name: 'commander-lazy-child-process',
  transform(code, id) {
    if (!id.replaceAll('\\', '/').endsWith('node_modules/commander/lib/command.js')) return null;
    if (!code.includes(COMMANDER_CHILD_PROCESS)) {
      throw new Error(`bundle-cli: commander changed; update lazyChildProcess (${id})`);
    }
    const lazy =
      "const childProcess = new Proxy({}, { get: (_, name) => require('node:child_process')[name] });";
    // Same lines as before: the file's own positions still hold, so no source map is needed.
    return { code: code.replace(COMMANDER_CHILD_PROCESS, lazy), map: null };
  },
};
const outDir = join(root, 'dist', 'cli');

rmSync(outDir, { recursive: true, force: true });
await build({
  input: {
    vireo: join(root, 'dist/core/src/cli/main.js'),
    // The name vcpu-threads.js starts workers by (new URL('./vcpu-worker.js', import.meta.url)).
    'vcpu-worker': join(root, 'dist/core/src/kvm/vcpu-worker.js'),
  },
  plugins: [lazyChildProcess],
  platform: 'node',
  logLevel: 'warn',
  // main.ts loads these only for commands other than `run`, which bin/vireo does not bundle.
  external: [/\/cli\/commands\/(vm|console|daemon|ui)\.js$/],
  output: {
    dir: outDir,
    format: 'cjs',
    entryFileNames: '[name].js',
    // Next to the entries: chunks resolve './vcpu-worker.js' against their own location.
    chunkFileNames: '[name]-[hash].js',
    sourcemap: true,
  },
});
// The repository is "type": "module"; these .js files are CommonJS.
writeFileSync(join(outDir, 'package.json'), '{ "type": "commonjs" }\n');
