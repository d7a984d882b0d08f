// `vireo run` refuses bad input with exit status 2 and a message naming the problem, before
// anything starts. Runs the real command.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { startVireo } from '../../../../tests/support/vireo-process.js';
import { syntheticElf } from '../../x86/synthetic-kernels.js';
import { parseDisk } from './run.js';

const dir = mkdtempSync(join(tmpdir(), 'vireo-run-args-'));
after(() => rmSync(dir, { recursive: true }));
const textFile = join(dir, 'notes.txt');
writeFileSync(textFile, 'this is not a kernel\n'.repeat(100));
const elfWithoutPvh = join(dir, 'plain.elf');
writeFileSync(elfWithoutPvh, syntheticElf({ pvhEntry: undefined }));
const armElf = join(dir, 'arm.elf');
writeFileSync(armElf, syntheticElf({ pvhEntry: 0x100_0000, machine: 183 }));

async function runVireo(args: string[]): Promise<{ code: number | null; output: string }> {
  const run = startVireo(['run', ...args], { VIREO_CACHE: join(dir, 'no-cache') });
  run.child.stdin.end();
  const { code } = await run.exited;
  return { code, output: run.output() };
}

const cases: [string, string[], RegExp][] = [
  ['a missing kernel file', ['--kernel', join(dir, 'absent')], /cannot read kernel '.*absent': ENOENT/],
  ['a directory as kernel', ['--kernel', dir], /is not a regular file/],
  ['a text file as kernel', ['--kernel', textFile], /not a Linux kernel/],
  ['an ELF without a PVH entry', ['--kernel', elfWithoutPvh], /without a PVH entry note/],
  ['an ELF for another machine', ['--kernel', armElf], /not an x86 kernel: ELF machine type 183/],
  ['memory that is not a size', ['--kernel', textFile, '--memory', 'lots'], /--memory: 'lots' is not a size/],
  ['more memory than the host has', ['--kernel', textFile, '--memory', '64T'], /more than this host has/],
  ['too little memory', ['--kernel', textFile, '--memory', '1M'], /memoryBytes: memory must be at least 32M/],
  ['zero CPUs', ['--kernel', textFile, '--cpus', '0'], /cpus: at least 1 CPU/],
  [
    'CPUs that are not a number',
    ['--kernel', textFile, '--cpus', 'two'],
    /--cpus: 'two' is not a whole number/,
  ],
  ['an unknown CPU profile', ['--kernel', textFile, '--cpu-profile', 'fast'], /cpuProfile/],
  ['an unknown option', ['--kernal', textFile], /unknown option '--kernal'/],
  ['a missing initrd', ['--kernel', textFile, '--initrd', join(dir, 'absent.img')], /cannot read initrd/],
  [
    'an unknown network mode',
    ['--kernel', textFile, '--net', 'bridge'],
    /--net 'bridge' is not none, user or tap:NAME/,
  ],
  [
    'a tap name that is too long',
    ['--kernel', textFile, '--net', 'tap:a-very-long-tap-name'],
    /1-15 characters/,
  ],
  ['a forward with one port', ['--kernel', textFile, '--forward', 'tcp:80'], /--forward 'tcp:80': use/],
  ['a forward to port 0', ['--kernel', textFile, '--forward', 'tcp:8080:0'], /a port is 1-65535/],
  [
    'a forward without --net user',
    ['--kernel', textFile, '--net', 'none', '--forward', '8080:80'],
    /needs --net user/,
  ],
];

for (const [what, args, message] of cases) {
  test(`vireo run refuses ${what} with exit status 2`, async () => {
    const { code, output } = await runVireo(args);
    assert.equal(code, 2, output);
    assert.match(output, message);
  });
}

test('vireo run without a kernel and without built guest material says how to build it', async () => {
  const { code, output } = await runVireo([]);
  assert.equal(code, 1, output);
  assert.match(output, /run scripts\/setup first/);
});

test('vireo run --help describes the options and the exit statuses', async () => {
  const { code, output } = await runVireo(['--help']);
  assert.equal(code, 0);
  for (const option of ['--kernel', '--initrd', '--append', '--memory', '--cpus', 'Exit status']) {
    assert.ok(output.includes(option), `help mentions ${option}`);
  }
});

test('--disk takes readonly/ro and direct in any order after the path', () => {
  const image = join(dir, 'disk,with,commas.img');
  writeFileSync(image, new Uint8Array(4096));
  assert.deepEqual(parseDisk(image), { path: image, readOnly: false, direct: false });
  assert.deepEqual(parseDisk(`${image},direct,ro`), { path: image, readOnly: true, direct: true });
  assert.deepEqual(parseDisk(`${image},readonly,direct`), { path: image, readOnly: true, direct: true });
  assert.throws(
    () => parseDisk(`${join(dir, 'missing.img')},direct`),
    /cannot read and write .*missing\.img.*ENOENT/,
  );
});
