// Real Linux boots through the real `vireo run`: few of them, each checking many things. On hosts
// whose KVM emulates guest kernel code (see DESIGN.md) each takes minutes.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { guestMaterial, materialSkipReason } from '../../../tests/support/material.js';
import { bootTest, slowBootSkipReason } from '../../../tests/support/tags.js';
import { startVireo } from '../../../tests/support/vireo-process.js';

const MINUTE = 60_000;
const material = guestMaterial();

function skipReason(): string | false {
  return slowBootSkipReason() || materialSkipReason();
}

/** A shell script for the initramfs's /init, passed on the kernel command line. */
function testScriptArg(script: string): string {
  return `vireo.test=${Buffer.from(script).toString('base64')}`;
}

describe('Linux boots', { skip: skipReason() }, () => {
  bootTest(
    'the built-in guest (small kernel, bzImage, 2 vCPUs) boots to a shell on the serial console',
    async () => {
      const vm = startVireo(['run', '--cpus', '2', '--memory', '256M']);
      try {
        await vm.waitFor(/VIREO-INIT-READY/, 20 * MINUTE);
        await vm.waitFor(/# $/m, 2 * MINUTE);
        // Typed input reaches the guest through the UART's receive interrupt.
        vm.type('echo vireo-$((6*7))\n');
        await vm.waitFor(/vireo-42/, 2 * MINUTE);
        vm.type('echo cpus=$(grep -c ^processor /proc/cpuinfo) year=$(date +%Y)\n');
        const out = await vm.waitFor(/cpus=\d+ year=\d+/, 2 * MINUTE);
        assert.match(out, /cpus=2 /, 'the second vCPU came up through INIT/SIPI');
        assert.match(out, new RegExp(`year=${new Date().getUTCFullYear()}`), 'the RTC reads the host clock');
        vm.type(
          'grep -c . /proc/interrupts >/dev/null && echo acpi=$(ls /sys/firmware/acpi/tables | tr "\\n" ,)\n',
        );
        const acpi = await vm.waitFor(/acpi=\S+/, 2 * MINUTE);
        assert.match(acpi, /acpi=.*APIC.*DSDT.*FACP/, 'the guest found our ACPI tables');
        vm.type('poweroff -f\n');
        const { code } = await vm.exited;
        assert.equal(code, 0, 'a guest poweroff ends vireo run with status 0');
      } finally {
        vm.child.kill('SIGKILL');
      }
    },
    { timeout: 30 * MINUTE },
  );

  bootTest(
    'the small kernel boots through PVH (ELF vmlinux) and runs a test script',
    async () => {
      const script = ['echo script-ran', 'test -c /dev/ttyS0 || exit 9', 'exit 7'].join('\n');
      const vm = startVireo([
        'run',
        '--kernel',
        material!.smallKernel.vmlinux,
        '--initrd',
        material!.initramfs,
        '--append',
        `console=ttyS0 panic=-1 ${testScriptArg(script)}`,
      ]);
      try {
        const out = await vm.waitFor(/VIREO-TEST-EXIT=\d+/, 20 * MINUTE);
        assert.match(out, /script-ran/);
        assert.match(out, /VIREO-TEST-EXIT=7/);
        const { code } = await vm.exited;
        assert.equal(code, 0);
      } finally {
        vm.child.kill('SIGKILL');
      }
    },
    { timeout: 25 * MINUTE },
  );
});
