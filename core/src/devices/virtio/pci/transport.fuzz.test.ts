// A hostile driver: random config-space and BAR accesses (any offset, size, value), with random
// kicks, against a real device over random RAM. Nothing may throw out of the transport, and the
// device must only ever be stopped with DEVICE_NEEDS_RESET, never crash the host.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { prng } from '../../../../../tests/support/prng.js';
import { GuestMemory } from '../../../memory/guest-memory.js';
import { fillValue } from '../../bus.js';
import { VirtioBlock } from '../block/device.js';
import { VirtioConsole } from '../console/device.js';
import { VirtioRng } from '../rng/device.js';
import type { VirtioDevice } from './device.js';
import { BAR_SIZE, COMMON_OFFSET, NOTIFY_OFFSET, VirtioPciTransport } from './transport.js';

const seed = Number(process.env.VIREO_FUZZ_SEED ?? Date.now() % 1_000_000);
const steps = Number(process.env.VIREO_FUZZ_CASES ?? 20_000);

test(`hostile register traffic never throws (seed ${seed}, ${steps} steps per device)`, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vireo-fuzz-'));
  try {
    const path = join(dir, 'disk.img');
    writeFileSync(path, new Uint8Array(1 << 16));
    const devices: VirtioDevice[] = [
      new VirtioBlock({ path }),
      new VirtioConsole({ onOutput: () => {} }),
      new VirtioRng(),
    ];
    for (const device of devices) {
      const random = prng(seed).next;
      const ram = new Uint8Array(new SharedArrayBuffer(1 << 20));
      for (let i = 0; i < ram.length; i += 4) ram[i] = Math.floor(random() * 256);
      const memory = new GuestMemory([{ gpa: 0, bytes: ram }]);
      const logs: string[] = [];
      const transport = new VirtioPciTransport(device, {
        memory,
        msi: { route: () => {}, trigger: () => {} },
        intx: { set: () => {} },
        log: (m) => logs.push(m),
      });
      const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
      const value = () =>
        pick([0, 1, 0xffff_ffff, Math.floor(random() * 2 ** 32), Math.floor(random() * 0x10000), 15]);
      for (let step = 0; step < steps; step++) {
        const size = pick([1, 2, 4, 8]);
        const data = new Uint8Array(size);
        const r = random();
        if (r < 0.15) {
          transport.config.configWrite(Math.floor(random() * 260), pick([1, 2, 4]), value());
        } else if (r < 0.2) {
          transport.config.configRead(Math.floor(random() * 260), pick([1, 2, 4]));
        } else if (r < 0.6) {
          // Mostly the common config, where the state machine lives.
          const offset = COMMON_OFFSET + Math.floor(random() * 0x40);
          fillValue(data, value());
          transport.barDevice.write(offset, data);
        } else if (r < 0.75) {
          transport.barDevice.read(Math.floor(random() * BAR_SIZE), data);
        } else if (r < 0.9) {
          fillValue(data, value());
          transport.barDevice.write(Math.floor(random() * BAR_SIZE), data);
        } else {
          transport.barDevice.write(NOTIFY_OFFSET + 4 * Math.floor(random() * 3), Uint8Array.of(0, 0));
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
      transport.close();
      assert.ok(
        !logs.some((m) => /handler failed/.test(m)),
        logs.find((m) => /handler failed/.test(m)),
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
