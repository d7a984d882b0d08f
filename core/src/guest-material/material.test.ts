// The built guest material is what the manifest says it is. Skipped, with the reason printed,
// when scripts/setup has not built it on this machine.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { guestMaterial, materialSkipReason } from '../../../tests/support/material.js';
import {
  type CpioEntry,
  inspectBzImage,
  listNewcCpio,
  pvhEntryPoint,
  S_IFCHR,
  S_IFMT,
  S_IFREG,
} from './inspect.js';

const skip = materialSkipReason();
const material = guestMaterial();

function repositoryFile(relative: string): string {
  // dist/core/src/guest-material/ -> repository root
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', relative);
}

function contents(archive: Uint8Array, entry: CpioEntry): string {
  return Buffer.from(archive.subarray(entry.dataOffset, entry.dataOffset + entry.size)).toString('utf8');
}

/** A check of the built material; skipped, with the reason, when it has not been built. */
function materialTest(name: string, fn: () => void): void {
  test(name, { skip }, fn);
}

describe('built guest material', () => {
  const m = material!;

  materialTest(
    'both bzImages carry the setup header; the small one is LZ4 so the boot stub decompresses fast',
    () => {
      const small = inspectBzImage(readFileSync(m.smallKernel.bzImage));
      assert.ok(small.protocol >= 0x20c, `small kernel boot protocol ${small.protocol.toString(16)}`);
      const config = readFileSync(m.smallKernel.config, 'utf8');
      if (/^CONFIG_KERNEL_LZ4=y$/m.test(config)) assert.equal(small.payloadCompression, 'lz4');
      const debian = inspectBzImage(readFileSync(m.debianKernel.bzImage));
      assert.ok(debian.protocol >= 0x20c);
      assert.notEqual(debian.payloadCompression, 'unknown');
    },
  );

  materialTest('both vmlinux files are ELF64 with a PVH entry below 4 GiB', () => {
    for (const path of [m.smallKernel.vmlinux, m.debianKernel.vmlinux]) {
      const entry = pvhEntryPoint(readFileSync(path));
      assert.ok(entry !== undefined && entry > 0 && entry < 2 ** 32, `${path}: PVH entry ${entry}`);
    }
  });

  materialTest(
    'the small kernel is configured as the tests need: no modules, virtio and 8250 built in',
    () => {
      const config = readFileSync(m.smallKernel.config, 'utf8');
      for (const symbol of [
        'VIRTIO_PCI',
        'VIRTIO_BLK',
        'VIRTIO_NET',
        'SERIAL_8250_CONSOLE',
        'ACPI',
        'PVH',
        'DEVTMPFS',
      ]) {
        assert.match(config, new RegExp(`^CONFIG_${symbol}=y$`, 'm'), symbol);
      }
      assert.match(config, /^# CONFIG_MODULES is not set$/m);
    },
  );

  materialTest(
    'the initramfs holds /init, busybox, the virtio modules and a modules.dep that lists them',
    () => {
      const archive = readFileSync(m.initramfs);
      const entries = new Map(listNewcCpio(archive).map((e) => [e.name, e]));
      const init = entries.get('init');
      assert.ok(init && (init.mode & S_IFMT) === S_IFREG && init.mode & 0o100, '/init is an executable file');
      assert.equal(
        contents(archive, init),
        readFileSync(repositoryFile('scripts/guest/init'), 'utf8'),
        '/init matches scripts/guest/init (stale material: run scripts/setup)',
      );
      assert.ok((entries.get('bin/busybox')?.size ?? 0) > 500_000, 'busybox (static) is there');
      assert.equal(
        (entries.get('dev/console')?.mode ?? 0) & S_IFMT,
        S_IFCHR,
        '/dev/console exists before devtmpfs',
      );

      const modules = `lib/modules/${m.debianKernel.release}`;
      const dep = entries.get(`${modules}/modules.dep`);
      assert.ok(dep, 'modules.dep');
      const depText = contents(archive, dep);
      for (const name of [
        'virtio',
        'virtio_ring',
        'virtio_pci',
        'virtio_pci_modern_dev',
        'virtio_pci_legacy_dev',
        'virtio_blk',
        'virtio_net',
        'net_failover',
        'failover',
        'virtio_console',
        'virtio-rng',
        'virtio_input',
      ]) {
        const path = [...entries.keys()].find(
          (p) => p.startsWith(`${modules}/`) && p.endsWith(`/${name}.ko`),
        );
        assert.ok(path, `${name}.ko (uncompressed) in the initramfs`);
        assert.match(
          depText,
          new RegExp(`^${path.slice(modules.length + 1)}:`, 'm'),
          `${name} in modules.dep`,
        );
      }
      assert.match(
        depText,
        /virtio_pci\.ko:.*virtio_pci_modern_dev\.ko/,
        'modules.dep has virtio_pci dependencies',
      );
    },
  );

  materialTest('the gzip initramfs is the same archive', () => {
    assert.deepEqual(gunzipSync(readFileSync(m.initramfsGzip)), readFileSync(m.initramfs));
  });
});
