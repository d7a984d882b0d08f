// Guest images for the benchmarks: the C guests in bench/guests built with the system's gcc, their
// parameter words patched, and any flat guest wrapped as a PVH ELF so QEMU boots the same bytes.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GUEST_PARAM_OFFSET, testGuestDir } from '../../core/src/kvm/test-vm.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const benchDir = join(root, 'bench');
const guestSources = join(benchDir, 'guests');
/** Built guests and helper binaries, beside the test guests. */
export const benchCacheDir = join(dirname(testGuestDir()), 'bench');

export function run(
  command: string,
  args: string[],
): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.error) return { status: null, stdout: '', stderr: result.error.message };
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function mustRun(command: string, args: string[]): void {
  const result = run(command, args);
  if (result.status !== 0) throw new Error(`${command} failed: ${result.stderr.trim()}`);
}

/** True when `output` exists and is newer than every input. */
export function newer(output: string, inputs: string[]): boolean {
  if (!existsSync(output)) return false;
  const built = statSync(output).mtimeMs;
  return inputs.every((input) => statSync(input).mtimeMs <= built);
}

/** Host program bench/<name>.c (a baseline, a probe) built into the cache when it changed; its path. */
export function hostProgram(name: string): string {
  const source = join(benchDir, `${name}.c`);
  const binary = join(benchCacheDir, name);
  if (!newer(binary, [source])) {
    mkdirSync(benchCacheDir, { recursive: true });
    mustRun('gcc', ['-O2', '-Wall', '-o', binary, source]);
  }
  return binary;
}

const CFLAGS = [
  '-O2',
  '-std=gnu11',
  '-Wall',
  '-Wextra',
  '-Werror',
  '-ffreestanding',
  '-nostdlib',
  '-fno-builtin',
  '-fno-pic',
  '-fno-pie',
  '-fno-stack-protector',
  '-fno-asynchronous-unwind-tables',
  '-fcf-protection=none',
  '-mno-red-zone',
  '-mgeneral-regs-only', // no SSE state to set up, and nothing for an emulator to trip on
];

/**
 * The flat binary of bench guest `name` (bench/guests/<name>.c with entry.S, guest.c and
 * virtio.c), rebuilt when any source changed. Loaded at 0x100000.
 */
export function benchGuest(name: string): Uint8Array {
  const sources = ['entry.S', 'guest.c', 'virtio.c', `${name}.c`].map((file) => join(guestSources, file));
  const inputs = [
    ...readdirSync(guestSources)
      .filter((file) => /\.(h|ld|S|c)$/.test(file))
      .map((file) => join(guestSources, file)),
    join(root, 'tests', 'guests', 'guest.inc'),
  ];
  const work = join(benchCacheDir, 'guests', name);
  const binary = join(work, `${name}.bin`);
  if (!newer(binary, inputs)) {
    mkdirSync(work, { recursive: true });
    const objects = sources.map((source) => {
      const object = join(
        work,
        `${source
          .split('/')
          .pop()!
          .replace(/\.[cS]$/, '')}.o`,
      );
      mustRun('gcc', [...CFLAGS, '-I', join(root, 'tests', 'guests'), '-c', '-o', object, source]);
      return object;
    });
    const elf = join(work, `${name}.elf`);
    mustRun('ld', [
      '-m',
      'elf_x86_64',
      '-nostdlib',
      '-static',
      '-z',
      'noexecstack',
      '--no-warn-rwx-segments',
      '-T',
      join(guestSources, 'guest.ld'),
      '-o',
      elf,
      ...objects,
    ]);
    mustRun('objcopy', ['-O', 'binary', elf, binary]);
  }
  return new Uint8Array(readFileSync(binary));
}

/** A copy of `guest` with its parameter words set: params[i] at offset 8 + 8i (bench/guests/guest.h). */
export function withParams(guest: Uint8Array, params: readonly (number | bigint)[]): Uint8Array {
  if (params.length > 8) throw new Error('a guest has 8 parameter words');
  const copy = guest.slice();
  const view = new DataView(copy.buffer);
  params.forEach((value, i) => {
    view.setBigUint64(GUEST_PARAM_OFFSET + 8 * i, BigInt(value), true);
  });
  return copy;
}

/** Wraps the flat guest as a PVH ELF (bench/lib/qemu-pvh-wrapper.S) in `work`; returns its path. */
export function qemuImage(guest: Uint8Array, work: string, tag: string): string {
  const guestPath = join(work, `guest-${tag}.bin`);
  writeFileSync(guestPath, guest);
  const source = readFileSync(join(benchDir, 'lib', 'qemu-pvh-wrapper.S'), 'utf8').replace(
    'GUEST_PATH',
    JSON.stringify(guestPath),
  );
  const asm = join(work, `wrapper-${tag}.S`);
  writeFileSync(asm, source);
  const object = join(work, `wrapper-${tag}.o`);
  const elf = join(work, `wrapper-${tag}.elf`);
  mustRun('as', ['--32', '-o', object, asm]);
  // The guest (and its .bss) must end below the wrapper's note at 0x3ff000.
  if (guest.length > 0x2f0000) throw new Error(`guest ${tag} is too big for the QEMU wrapper`);
  mustRun('ld', [
    '-m',
    'elf_i386',
    '-nostdlib',
    '-static',
    '--no-warn-rwx-segments',
    '--section-start=.guest=0x100000',
    '--section-start=.note.Xen=0x3ff000',
    '--section-start=.text32=0x400000',
    '-e',
    'pvh_entry',
    '-o',
    elf,
    object,
  ]);
  return elf;
}

export const QEMU = 'qemu-system-x86_64';

/** Why QEMU cannot be the baseline here, or undefined when it can. */
export function qemuUnavailable(): string | undefined {
  const probe = run(QEMU, ['--version']);
  if (probe.status !== 0) return `${QEMU} not installed (apt-get install qemu-system-x86)`;
  return undefined;
}
