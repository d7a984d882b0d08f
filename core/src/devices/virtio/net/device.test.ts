import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { GuestOffloads, NetBackend, NetBackendEvents } from '../../../net/backend.js';
import { featureBit, VIRTIO_F_VERSION_1 } from '../pci/device.js';
import { activateDevice } from '../pci/test-context.js';
import { VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../queue/ring-layout.js';
import { CTRL_QUEUE, RX_QUEUE, TX_QUEUE, VirtioNet } from './device.js';
import {
  NET_HDR_SIZE,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_TCPV4,
} from './header.js';
import {
  VIRTIO_NET_CTRL_MAC,
  VIRTIO_NET_CTRL_MAC_ADDR_SET,
  VIRTIO_NET_CTRL_MAC_TABLE_SET,
  VIRTIO_NET_CTRL_RX,
  VIRTIO_NET_CTRL_RX_ALLMULTI,
  VIRTIO_NET_CTRL_RX_PROMISC,
  VIRTIO_NET_ERR,
  VIRTIO_NET_OK,
} from './rx-filter.js';

const MAC = Uint8Array.from([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
const BASE = featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_NET_F_MAC) | featureBit(VIRTIO_NET_F_STATUS);
const CTRL = BASE | featureBit(VIRTIO_NET_F_CTRL_VQ) | featureBit(VIRTIO_NET_F_CTRL_RX);

/** A backend the test drives: records what the device sends, injects frames and link changes. */
class RecordingBackend implements NetBackend {
  readonly description = 'test';
  up = true;
  writable = true;
  paused = false;
  offloads: GuestOffloads | undefined;
  closed = false;
  readonly sent: Uint8Array[] = [];
  events!: NetBackendEvents;
  constructor(readonly vnetHeader = false) {}
  start(events: NetBackendEvents): void {
    this.events = events;
  }
  send(pieces: readonly Uint8Array[]): boolean {
    if (!this.up) return false;
    this.sent.push(new Uint8Array(Buffer.concat(pieces)));
    return true;
  }
  pauseReceive(): void {
    this.paused = true;
  }
  resumeReceive(): void {
    this.paused = false;
  }
  setGuestOffloads(offloads: GuestOffloads): void {
    this.offloads = offloads;
  }
  close(): void {
    this.closed = true;
  }
}

/** An Ethernet frame to `dest` with `length` bytes in all, its payload a pattern from `seed`. */
function ethernet(dest: Uint8Array, length: number, seed = 1): Uint8Array {
  const frame = new Uint8Array(length);
  frame.set(dest, 0);
  frame.set([0x02, 0, 0, 0, 0, 0x99], 6);
  frame[12] = 0x08;
  for (let i = 14; i < length; i++) frame[i] = (i * 7 + seed) & 0xff;
  return frame;
}

function header(fields: {
  flags?: number;
  gsoType?: number;
  gsoSize?: number;
  csumStart?: number;
  csumOffset?: number;
}) {
  const bytes = new Uint8Array(NET_HDR_SIZE);
  const v = new DataView(bytes.buffer);
  v.setUint8(0, fields.flags ?? 0);
  v.setUint8(1, fields.gsoType ?? 0);
  v.setUint16(4, fields.gsoSize ?? 0, true);
  v.setUint16(6, fields.csumStart ?? 0, true);
  v.setUint16(8, fields.csumOffset ?? 0, true);
  return bytes;
}

function setup(features = BASE, backend = new RecordingBackend()) {
  const linkEvents: [boolean, string][] = [];
  const device = new VirtioNet({ mac: MAC, backend, onLinkChange: (up, why) => linkEvents.push([up, why]) });
  const h = activateDevice(device, features);
  return {
    device,
    backend,
    h,
    linkEvents,
    rx: h.drivers[RX_QUEUE]!,
    tx: h.drivers[TX_QUEUE]!,
    ctrl: h.drivers[CTRL_QUEUE]!,
  };
}

test('offers offloads only with a backend that carries virtio-net headers', () => {
  const plain = new VirtioNet({ mac: MAC, backend: new RecordingBackend(false) });
  const tap = new VirtioNet({ mac: MAC, backend: new RecordingBackend(true) });
  for (const bit of [VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_HOST_TSO4]) {
    assert.equal(plain.deviceFeatures & featureBit(bit), 0n, `bit ${bit} without headers`);
    assert.notEqual(tap.deviceFeatures & featureBit(bit), 0n, `bit ${bit} with headers`);
  }
  for (const bit of [VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_CTRL_VQ]) {
    assert.notEqual(plain.deviceFeatures & featureBit(bit), 0n);
  }
});

test('config space: MAC and link status', () => {
  const { device, backend } = setup();
  const config = new Uint8Array(10);
  device.readConfig(0, config);
  assert.deepEqual(config.subarray(0, 6), MAC);
  assert.equal(config[6], 1, 'link up');
  backend.events.link(false, 'cable pulled');
  device.readConfig(6, config.subarray(0, 2));
  assert.equal(config[0], 0, 'link down');
});

test('transmit: header checked and stripped for a plain backend, chain completed', () => {
  const { backend, h, tx, device } = setup();
  const frame = ethernet(MAC, 60);
  const added = tx.addChain([header({}), frame.subarray(0, 20), frame.subarray(20)], []);
  device.queueNotify(TX_QUEUE);
  assert.equal(backend.sent.length, 1);
  assert.deepEqual(backend.sent[0], frame);
  assert.deepEqual(tx.takeUsed(), { id: added.head, len: 0 });
  assert.ok(h.interrupts.includes(TX_QUEUE));
  assert.equal(device.metrics.txFrames, 1);
  assert.equal(device.metrics.txBytes, 60);
});

test('transmit: offload requests the driver did not negotiate are refused', () => {
  const { backend, tx, device, h } = setup(BASE, new RecordingBackend(true));
  const frame = ethernet(MAC, 200);
  tx.addChain([header({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: 34, csumOffset: 16 }), frame], []);
  tx.addChain([header({ gsoType: VIRTIO_NET_HDR_GSO_TCPV4, gsoSize: 1448 }), frame], []);
  tx.addChain([header({}), frame], []);
  device.queueNotify(TX_QUEUE);
  assert.equal(backend.sent.length, 1, 'only the plain frame goes out');
  assert.deepEqual(backend.sent[0]!.subarray(NET_HDR_SIZE), frame);
  assert.equal(device.metrics.malformed, 2);
  assert.match(h.logs.join('\n'), /without VIRTIO_NET_F_CSUM/);
  assert.equal(tx.takeUsed()?.len, 0);
  assert.equal(tx.takeUsed()?.len, 0);
  assert.equal(tx.takeUsed()?.len, 0);
});

test('transmit: negotiated checksum and TSO pass through to a header-carrying backend', () => {
  const features = BASE | featureBit(VIRTIO_NET_F_CSUM) | featureBit(VIRTIO_NET_F_HOST_TSO4);
  const { backend, tx, device } = setup(features, new RecordingBackend(true));
  const frame = ethernet(MAC, 3000);
  const hdr = header({
    flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
    gsoType: VIRTIO_NET_HDR_GSO_TCPV4,
    gsoSize: 1448,
    csumStart: 34,
    csumOffset: 16,
  });
  tx.addChain([hdr, frame], []);
  // A checksum offset past the end of the frame is refused even when negotiated.
  tx.addChain(
    [header({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: 60, csumOffset: 16 }), frame.subarray(0, 64)],
    [],
  );
  device.queueNotify(TX_QUEUE);
  assert.equal(backend.sent.length, 1);
  assert.deepEqual(backend.sent[0]!.subarray(0, NET_HDR_SIZE), hdr);
  assert.deepEqual(backend.sent[0]!.subarray(NET_HDR_SIZE), frame);
  assert.equal(device.metrics.malformed, 1);
});

test('transmit: hostile chains fail alone; the device goes on', () => {
  const { backend, tx, device, h } = setup();
  const frame = ethernet(MAC, 64);
  tx.addChain([header({}), frame], [16]); // writable buffer on the transmit queue
  tx.addChain([header({}).subarray(0, 8)], []); // shorter than the header
  tx.addChain([header({}), frame.subarray(0, 10)], []); // runt
  // A descriptor pointing outside guest RAM (4 MiB here).
  tx.writeDescriptor(200, { addr: 0x7fff_0000, len: 100, flags: 0, next: 0 });
  tx.publish(200);
  tx.addChain([header({}), frame], []);
  device.queueNotify(TX_QUEUE);
  assert.equal(backend.sent.length, 1, 'the good frame still goes');
  assert.deepEqual(backend.sent[0], frame);
  const used = [tx.takeUsed(), tx.takeUsed(), tx.takeUsed(), tx.takeUsed(), tx.takeUsed()];
  assert.ok(used.every((u) => u?.len === 0));
  assert.equal(device.metrics.malformed, 3);
  assert.ok(
    h.logs.some((line) => /outside|RAM/i.test(line)),
    h.logs.join('\n'),
  );
  assert.deepEqual(h.needsReset, []);
});

test('transmit: a ring the driver broke stops the device with needs-reset', () => {
  const { tx, device, h } = setup();
  tx.setAvailIdx(1000);
  device.queueNotify(TX_QUEUE);
  assert.equal(h.needsReset.length, 1);
  assert.match(h.needsReset[0]!, /avail/);
});

test('transmit waits while the backend is full and resumes on writable', () => {
  const { backend, tx, device } = setup();
  backend.writable = false;
  tx.addChain([header({}), ethernet(MAC, 60)], []);
  device.queueNotify(TX_QUEUE);
  assert.equal(backend.sent.length, 0);
  assert.equal(tx.takeUsed(), undefined, 'the chain stays with the guest');
  backend.writable = true;
  backend.events.writable();
  assert.equal(backend.sent.length, 1);
  assert.equal(tx.takeUsed()?.len, 0);
});

test('receive without mergeable buffers: one chain per frame, zero header, num_buffers 1', async () => {
  const { backend, rx, h, device } = setup();
  const a = rx.addChain([], [1526]);
  const frame = ethernet(MAC, 100);
  backend.events.frame(frame);
  const used = rx.takeUsed();
  assert.deepEqual(used, { id: a.head, len: NET_HDR_SIZE + 100 });
  const written = rx.memory.read(a.writable[0]!.addr, NET_HDR_SIZE + 100);
  assert.deepEqual(written.subarray(0, 10), new Uint8Array(10));
  assert.equal(written[10], 1);
  assert.deepEqual(written.subarray(NET_HDR_SIZE), frame);
  await Promise.resolve();
  assert.ok(h.interrupts.includes(RX_QUEUE));
  // A frame bigger than the guest's buffer is dropped; the buffer waits for the next frame.
  const b = rx.addChain([], [200]);
  backend.events.frame(ethernet(MAC, 500));
  assert.equal(device.metrics.rxTooBig, 1);
  backend.events.frame(ethernet(MAC, 150, 9));
  assert.deepEqual(rx.takeUsed(), { id: b.head, len: NET_HDR_SIZE + 150 });
});

test('receive with mergeable buffers: a big frame spans chains and num_buffers says how many', () => {
  const { backend, rx } = setup(BASE | featureBit(VIRTIO_NET_F_MRG_RXBUF));
  const chains = [
    rx.addChain([], [1536]),
    rx.addChain([], [1000, 536]),
    rx.addChain([], [1536]),
    rx.addChain([], [1536]),
  ];
  const frame = ethernet(MAC, 4000);
  backend.events.frame(frame);
  const used = [rx.takeUsed(), rx.takeUsed(), rx.takeUsed()];
  assert.equal(rx.takeUsed(), undefined, 'the fourth buffer is not needed');
  assert.deepEqual(
    used.map((u) => u?.id),
    chains.slice(0, 3).map((c) => c.head),
  );
  assert.deepEqual(
    used.map((u) => u?.len),
    [1536, 1536, NET_HDR_SIZE + 4000 - 3072],
  );
  const first = rx.memory.read(chains[0]!.writable[0]!.addr, 1536);
  assert.equal(first[10], 3, 'num_buffers');
  const parts = [
    first.subarray(NET_HDR_SIZE),
    rx.memory.read(chains[1]!.writable[0]!.addr, 1000),
    rx.memory.read(chains[1]!.writable[1]!.addr, 536),
    rx.memory.read(chains[2]!.writable[0]!.addr, NET_HDR_SIZE + 4000 - 3072),
  ];
  assert.deepEqual(Buffer.concat(parts), Buffer.from(frame));
  // The held fourth buffer takes the next frame.
  backend.events.frame(ethernet(MAC, 80));
  assert.deepEqual(rx.takeUsed(), { id: chains[3]!.head, len: NET_HDR_SIZE + 80 });
});

test('receive waits for the guest: no drops, the backend paused and resumed', () => {
  const { backend, rx, device } = setup(BASE | featureBit(VIRTIO_NET_F_MRG_RXBUF));
  const frames = [ethernet(MAC, 3000, 1), ethernet(MAC, 70, 2), ethernet(MAC, 90, 3)];
  for (const frame of frames) backend.events.frame(frame);
  assert.ok(backend.paused, 'backend paused while the guest has no buffers');
  assert.equal(rx.takeUsed(), undefined);
  // One small buffer is not enough for the first (3000-byte) frame: it is held, nothing goes.
  rx.addChain([], [2048]);
  device.queueNotify(RX_QUEUE);
  assert.equal(rx.takeUsed(), undefined);
  assert.ok(backend.paused);
  for (let i = 0; i < 3; i++) rx.addChain([], [2048]);
  device.queueNotify(RX_QUEUE);
  const lengths = [rx.takeUsed(), rx.takeUsed(), rx.takeUsed(), rx.takeUsed()].map((u) => u?.len);
  assert.deepEqual(lengths, [2048, NET_HDR_SIZE + 3000 - 2048, NET_HDR_SIZE + 70, NET_HDR_SIZE + 90]);
  assert.equal(backend.paused, false, 'resumed once everything was delivered');
  assert.equal(device.metrics.rxFrames, 3);
  assert.equal(device.metrics.rxOverflow + device.metrics.rxDroppedInactive, 0);
});

test('receive: hostile buffers are returned empty and the frame takes the next good one', () => {
  const { backend, rx, device, h } = setup();
  const bad = rx.addChain([new Uint8Array(16)], [1526]); // device-readable part on the receive queue
  const tiny = rx.addChain([], [4]); // smaller than the header
  // A descriptor loop: 201 -> 202 -> 201.
  rx.writeDescriptor(201, {
    addr: 0x200000,
    len: 64,
    flags: VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
    next: 202,
  });
  rx.writeDescriptor(202, {
    addr: 0x200100,
    len: 64,
    flags: VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
    next: 201,
  });
  rx.publish(201);
  const good = rx.addChain([], [1526]);
  const frame = ethernet(MAC, 300);
  backend.events.frame(frame);
  assert.deepEqual(rx.takeUsed(), { id: bad.head, len: 0 });
  assert.deepEqual(rx.takeUsed(), { id: tiny.head, len: 0 });
  assert.deepEqual(rx.takeUsed(), { id: 201, len: 0 });
  assert.deepEqual(rx.takeUsed(), { id: good.head, len: NET_HDR_SIZE + 300 });
  assert.equal(device.metrics.malformed, 2);
  assert.ok(h.logs.length >= 3, h.logs.join('\n'));
  assert.deepEqual(h.needsReset, []);
});

test('link down: config interrupt, user event, frames dropped both ways; back up on recovery', () => {
  const { backend, rx, tx, device, h, linkEvents } = setup();
  rx.addChain([], [1526]);
  backend.up = false;
  backend.events.link(false, 'passt exited (SIGKILL)');
  assert.equal(h.configChanges, 1);
  assert.deepEqual(linkEvents, [[false, 'passt exited (SIGKILL)']]);
  assert.equal(device.link, false);
  backend.events.frame(ethernet(MAC, 60));
  assert.equal(rx.takeUsed(), undefined, 'nothing delivered while down');
  tx.addChain([header({}), ethernet(MAC, 60)], []);
  device.queueNotify(TX_QUEUE);
  assert.equal(device.metrics.txDropped, 1);
  assert.equal(tx.takeUsed()?.len, 0, 'the guest gets its transmit buffer back');
  backend.up = true;
  backend.events.link(true, 'passt restarted');
  assert.equal(h.configChanges, 2);
  assert.equal(device.link, true);
  backend.events.frame(ethernet(MAC, 60));
  assert.equal(rx.takeUsed()?.len, NET_HDR_SIZE + 60);
});

/** A control command: class, command, data; returns the ack byte and the used length. */
function control(
  ctrl: ReturnType<typeof setup>['ctrl'],
  device: VirtioNet,
  klass: number,
  command: number,
  data: Uint8Array,
) {
  const added = ctrl.addChain([Uint8Array.of(klass, command), data], [1]);
  device.queueNotify(CTRL_QUEUE);
  const used = ctrl.takeUsed();
  return { ack: ctrl.memory.readU8(added.writable[0]!.addr), len: used?.len };
}

function macTable(...macs: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(4 + 6 * macs.length);
  new DataView(out.buffer).setUint32(0, macs.length, true);
  macs.forEach((mac, i) => {
    out.set(mac, 4 + 6 * i);
  });
  return out;
}

test('control queue: rx mode and MAC table set the receive filter', () => {
  const { backend, rx, ctrl, device } = setup(CTRL);
  const other = Uint8Array.from([0x52, 0x54, 0, 0, 0, 0x77]);
  const multicast = Uint8Array.from([0x33, 0x33, 0, 0, 0, 1]);
  assert.deepEqual(control(ctrl, device, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, Uint8Array.of(0)), {
    ack: VIRTIO_NET_OK,
    len: 1,
  });
  assert.equal(
    control(ctrl, device, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, Uint8Array.of(0)).ack,
    VIRTIO_NET_OK,
  );
  const tables = Buffer.concat([macTable(), macTable(multicast)]);
  assert.equal(
    control(ctrl, device, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, tables).ack,
    VIRTIO_NET_OK,
  );
  for (let i = 0; i < 4; i++) rx.addChain([], [1526]);
  backend.events.frame(ethernet(other, 60)); // someone else's: filtered
  backend.events.frame(ethernet(MAC, 61));
  backend.events.frame(ethernet(new Uint8Array(6).fill(0xff), 62)); // broadcast
  backend.events.frame(ethernet(multicast, 63));
  backend.events.frame(ethernet(Uint8Array.from([0x33, 0x33, 0, 0, 0, 2]), 64)); // not in the table
  const lengths = [rx.takeUsed(), rx.takeUsed(), rx.takeUsed(), rx.takeUsed()].map(
    (u) => u && u.len - NET_HDR_SIZE,
  );
  assert.deepEqual(lengths, [61, 62, 63, undefined]);
  assert.equal(device.metrics.rxFiltered, 2);
  assert.equal(device.state().rxFilter.promiscuous, false);
});

test('control queue: unknown or unnegotiated commands get ERR, short ones fail alone', () => {
  const { ctrl, device, h } = setup(CTRL);
  assert.equal(control(ctrl, device, 9, 0, new Uint8Array(1)).ack, VIRTIO_NET_ERR);
  // MAC_ADDR_SET needs VIRTIO_NET_F_CTRL_MAC_ADDR, not negotiated here.
  assert.equal(
    control(ctrl, device, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, new Uint8Array(6)).ack,
    VIRTIO_NET_ERR,
  );
  // A MAC table that claims more entries than the chain holds.
  const lying = macTable();
  new DataView(lying.buffer).setUint32(0, 5, true);
  assert.equal(
    control(ctrl, device, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, lying).ack,
    VIRTIO_NET_ERR,
  );
  // No writable byte for the ack at all: completed with length 0.
  ctrl.addChain([Uint8Array.of(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, 1)], []);
  device.queueNotify(CTRL_QUEUE);
  assert.equal(ctrl.takeUsed()?.len, 0);
  assert.equal(device.metrics.malformed, 2);
  assert.ok(h.logs.some((line) => /ack/.test(line)));
});

test('control queue: the driver sets a new MAC address', () => {
  const { ctrl, device } = setup(CTRL | featureBit(VIRTIO_NET_F_CTRL_MAC_ADDR));
  const mac = Uint8Array.from([0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]);
  assert.equal(
    control(ctrl, device, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mac).ack,
    VIRTIO_NET_OK,
  );
  assert.equal(device.state().mac, '52:54:00:aa:bb:cc');
  const config = new Uint8Array(6);
  device.readConfig(0, config);
  assert.deepEqual(config, mac);
  assert.equal(
    control(ctrl, device, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, Uint8Array.of(1, 0, 0, 0, 0, 1))
      .ack,
    VIRTIO_NET_ERR,
    'multicast refused',
  );
  device.reset();
  assert.equal(device.state().mac, '52:54:00:12:34:56', 'reset restores the configured MAC');
});

test('a paused VM: frames wait with the backend paused, nothing is sent; resume hands them over', () => {
  const { backend, rx, tx, device } = setup();
  rx.addChain([], [1526]);
  device.pause();
  assert.ok(backend.paused);
  backend.events.frame(ethernet(MAC, 70));
  tx.addChain([header({}), ethernet(MAC, 60)], []);
  device.queueNotify(TX_QUEUE);
  assert.equal(rx.takeUsed(), undefined, 'guest RAM untouched while paused');
  assert.equal(backend.sent.length, 0);
  device.resume();
  assert.equal(rx.takeUsed()?.len, NET_HDR_SIZE + 70);
  assert.equal(backend.sent.length, 1);
  assert.equal(backend.paused, false);
  assert.equal(device.metrics.rxDroppedInactive + device.metrics.rxOverflow, 0);
});

test('guest offloads go to the backend at activation; the backend outlives the device', () => {
  const backend = new RecordingBackend(true);
  const { device } = setup(BASE | featureBit(VIRTIO_NET_F_GUEST_CSUM), backend);
  assert.deepEqual(backend.offloads, { csum: true, tso4: false, tso6: false, ecn: false });
  device.close();
  assert.equal(backend.closed, false, 'the machine closes it, after the last reboot');
});
