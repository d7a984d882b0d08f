// The virtio devices as a real Linux guest uses them, through the real `vireo run`. One boot
// checks what the kernel does by itself (it needs no user space, so it runs on emulating hosts
// too); the user-space checks (a shell's dd, /dev/hwrng, a shell on hvc0) skip where guest user
// space cannot run (see guestUserspaceSkipReason) and run in full on hardware virtualization.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe } from 'node:test';
import { guestMaterial, materialSkipReason } from '../../../tests/support/material.js';
import { bootTest, guestUserspaceSkipReason, slowBootSkipReason } from '../../../tests/support/tags.js';
import { startVireo } from '../../../tests/support/vireo-process.js';
import { parseTestExit, SHELL_PROMPT, testScriptParameter } from '../guest-material/test-protocol.js';

const MINUTE = 60_000;
const material = guestMaterial();
const work = mkdtempSync(join(tmpdir(), 'vireo-linux-devices-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** The fields of an ext4 superblock (at byte 1024 of the image) that a read-write mount changes. */
function ext4Superblock(image: string): { magic: number; mountCount: number; mountTime: number } {
  const block = readFileSync(image).subarray(1024, 2048);
  return {
    magic: block.readUInt16LE(0x38),
    mountCount: block.readUInt16LE(0x34),
    mountTime: block.readUInt32LE(0x2c),
  };
}

function makeExt4Image(path: string, megabytes: number): void {
  writeFileSync(path, Buffer.alloc(0));
  execFileSync('truncate', ['-s', `${megabytes}M`, path]);
  // No journal: fewer emulated kernel instructions at mount; the superblock write is the same.
  execFileSync('mkfs.ext4', ['-q', '-F', '-O', '^has_journal', '-E', 'nodiscard', path]);
}

function hostIPv4Addresses(): string[] {
  return Object.values(networkInterfaces())
    .flatMap((addresses) => addresses ?? [])
    .filter((address) => address.family === 'IPv4' && !address.internal)
    .map((address) => address.address);
}

describe('virtio devices in a Linux guest', { skip: slowBootSkipReason() || materialSkipReason() }, () => {
  bootTest(
    'the kernel takes a DHCP lease from passt over virtio-net and mounts an ext4 root from virtio-blk read-write',
    async () => {
      const root = join(work, 'root.ext4');
      makeExt4Image(root, 16);
      const before = ext4Superblock(root);
      assert.equal(before.magic, 0xef53);
      assert.equal(before.mountCount, 0, 'mkfs leaves the mount count at 0');
      const bootStarted = Math.floor(Date.now() / 1000);
      // No initramfs: the kernel mounts /dev/vda itself. The image has no init, so after the mount
      // the kernel panics ("No working init found") and panic=-1 resets the VM: vireo run ends.
      const vm = startVireo([
        'run',
        '--kernel',
        material!.smallKernel.vmlinux,
        '--memory',
        '128M',
        '--disk',
        root,
        '--net',
        'user',
        '--append',
        // ip=dhcp: the kernel configures eth0 by DHCP itself before it mounts the root.
        'console=ttyS0 panic=-1 ip=dhcp root=/dev/vda rw rootwait',
      ]);
      try {
        const log = await vm.waitFor(/No working init found|VFS: Cannot open root device/, 20 * MINUTE);
        assert.match(log, /virtio_blk virtio\d: \[vda\] 32768 512-byte logical blocks/, 'capacity read');
        assert.match(log, /EXT4-fs \(vda\): mounted filesystem/, 'ext4 read its metadata over virtio-blk');
        assert.match(log, /VFS: Mounted root \(ext4 filesystem\) on device/, 'mounted read-write');
        // passt hands the guest the host's own address (and routes through the host's gateway).
        const leased = /IP-Config: Got DHCP answer from [\d.]+, my address is ([\d.]+)/.exec(log)?.[1];
        assert.ok(leased, 'the kernel got a DHCP answer through virtio-net and passt');
        assert.ok(hostIPv4Addresses().includes(leased), `${leased} is one of the host's addresses`);
        assert.match(log, /IP-Config: Complete:/);
        const { code } = await vm.exited;
        assert.equal(code, 0, 'the panic reset ends vireo run normally');
      } finally {
        await vm.stop();
      }
      const after = ext4Superblock(root);
      assert.equal(after.mountCount, 1, "the guest's superblock write (mount count) is in the image file");
      assert.ok(after.mountTime >= bootStarted - 5, 'the mount time is the guest clock, i.e. the host time');
    },
    { timeout: 25 * MINUTE },
  );

  bootTest(
    'a read-only virtio-blk disk: the kernel is refused a read-write mount, mounts it read-only, its log on hvc0, over INTx',
    async () => {
      const root = join(work, 'readonly-root.ext4');
      makeExt4Image(root, 16);
      const before = createHash('sha256').update(readFileSync(root)).digest('hex');
      // Only console=hvc0: the kernel's lines from the moment virtio-console registers reach the
      // terminal through it. pci=nomsi: both devices interrupt through their level-triggered INTx
      // lines, the IOAPIC model and its EOI exits (the boot above uses MSI-X).
      const vm = startVireo([
        'run',
        '--kernel',
        material!.smallKernel.vmlinux,
        '--memory',
        '128M',
        '--net',
        'none',
        '--disk',
        `${root},readonly`,
        '--console',
        'virtio',
        '--append',
        'console=hvc0 panic=-1 root=/dev/vda rw rootwait pci=nomsi',
      ]);
      try {
        const log = await vm.waitFor(/No working init found|VFS: Cannot open root device/, 20 * MINUTE);
        assert.doesNotMatch(
          log,
          /Linux version /,
          'nothing through the UART (earlier lines are not replayed)',
        );
        assert.match(
          log,
          /virtio_blk virtio\d: \[vda\] 32768 512-byte logical blocks/,
          'kernel lines on hvc0',
        );
        assert.match(log, /\/dev\/root: Can't open blockdev/, 'the read-write open is refused');
        // The kernel asks for a writable block device first, is refused (EACCES), and retries
        // read-only: the read-only feature reached the guest's block layer.
        assert.match(log, /VFS: Mounted root \(ext4 filesystem\) readonly on device/);
        assert.equal((await vm.exited).code, 0);
      } finally {
        await vm.stop();
      }
      const afterwards = createHash('sha256').update(readFileSync(root)).digest('hex');
      assert.equal(afterwards, before, 'the read-only image is byte for byte unchanged');
    },
    { timeout: 25 * MINUTE },
  );

  const userspace = guestUserspaceSkipReason();

  bootTest(
    'a shell in the guest writes a pattern to /dev/vda, is refused writes to a read-only vdb, and reads /dev/hwrng',
    async (t) => {
      if (userspace) return t.skip(userspace);
      const disk = join(work, 'data.img');
      const readOnly = join(work, 'readonly.img');
      execFileSync('truncate', ['-s', '4M', disk]);
      writeFileSync(readOnly, Buffer.alloc(1 << 20, 0x5a));
      // 64 KiB at 1 MiB into vda: each byte is (offset % 251), which the guest builds with awk.
      const script = [
        'set -e',
        'awk \'BEGIN { for (i = 0; i < 65536; i++) printf "%c", i % 251 }\' > /tmp/pattern',
        'dd if=/tmp/pattern of=/dev/vda bs=4096 seek=256 conv=fsync 2>/dev/null',
        'echo 3 > /proc/sys/vm/drop_caches',
        'dd if=/dev/vda bs=4096 skip=256 count=16 2>/dev/null | cmp - /tmp/pattern && echo readback-ok',
        'if dd if=/tmp/pattern of=/dev/vdb bs=4096 count=1 conv=fsync 2>/dev/null; then echo vdb-wrote; else echo vdb-refused; fi',
        'test "$(cat /sys/block/vdb/ro)" = 1 && echo vdb-ro',
        'test "$(dd if=/dev/hwrng bs=32 count=1 2>/dev/null | wc -c)" = 32 && echo hwrng-ok',
        'exit 0',
      ].join('\n');
      const vm = startVireo([
        'run',
        '--kernel',
        material!.smallKernel.vmlinux,
        '--initrd',
        material!.initramfs,
        '--memory',
        '128M',
        '--disk',
        disk,
        '--disk',
        `${readOnly},readonly`,
        '--append',
        `console=ttyS0 panic=-1 ${testScriptParameter(script)}`,
      ]);
      try {
        const out = await vm.waitFor(/VIREO-TEST-EXIT=\d+/, 20 * MINUTE);
        assert.equal(parseTestExit(out), 0, out.slice(-2000));
        assert.match(out, /readback-ok/);
        assert.match(out, /vdb-refused/);
        assert.match(out, /vdb-ro/);
        assert.match(out, /hwrng-ok/);
        assert.equal((await vm.exited).code, 0);
      } finally {
        await vm.stop();
      }
      const written = readFileSync(disk).subarray(1 << 20, (1 << 20) + 65536);
      for (let i = 0; i < written.length; i++) {
        if (written[i] !== i % 251)
          assert.fail(`byte ${i} of the pattern is ${written[i]} in the image file`);
      }
      assert.ok(
        readFileSync(readOnly).every((byte) => byte === 0x5a),
        'the read-only image is unchanged',
      );
    },
    { timeout: 25 * MINUTE },
  );

  bootTest(
    'with --console virtio the shell runs on hvc0 and typed commands reach it',
    async (t) => {
      if (userspace) return t.skip(userspace);
      const vm = startVireo([
        'run',
        '--kernel',
        material!.smallKernel.vmlinux,
        '--initrd',
        material!.initramfs,
        '--memory',
        '128M',
        '--console',
        'virtio',
      ]);
      try {
        await vm.waitFor(SHELL_PROMPT, 20 * MINUTE);
        vm.type('echo tty=$(tty) sum=$((40+2))\n');
        await vm.waitFor(/tty=\/dev\/hvc0 sum=42/, 2 * MINUTE);
        vm.type('poweroff -f\n');
        assert.equal((await vm.exited).code, 0);
      } finally {
        await vm.stop();
      }
    },
    { timeout: 25 * MINUTE },
  );
});
