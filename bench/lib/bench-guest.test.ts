// The benchmark guest as a test of the whole virtio-blk path under Vireo: a CPL3 driver finds
// the device over 0xCF8, negotiates, sets up its queue, kicks through the ioeventfd, and every
// request it makes must complete with the image's own bytes. Nothing here is timed.
import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kvmTest } from '../../tests/support/tags.js';
import { BENCH_BAR_BASE, BENCH_GUEST_RAM, phases, runInVireo } from './bench-guest.js';
import { benchGuest, withParams } from './guest-image.js';

const MIB = 1024 * 1024;

kvmTest(
  'the virtio-blk bench guest reads an image through Vireo: all requests succeed with its bytes',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vireo-bench-guest-'));
    try {
      const path = join(dir, 'disk.img');
      const image = new Uint8Array(8 * MIB);
      randomFillSync(image);
      writeFileSync(path, image);
      // 2000 random reads 8 deep, then 12 MiB sequentially (1.5 passes) 4 deep.
      const guest = withParams(benchGuest('virtio-blk-bench'), [
        BENCH_GUEST_RAM,
        BENCH_BAR_BASE,
        2000,
        8,
        12 * MIB,
        4,
        7,
      ]);
      for (const direct of [false, true]) {
        const run = await runInVireo(
          guest,
          { disks: [{ path, readOnly: true, direct }] },
          { timeoutMs: 120_000 },
        );
        assert.equal(run.error, undefined);
        assert.equal(run.status, 0, run.lines.map((l) => l.text).join('\n'));
        const found = phases(run);
        const random = found.get('random-4k')!;
        assert.equal(random.fields.get('ios'), 2000n);
        assert.equal(random.fields.get('errors'), 0n);
        const sequential = found.get('sequential-1m')!;
        assert.equal(sequential.fields.get('ios'), 12n);
        assert.equal(sequential.fields.get('errors'), 0n);
        const file = readFileSync(path);
        let sum = 0n;
        for (let i = 0; i < 12; i++) sum += file.readBigUInt64LE((i % 8) * MIB);
        assert.equal(
          sequential.fields.get('sum'),
          sum & 0xffff_ffff_ffff_ffffn,
          'the bytes the guest saw are the image',
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
