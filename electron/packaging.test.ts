// The electron-builder configuration cannot be run here (it downloads Electron), so its shape is
// checked: Linux targets, the desktop entry as assets/vireo.desktop has it, the native addon kept
// out of the asar, and every file it names present after `npm run build`.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const config = JSON.parse(readFileSync(join(root, 'electron-builder.json'), 'utf8'));
const packageJson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

/** electron-builder's file patterns: `**` any folders, `*` within one name. */
function globRegExp(pattern: string): RegExp {
  const escaped = pattern
    .split('**/')
    .map((part) =>
      part
        .split('*')
        .map((text) => text.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('[^/]*'),
    )
    .join('(?:.*/)?');
  return new RegExp(`^${escaped}$`);
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((name) => join(dir, name))
    .filter((path) => statSync(path).isFile())
    .map((path) => relative(root, path));
}

function matching(pattern: string): string[] {
  if (!pattern.includes('*')) return existsSync(join(root, pattern)) ? [pattern] : [];
  const staticPrefix = pattern.split('*')[0] ?? '';
  const base = join(
    root,
    staticPrefix.includes('/') ? staticPrefix.slice(0, staticPrefix.lastIndexOf('/')) : '',
  );
  const regexp = globRegExp(pattern);
  return filesUnder(base).filter((path) => regexp.test(path));
}

function desktopEntry(text: string): Record<string, string> {
  const entry: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const separator = line.indexOf('=');
    if (separator > 0) entry[line.slice(0, separator)] = line.slice(separator + 1);
  }
  return entry;
}

function pngSize(path: string): { width: number; height: number } {
  const header = readFileSync(path).subarray(0, 24);
  assert.equal(header.subarray(1, 4).toString('latin1'), 'PNG', `${path} is a PNG`);
  return { width: header.readUInt32BE(16), height: header.readUInt32BE(20) };
}

test('globs match as electron-builder means them', () => {
  assert.ok(globRegExp('dist/electron/**/*.js').test('dist/electron/main.js'));
  assert.ok(globRegExp('dist/electron/**/*.js').test('dist/electron/a/b.js'));
  assert.ok(!globRegExp('native/build/Release/*.node').test('native/build/Release/obj/x.node'));
  assert.ok(!globRegExp('dist/**/*.js').test('dist/x.js.map'));
});

test('AppImage and deb for Linux, a pinned Electron with ES module support', () => {
  assert.deepEqual([...config.linux.target].sort(), ['AppImage', 'deb']);
  assert.equal(config.appId, 'io.github.vireo.Vireo');
  const [major] = String(config.electronVersion).split('.').map(Number);
  assert.match(
    config.electronVersion,
    /^\d+\.\d+\.\d+$/,
    'electron-builder cannot read it from node_modules',
  );
  assert.ok((major ?? 0) >= 28, 'main.js is an ES module');
  assert.equal(packageJson.type, 'module');
});

test('plain npm install downloads no Electron binary', () => {
  const all = { ...packageJson.dependencies, ...packageJson.devDependencies };
  for (const name of ['electron', 'electron-builder', 'app-builder-bin']) {
    assert.equal(all[name], undefined, `${name} would download binaries at install`);
  }
});

test('the desktop entry is the one in assets/, with the category System;Emulator;', () => {
  const assets = desktopEntry(readFileSync(join(root, 'assets', 'vireo.desktop'), 'utf8'));
  const entry = config.linux.desktop.entry;
  for (const key of [
    'Name',
    'GenericName',
    'Comment',
    'Categories',
    'Keywords',
    'StartupWMClass',
    'Terminal',
  ]) {
    assert.equal(entry[key], assets[key], key);
  }
  assert.deepEqual(entry.Categories.split(';').filter(Boolean), ['System', 'Emulator']);
  assert.equal(config.linux.category, 'System');
  assert.equal(
    assets.Exec?.split(' ')[0],
    config.linux.executableName,
    'the Exec line runs the packaged binary',
  );
  assert.equal(config.productName, entry.StartupWMClass);
});

test('icons: every size named in the folder is the size it says', () => {
  const dir = join(root, config.linux.icon);
  const pngs = readdirSync(dir).filter((name) => name.endsWith('.png'));
  for (const size of [16, 32, 48, 64, 128, 256, 512])
    assert.ok(pngs.includes(`${size}x${size}.png`), `${size}`);
  for (const name of pngs) {
    const [width, height] = name.replace('.png', '').split('x').map(Number);
    assert.deepEqual(pngSize(join(dir, name)), { width, height }, name);
  }
});

test('every file pattern matches built files; the native addon is unpacked from the asar', () => {
  for (const pattern of config.files.filter((p: string) => !p.startsWith('!'))) {
    assert.ok(matching(pattern).length > 0, `nothing matches ${pattern} (run npm run build)`);
  }
  const included = (path: string) =>
    config.files.some((p: string) => !p.startsWith('!') && globRegExp(p).test(path)) &&
    !config.files.some((p: string) => p.startsWith('!') && globRegExp(p.slice(1)).test(path));
  for (const path of [packageJson.main, 'dist/electron/preload.cjs', 'dist/core/src/daemon/main.js']) {
    assert.ok(existsSync(join(root, path)), `${path} is built`);
    assert.ok(included(path), `${path} is packaged`);
  }
  assert.ok(!included('dist/electron/ipc.test.js'), 'tests stay out');
  const addons = matching('native/build/Release/*.node');
  assert.ok(addons.length > 0);
  for (const addon of addons) {
    assert.ok(included(addon), `${addon} is packaged`);
    assert.ok(
      config.asarUnpack.some((p: string) => globRegExp(p).test(addon)),
      `${addon} must be unpacked: dlopen cannot read inside an asar`,
    );
  }
});
