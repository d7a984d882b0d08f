// `vireo run` end to end on /dev/kvm with tiny PVH guests that start in milliseconds: console
// output and input, the escape key, power off, reset and a failing guest.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import {
  ACPI_POWER_OFF,
  buildPvhGuest,
  HALT_FOREVER,
  serialWrite,
} from '../../../../tests/support/pvh-guest.js';
import { kvmTest } from '../../../../tests/support/tags.js';
import { startVireo } from '../../../../tests/support/vireo-process.js';

const dir = mkdtempSync(join(tmpdir(), 'vireo-run-kvm-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function run(elf: string) {
  return startVireo(['run', '--kernel', elf, '--memory', '64M']);
}

kvmTest('a guest that prints and powers off ends vireo run with status 0', async () => {
  const elf = buildPvhGuest(
    dir,
    'hello',
    [serialWrite('hello from the guest\n'), ACPI_POWER_OFF, HALT_FOREVER].join('\n'),
  );
  const vm = run(elf);
  const { code } = await vm.exited;
  assert.equal(code, 0, vm.output());
  assert.match(vm.output(), /hello from the guest/);
});

kvmTest('typed bytes reach the guest through the UART', async () => {
  // Polls LSR for data, echoes each byte plus one, and powers off after a newline.
  const body = `
    mov $0x3f8, %dx
  wait:
    add $5, %dx
    in %dx, %al
    sub $5, %dx
    test $1, %al
    jz wait
    in %dx, %al
    cmp $10, %al
    je done
    inc %al
    out %al, %dx
    jmp wait
  done:
    ${ACPI_POWER_OFF}
    ${HALT_FOREVER}`;
  const vm = run(buildPvhGuest(dir, 'echo', `${serialWrite('ready\n')}\n${body}`));
  await vm.waitFor(/ready/, 30_000);
  vm.type('HAL\n');
  const { code } = await vm.exited;
  assert.equal(code, 0, vm.output());
  assert.match(vm.output(), /IBM/);
});

kvmTest('Ctrl-A b sends a break to the UART in its place among the typed keys', async () => {
  // Polls LSR: prints '!' for BI, then echoes each character (the break's NUL as '0') until 'q'.
  const body = `
    mov $0x3f8, %dx
  wait:
    add $5, %dx
    in %dx, %al
    sub $5, %dx
    mov %al, %bl
    test $0x10, %bl
    jz no_break
    mov $0x21, %al
    out %al, %dx
  no_break:
    test $1, %bl
    jz wait
    in %dx, %al
    cmp $0x71, %al
    je done
    test %al, %al
    jnz echo
    mov $0x30, %al
  echo:
    out %al, %dx
    jmp wait
  done:
    ${ACPI_POWER_OFF}
    ${HALT_FOREVER}`;
  const vm = run(buildPvhGuest(dir, 'break', `${serialWrite('ready\n')}\n${body}`));
  await vm.waitFor(/ready/, 30_000);
  vm.type('a\x01bhq');
  const { code } = await vm.exited;
  assert.equal(code, 0, vm.output());
  assert.match(vm.output(), /ready\na!0h/);
});

kvmTest('Ctrl-A x stops a running guest', async () => {
  const vm = run(buildPvhGuest(dir, 'halt', `${serialWrite('up\n')}\n${HALT_FOREVER}`));
  await vm.waitFor(/up/, 30_000);
  vm.type('\x01x');
  const { code } = await vm.exited;
  assert.equal(code, 0);
  assert.match(vm.output(), /VM stopped from the console/);
});

kvmTest('a reset through the i8042 stops the VM and says so', async () => {
  const vm = run(buildPvhGuest(dir, 'reset', `mov $0xfe, %al\nout %al, $0x64\n${HALT_FOREVER}`));
  const { code } = await vm.exited;
  assert.equal(code, 0, vm.output());
  assert.match(vm.output(), /the guest reset itself/);
});

kvmTest('a guest KVM cannot run fails with status 1, the instruction and the registers', async () => {
  // Executes from the MMIO hole, where there is no RAM and no device.
  const vm = run(buildPvhGuest(dir, 'wild', 'mov $0xd0000000, %eax\njmp *%eax'));
  const { code } = await vm.exited;
  assert.equal(code, 1, vm.output());
  assert.match(vm.output(), /VM failed: .*RIP/);
});
