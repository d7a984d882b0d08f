// Boots the built guest material under QEMU's software emulator (TCG, no KVM needed): the
// kernels and /init's protocol work on a VMM everyone trusts, so a failing Vireo boot points at
// Vireo. A few seconds each. Skipped, with the reason, without the material or QEMU.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { guestMaterial, materialSkipReason } from '../../../tests/support/material.js';
import {
  initReady,
  parseTestExit,
  TEST_NOT_STARTED_STATUS,
  testDiskImage,
  testDiskParameter,
  testScriptParameter,
} from './test-protocol.js';

const QEMU = 'qemu-system-x86_64';

function qemuSkipReason(): string | false {
  const probe = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
  return probe.status === 0 ? false : `${QEMU} not installed (apt-get install qemu-system-x86)`;
}

const skip = materialSkipReason() || qemuSkipReason();
const material = guestMaterial();

interface QemuBoot {
  kernel: string;
  initrd: string;
  append: string;
  disk?: Uint8Array;
  memoryMiB?: number;
}

/** Boots under TCG with the serial console on stdout; resolves with everything it printed. */
function bootUnderTcg(boot: QemuBoot, timeoutMs = 120_000): Promise<{ output: string; code: number | null }> {
  const dir = mkdtempSync(join(tmpdir(), 'vireo-qemu-'));
  const args = ['-accel', 'tcg', '-m', String(boot.memoryMiB ?? 256), '-no-reboot', '-nodefaults'];
  args.push('-display', 'none', '-serial', 'stdio', '-kernel', boot.kernel, '-initrd', boot.initrd);
  args.push('-append', boot.append);
  if (boot.disk) {
    const path = join(dir, 'disk.img');
    writeFileSync(path, boot.disk);
    args.push('-drive', `file=${path},format=raw,if=virtio`);
  }
  return new Promise((resolve, reject) => {
    const child = spawn(QEMU, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString('latin1');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString('latin1');
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`QEMU did not power off within ${timeoutMs} ms; console:\n${output.slice(-3000)}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      resolve({ output, code });
    });
  });
}

describe('guest material boots under QEMU TCG', () => {
  const m = material!;

  test('small kernel through PVH: marker, script output and its exit status, then poweroff', {
    skip,
  }, async () => {
    const script = 'echo "script says $((6*7))"\ntest -c /dev/ttyS0 || exit 9\nexit 7\n';
    const { output, code } = await bootUnderTcg({
      kernel: m.smallKernel.vmlinux,
      initrd: m.initramfs,
      append: `console=ttyS0 quiet panic=-1 ${testScriptParameter(script)}`,
    });
    assert.equal(code, 0, 'QEMU exits by itself: the guest powered off');
    assert.ok(initReady(output), output);
    assert.match(output, /script says 42/);
    assert.equal(parseTestExit(output), 7, output);
  });

  test('small kernel bzImage with the gzip initramfs runs vireo-test.sh from a tar test disk', {
    skip,
  }, async () => {
    const { output, code } = await bootUnderTcg({
      kernel: m.smallKernel.bzImage,
      initrd: m.initramfsGzip,
      append: `console=ttyS0 quiet panic=-1 ${testDiskParameter('vda')}`,
      disk: testDiskImage({
        'vireo-test.sh':
          'cat data/note.txt\ngrep -q "^virtio" /sys/bus/virtio/devices/*/modalias && echo on-virtio\n',
        'data/note.txt': 'from the test disk\n',
      }),
    });
    assert.equal(code, 0);
    assert.match(output, /from the test disk/);
    assert.match(output, /on-virtio/);
    assert.equal(parseTestExit(output), 0, output);
  });

  test('a test that cannot start reports VIREO-TEST-EXIT=125 and still powers off', { skip }, async () => {
    const { output, code } = await bootUnderTcg({
      kernel: m.smallKernel.vmlinux,
      initrd: m.initramfs,
      append: 'console=ttyS0 quiet panic=-1 vireo.test=!!!',
    });
    assert.equal(code, 0);
    assert.match(output, /vireo-init: vireo.test is not valid base64/);
    assert.equal(parseTestExit(output), TEST_NOT_STARTED_STATUS);
  });

  test('Debian kernel: /init loads the virtio modules with modprobe and the test disk works', {
    skip,
  }, async () => {
    const { output, code } = await bootUnderTcg(
      {
        kernel: m.debianKernel.bzImage,
        initrd: m.initramfs,
        append: `console=ttyS0 quiet panic=-1 ${testDiskParameter('vda')}`,
        disk: testDiskImage({
          'vireo-test.sh': 'cat /proc/modules | cut -d" " -f1 | sort | tr "\\n" ,; echo\n',
        }),
        memoryMiB: 512,
      },
      240_000,
    );
    assert.equal(code, 0);
    assert.doesNotMatch(output, /vireo-init: modprobe/, 'every module loaded');
    assert.match(output, /failover,.*virtio,.*virtio_blk,.*virtio_pci,.*virtio_ring,/);
    assert.equal(parseTestExit(output), 0, output);
  });
});
