// Tiny guests as ELF files with a PVH entry note, assembled with the system's binutils: `vireo run`
// and QEMU both boot them, so CLI tests and benchmarks can use real VMs that start in
// milliseconds. The body is 32-bit protected-mode assembly (AT&T syntax) run at the PVH entry.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const PVH_NOTE = `
  .section .note.Xen, "a"
  .balign 4
  .long 4, 4, 18                 # name size, descriptor size, XEN_ELFNOTE_PHYS32_ENTRY
  .asciz "Xen"
  .long pvh_entry
  .text
  .code32
  .globl pvh_entry
pvh_entry:
`;

/** Assembles `body` into `dir/name.elf` and returns its path. */
export function buildPvhGuest(dir: string, name: string, body: string): string {
  const source = join(dir, `${name}.S`);
  const object = join(dir, `${name}.o`);
  const elf = join(dir, `${name}.elf`);
  writeFileSync(source, `${PVH_NOTE}${body}\n`);
  // -N: no page-aligned header segment, so nothing is loaded below the code at 1 MiB.
  const steps: [string, string[]][] = [
    ['as', ['--32', '-o', object, source]],
    [
      'ld',
      ['-m', 'elf_i386', '-N', '--no-warn-rwx-segments', '-Ttext=0x100000'].concat([
        '--section-start=.note.Xen=0x100800',
        '-e',
        'pvh_entry',
        '-o',
        elf,
        object,
      ]),
    ],
  ];
  for (const [command, args] of steps) {
    const result = spawnSync(command, args, { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`${command} failed for guest ${name}: ${result.stderr}`);
  }
  return elf;
}

/** Assembly that writes `text` to COM1. */
export function serialWrite(text: string): string {
  const bytes = [...Buffer.from(text)];
  return ['mov $0x3f8, %dx', ...bytes.flatMap((b) => [`mov $${b}, %al`, 'out %al, %dx'])].join('\n');
}

/** Assembly that powers the machine off through the ACPI PM1a control register (SLP_TYP 5). */
export const ACPI_POWER_OFF = 'mov $0x604, %dx\nmov $0x3400, %ax\nout %ax, %dx';

export const HALT_FOREVER = '1:\ncli\nhlt\njmp 1b';

/**
 * A guest that counts for ever: "tick <count in 8 hex digits>\n" on COM1, then a delay loop of
 * `delay` iterations. Its count lives in %esi, so a reboot starts again at 1.
 */
export function countingGuest(delay = 200_000): string {
  return `
    xor %esi, %esi
  tick:
    inc %esi
    ${serialWrite('tick ')}
    mov %esi, %ebx
    mov $8, %ecx
  digit:
    rol $4, %ebx
    mov %ebx, %eax
    and $0xf, %eax
    cmp $10, %al
    jb 1f
    add $39, %al
  1:
    add $48, %al
    out %al, %dx
    loop digit
    mov $10, %al
    out %al, %dx
    mov $${delay}, %ecx
  2:
    loop 2b
    jmp tick`;
}

/** Guest RAM the boot counter lives in: above the guest image, below anything the loader writes. */
export const BOOT_COUNTER_ADDRESS = 0x30_0000;

/**
 * A guest that adds one to a byte of RAM and prints it as "boot <n>\n", then runs `then`. On a
 * machine whose RAM is cleared at reset every boot prints "boot 1".
 */
export function bootCounterGuest(then: string): string {
  return `
    movb ${BOOT_COUNTER_ADDRESS}, %bl
    inc %bl
    movb %bl, ${BOOT_COUNTER_ADDRESS}
    ${serialWrite('boot ')}
    mov %bl, %al
    add $48, %al
    out %al, %dx
    mov $10, %al
    out %al, %dx
    ${then}`;
}

/** Assembly that asks the i8042 for a CPU reset (the way Linux reboots by default). */
export const I8042_RESET = 'mov $0xfe, %al\nout %al, $0x64';
