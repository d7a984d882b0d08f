// Real Linux boots through the real `vireo run`: few of them, each checking many things. On hosts
// whose KVM emulates guest kernel code (see DESIGN.md) each takes minutes, and guest user space
// cannot run there (see guestUserspaceSkipReason), so those boots check what the kernel reports.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { guestMaterial, materialSkipReason } from '../../../tests/support/material.js';
import { bootTest, guestUserspaceSkipReason, slowBootSkipReason } from '../../../tests/support/tags.js';
import { startVireo, type VireoRun } from '../../../tests/support/vireo-process.js';
import { INIT_READY_MARKER, SHELL_PROMPT, testScriptParameter } from '../guest-material/test-protocol.js';

const MINUTE = 60_000;
const material = guestMaterial();

/** Kernel log lines every boot of our machine must show, whatever the guest's user space does. */
function assertKernelSawTheMachine(log: string, cpus: number): void {
  assert.match(log, /ACPI: RSDP 0x00000000000E0000/, 'RSDP found in the BIOS area');
  assert.match(log, /ACPI: (APIC|FACP|DSDT) /, 'ACPI tables parsed');
  assert.match(log, /ttyS0 at I\/O 0x3f8 \(irq = 4, base_baud = 115200\) is a 16550A/, 'UART autoconfig');
  assert.match(log, /pci 0000:00:00\.0: \[8086:1237\]/, 'host bridge on PCI config mechanism #1');
  assert.match(log, /rtc_cmos .*setting system clock to (\d{4})/, 'CMOS RTC read');
  const year = /setting system clock to (\d{4})/.exec(log)?.[1];
  assert.equal(Number(year), new Date().getUTCFullYear(), 'the RTC gives the host time');
  assert.match(log, /pci 0000:00:01\.0: \[1af4:/, 'virtio devices found on PCI');
  // The DSDT's _PRT routes INTx (without it: "can't derive routing for PCI INT A ... no GSI").
  assert.doesNotMatch(log, /can't derive routing for PCI INT|PCI INT [A-D]: no GSI/, 'INTx routed by _PRT');
  if (cpus > 1)
    assert.match(log, new RegExp(`Brought up 1 node, ${cpus} CPUs`), 'application processors started');
}

/**
 * Magic SysRq through `vireo run`: Ctrl-A b (a break on the line: a NUL with LSR.BI and a
 * line-status interrupt), then `key`, until `expected` shows. A break that arrives while the
 * kernel writes to its console is lost in the guest: the console path reads LSR and Linux keeps
 * no LSR error bits across reads for the legacy ISA ports (lsr_save_mask 0), so the NUL and the
 * key become plain input. Hence the retries; the kernel prints nothing between them.
 */
async function sysrq(vm: VireoRun, key: string, expected: RegExp): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    vm.type(`\x01b${key}`);
    try {
      return await vm.waitFor(expected, 2 * MINUTE);
    } catch (error) {
      if (attempt === 3 || vm.child.exitCode !== null) throw error;
    }
  }
}

