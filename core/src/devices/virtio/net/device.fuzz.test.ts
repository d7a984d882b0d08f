// virtio-net against a hostile driver: random descriptors (bad addresses and lengths, loops,
// indirect tables, wrong directions), random avail indices and control commands, with frames
// arriving from the backend in between. The device must never throw, must only complete heads
// the driver published, and must hand the backend only frames of a sane size.
// Reproduce a failure with the seed it prints: VIREO_FUZZ_SEED=<seed> VIREO_FUZZ_CASES=1.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fuzzSettings, type Prng, prng } from '../../../../../tests/support/prng.js';
import type { NetBackend, NetBackendEvents } from '../../../net/backend.js';
import { featureBit, VIRTIO_F_VERSION_1 } from '../pci/device.js';
import { activateDevice } from '../pci/test-context.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../queue/ring-layout.js';
import type { TestDriver } from '../queue/test-driver.js';
import { MAX_FRAME, VirtioNet } from './device.js';
import {
  ETH_HLEN,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_MRG_RXBUF,
} from './header.js';

const { seed: BASE_SEED, cases: CASES } = fuzzSettings(400);
const RAM = 4 << 20;

class SinkBackend implements NetBackend {
  readonly description = 'fuzz';
  readonly up = true;
  readonly writable = true;
  sent: number[] = [];
  events!: NetBackendEvents;
  constructor(readonly vnetHeader: boolean) {}
  start(events: NetBackendEvents): void {
    this.events = events;
  }
  send(pieces: readonly Uint8Array[]): boolean {
    this.sent.push(pieces.reduce((n, p) => n + p.length, 0));
    return true;
  }
  pauseReceive(): void {}
  resumeReceive(): void {}
  close(): void {}
}

/**
 * An address: mostly inside the driver's buffer area, sometimes at or past the end of RAM. Never
 * over the rings: a driver that hands the device its own rings as receive buffers gets them
 * overwritten, as it asked, and the used ring then says nothing this test could check.
 */
function address(r: Prng): number {
  if (r.chance(0.8)) return 0x100000 + r.int(0x300000);
  return r.pick([RAM - 8, RAM, 0xfee0_0000, 2 ** 40, 2 ** 53 - 1]);
}

function length(r: Prng): number {
  return r.pick([0, 1, 11, 12, 13, 60, 1514, 1526, 4096, 65_550, 0xffff_ffff, r.int(3000)]);
}

/** A random chain of raw descriptors in `driver`'s table (or a valid one now and then). */
function hostileChain(r: Prng, driver: TestDriver, size: number): number {
  if (r.chance(0.3)) {
    const readable = r.chance(0.5) ? [new Uint8Array(r.int(80))] : [];
    const writable = readable.length === 0 || r.chance(0.7) ? [r.int(2000) + 1] : [];
    return driver.addChain(readable, writable, { publish: false }).head;
  }
  const head = r.int(size);
  let index = head;
  for (let n = r.int(4) + 1; n > 0; n--) {
    const next = r.int(size);
    let flags = r.pick([0, VIRTQ_DESC_F_WRITE]) | (n > 1 ? VIRTQ_DESC_F_NEXT : 0);
    if (r.chance(0.1)) flags |= VIRTQ_DESC_F_INDIRECT;
    if (r.chance(0.05)) flags = r.int(0x10000);
    driver.writeDescriptor(index, { addr: address(r), len: length(r), flags, next });
    index = next;
  }
  return head;
}

test(`virtio-net survives hostile drivers (seed ${BASE_SEED}, ${CASES} cases)`, () => {
  const reached = { malformed: 0, txFrames: 0, rxFrames: 0, controlCommands: 0, needsReset: 0 };
  for (let c = 0; c < CASES; c++) {
    const seed = (BASE_SEED + c) >>> 0;
    const r = prng(seed);
    const backend = new SinkBackend(r.chance(0.5));
    let features =
      featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_NET_F_CTRL_VQ) | featureBit(VIRTIO_NET_F_CTRL_RX);
    if (r.chance(0.5)) features |= featureBit(VIRTIO_NET_F_MRG_RXBUF);
    if (backend.vnetHeader && r.chance(0.5))
      features |= featureBit(VIRTIO_NET_F_CSUM) | featureBit(VIRTIO_NET_F_HOST_TSO4);
    const device = new VirtioNet({ mac: Uint8Array.of(0x52, 0x54, 0, 1, 2, 3), backend });
    try {
      const h = activateDevice(device, features);
      // Heads the driver published; undefined once it moved avail.idx over slots it never filled.
      const published: (Set<number> | undefined)[] = h.drivers.map(() => new Set<number>());
      for (let step = 0; step < 40; step++) {
        const queue = r.int(3);
        const driver = h.drivers[queue]!;
        const size = h.queues[queue]!.size;
        if (r.chance(0.03)) {
          driver.setAvailIdx(driver.availIndex + r.int(0x10000));
          published[queue] = undefined;
        } else {
          for (let n = r.int(4) + 1; n > 0; n--) {
            const head = hostileChain(r, driver, size);
            published[queue]?.add(head);
            driver.publish(head);
          }
        }
        if (r.chance(0.5)) {
          const frame = new Uint8Array(r.pick([0, 6, ETH_HLEN, 60, 1514, 9000, MAX_FRAME + 20]));
          if (frame.length >= 6) frame[0] = r.pick([0x52, 0xff, 0x33]);
          backend.events.frame(frame);
        }
        device.queueNotify(queue);
      }
      h.drivers.forEach((driver, queue) => {
        for (let used = driver.takeUsed(); used; used = driver.takeUsed()) {
          assert.ok(
            used.id < h.queues[queue]!.size && (published[queue]?.has(used.id) ?? true),
            `queue ${queue} completed head ${used.id}, never published`,
          );
        }
      });
      for (const n of backend.sent) {
        const frame = n - (backend.vnetHeader ? 12 : 0);
        assert.ok(frame >= ETH_HLEN && frame <= MAX_FRAME, `a ${frame}-byte frame reached the backend`);
      }
      reached.malformed += device.metrics.malformed;
      reached.txFrames += device.metrics.txFrames;
      reached.rxFrames += device.metrics.rxFrames;
      reached.controlCommands += device.metrics.controlCommands;
      reached.needsReset += h.needsReset.length;
    } catch (error) {
      assert.fail(
        `case seed ${seed} (rerun: VIREO_FUZZ_SEED=${seed} VIREO_FUZZ_CASES=1): ${(error as Error).stack}`,
      );
    } finally {
      device.close();
    }
  }
  // The fuzzer must reach every path, or it proves nothing.
  if (CASES >= 100)
    for (const [what, n] of Object.entries(reached)) assert.ok(n > 0, `no case reached ${what}`);
});