describe('Linux boots', { skip: slowBootSkipReason() || materialSkipReason() }, () => {
  bootTest(
    'the built-in guest (small kernel, bzImage) answers magic SysRq on a serial break and powers off through ACPI',
    async () => {
      // Two vCPUs: the kernel starts its AP through INIT/SIPI and the real-mode trampoline.
      // No init (rdinit names nothing) and a root device that never comes: the kernel sits in
      // rootwait with interrupts on and /dev/console open (so the UART's receive interrupt is
      // enabled), which needs no guest user space, so it runs on every host.
      const vm = startVireo([
        'run',
        '--cpus',
        '2',
        '--memory',
        '128M',
        '--net',
        'none',
        '--append',
        'console=ttyS0 panic=-1 rdinit=/none root=/dev/vdz rootwait',
      ]);
      try {
        const log = await vm.waitFor(/Waiting for root device \/dev\/vdz/, 25 * MINUTE);
        assertKernelSawTheMachine(log, 2);
        // 'h' is no SysRq command, so the kernel lists them all.
        await sysrq(vm, 'h', /sysrq: HELP : .*poweroff\(o\)/);
        await sysrq(vm, 'o', /sysrq: Power Off/);
        const { code } = await vm.exited;
        assert.equal(code, 0, 'SysRq o powers off through ACPI S5: vireo run ends with status 0');
      } finally {
        await vm.stop();
      }
    },
    { timeout: 30 * MINUTE },
  );

  bootTest(
    'the small kernel boots through PVH (ELF vmlinux) and runs a test script',
    async (t) => {
      const script = ['echo script-ran', 'test -c /dev/ttyS0 || exit 9', 'exit 7'].join('\n');
      const vm = startVireo([
        'run',
        '--kernel',
        material!.smallKernel.vmlinux,
        '--initrd',
        material!.initramfs,
        '--memory',
        '128M',
        '--append',
        `console=ttyS0 panic=-1 ${testScriptParameter(script)}`,
      ]);
      try {
        const log = await vm.waitFor(/Run \/init as init process/, 20 * MINUTE);
        assertKernelSawTheMachine(log, 1);
        // Kernel-only checks of further devices (network, disks) belong here: they run on every host.

        const skip = guestUserspaceSkipReason();
        if (skip) {
          t.diagnostic(`user space not checked: ${skip}`);
          return;
        }
        const out = await vm.waitFor(/VIREO-TEST-EXIT=\d+/, 5 * MINUTE);
        assert.match(out, /script-ran/);
        assert.match(out, /VIREO-TEST-EXIT=7/);
        const { code } = await vm.exited;
        assert.equal(code, 0);
      } finally {
        await vm.stop();
      }
    },
    { timeout: 25 * MINUTE },
  );
});

/**
 * Why the stock-kernel boots cannot run here, or false. They need guest user space (a shell typed
 * into), which an emulating host cannot run; such a host would also take 30+ minutes to boot the
 * stock kernel (its decompressor and initcalls in the instruction emulator), more than CI has.
 */
function stockKernelSkipReason(): string | false {
  const userspace = guestUserspaceSkipReason();
  if (!userspace) return false;
  return `${userspace}; booting the stock Debian kernel here would also take 30+ minutes`;
}

describe('the stock Debian kernel', {
  skip: slowBootSkipReason() || materialSkipReason() || stockKernelSkipReason(),
}, () => {
  for (const entry of ['bzImage', 'PVH'] as const) {
    bootTest(
      `the stock kernel boots (${entry}) with the test initramfs, runs a typed command and powers off`,
      async () => {
        const kernel = entry === 'bzImage' ? material!.debianKernel.bzImage : material!.debianKernel.vmlinux;
        const vm = startVireo([
          'run',
          '--kernel',
          kernel,
          '--initrd',
          material!.initramfs,
          '--memory',
          '512M',
          '--net',
          'none',
          '--append',
          'console=ttyS0 panic=-1',
        ]);
        try {
          const log = await vm.waitFor(/Run \/init as init process/, 10 * MINUTE);
          assertKernelSawTheMachine(log, 1);
          await vm.waitFor(new RegExp(INIT_READY_MARKER), 5 * MINUTE);
          await vm.waitFor(SHELL_PROMPT, 2 * MINUTE);
          // Typed input reaches the shell through the UART's receive interrupt.
          vm.type('echo vireo-$((6*7)) $(uname -r)\n');
          const out = await vm.waitFor(/vireo-42 \S+/, 2 * MINUTE);
          assert.match(out, new RegExp(`vireo-42 ${material!.debianKernel.release.replaceAll('.', '\\.')}`));
          vm.type('poweroff -f\n');
          const { code } = await vm.exited;
          assert.equal(code, 0, 'a guest poweroff ends vireo run with status 0');
        } finally {
          await vm.stop();
        }
      },
      { timeout: 20 * MINUTE },
    );
  }
});
