// The tap backend with a real tap device, behind the virtio-net device driven by a test driver
// in the guest's place. The test builds its own network namespace: the tap and a veth pair on a
// bridge, the "host" being the namespace's end of the veth with 10.77.0.1. Everything it creates
// is removed afterwards, whatever happened.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { RX_QUEUE, TX_QUEUE, VirtioNet } from '../devices/virtio/net/device.js';
import {
  NET_HDR_SIZE,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
} from '../devices/virtio/net/header.js';
import { featureBit, VIRTIO_F_VERSION_1 } from '../devices/virtio/pci/device.js';
import { activateDevice, type DeviceHarness, waitFor } from '../devices/virtio/pci/test-context.js';
import { TapBackend, TapError } from './tap.js';
import {
  arpRequest,
  ETHERTYPE_IPV4,
  ethernet,
  IPPROTO_UDP,
  ipBytes,
  ipv4,
  type ParsedFrame,
  parseFrame,
  udp,
} from './test-frames.js';

function skipReason(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces and tap devices)';
  try {
    accessSync('/dev/net/tun', constants.R_OK | constants.W_OK);
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'needs /dev/net/tun and iproute2';
  }
  return false;
}
const skip = skipReason();

const NS = `vireo-tap-${process.pid}`;
const TAP = `vtap${process.pid % 100000}`;
const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x77, 0x00, 0x02);
const GUEST_IP = '10.77.0.2';
const HOST_IP = '10.77.0.1';

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function inNs(...args: string[]): void {
  ip('netns', 'exec', NS, ...args);
}

function cleanUp(): void {
  try {
    ip('netns', 'del', NS);
  } catch {}
  if (existsSync(`/sys/class/net/${TAP}`)) ip('link', 'del', TAP);
}

before(() => {
  if (skip) return;
  cleanUp();
  ip('netns', 'add', NS);
  inNs('ip', 'link', 'add', 'br0', 'type', 'bridge');
  inNs('ip', 'link', 'add', 'vhost', 'type', 'veth', 'peer', 'name', 'vport');
  inNs('ip', 'link', 'set', 'vport', 'master', 'br0');
  inNs('ip', 'addr', 'add', `${HOST_IP}/24`, 'dev', 'vhost');
  for (const dev of ['br0', 'vport', 'vhost', 'lo']) inNs('ip', 'link', 'set', dev, 'up');
});
after(() => {
  if (!skip) cleanUp();
});

/** The virtio-net device over the tap, with the test as its guest driver. */
class TestGuest {
  readonly h: DeviceHarness;
  private readonly rxBuffers = new Map<number, number>();
  /** Frames taken from the ring, each with its virtio-net header's flags byte. */
  readonly received: (ParsedFrame & { hdrFlags: number })[] = [];

  constructor(
    readonly device: VirtioNet,
    extraFeatures = 0n,
  ) {
    const features =
      featureBit(VIRTIO_F_VERSION_1) |
      featureBit(VIRTIO_NET_F_MAC) |
      featureBit(VIRTIO_NET_F_STATUS) |
      featureBit(VIRTIO_NET_F_MRG_RXBUF) |
      extraFeatures;
    this.h = activateDevice(device, features);
    this.refill();
  }

  /** Keeps 16 receive buffers with the device. */
  refill(): void {
    const rx = this.h.drivers[RX_QUEUE]!;
    while (this.rxBuffers.size < 16) {
      const added = rx.addChain([], [2048]);
      this.rxBuffers.set(added.head, added.writable[0]!.addr);
    }
    this.device.queueNotify(RX_QUEUE);
  }

  send(frame: Uint8Array, header = new Uint8Array(NET_HDR_SIZE)): void {
    this.h.drivers[TX_QUEUE]!.addChain([header, frame], []);
    this.device.queueNotify(TX_QUEUE);
  }

  /** Waits for a received frame `match` accepts (frames that do not match stay in `received`). */
  take(what: string, match: (f: ParsedFrame) => boolean): Promise<ParsedFrame & { hdrFlags: number }> {
    const rx = this.h.drivers[RX_QUEUE]!;
    return waitFor(
      what,
      () => {
        for (let used = rx.takeUsed(); used; used = rx.takeUsed()) {
          const addr = this.rxBuffers.get(used.id)!;
          this.rxBuffers.delete(used.id);
          const bytes = rx.memory.read(addr, used.len);
          assert.equal(bytes[10], 1, 'one buffer per frame');
          this.received.push({ ...parseFrame(bytes.subarray(NET_HDR_SIZE)), hdrFlags: bytes[0]! });
        }
        this.refill();
        const index = this.received.findIndex(match);
        return index < 0 ? undefined : this.received.splice(index, 1)[0];
      },
      10_000,
    );
  }
}

/** Runs `script` with Node inside the namespace; resolves with its stdout. */
function nodeInNs(script: string): Promise<string> {
  const child = spawn('ip', ['netns', 'exec', NS, process.execPath, '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk) => {
    out += chunk;
  });
  return new Promise((resolve, reject) => {
    child.on('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`node in ${NS} exited with ${code}`)),
    );
  });
}

test('opening something that is not a tap says so', { skip }, () => {
  assert.throws(() => TapBackend.open('lo', { log: () => {} }), TapError);
  assert.throws(() => TapBackend.open('lo', { log: () => {} }), /lo exists and is not a tap device/);
});

test('host and guest exchange ARP and UDP over a tap on a bridge; checksum offload as negotiated; the tap vanishing takes the link down', {
  skip,
}, async () => {
  const logs: string[] = [];
  const backend = TapBackend.open(TAP, { log: (line) => logs.push(line) });
  assert.match(logs.join('\n'), new RegExp(`created tap ${TAP}`));
  const links: [boolean, string][] = [];
  const device = new VirtioNet({ mac: GUEST_MAC, backend, onLinkChange: (up, why) => links.push([up, why]) });
  try {
    // The tap keeps its fd across the move into the namespace, where it joins the bridge.
    ip('link', 'set', TAP, 'netns', NS);
    inNs('ip', 'link', 'set', TAP, 'master', 'br0');
    inNs('ip', 'link', 'set', TAP, 'up');
    // With GUEST_CSUM the tap may hand over datagrams whose checksum is left to the guest.
    let guest = new TestGuest(device, featureBit(VIRTIO_NET_F_GUEST_CSUM));
    assert.equal(device.link, true);

    // Guest -> host: ARP for the host's address, answered through the bridge.
    guest.send(arpRequest(GUEST_MAC, ipBytes(GUEST_IP), ipBytes(HOST_IP)));
    const reply = await guest.take('ARP reply', (f) => f.arp?.op === 2 && f.arp.senderIp === HOST_IP);
    const hostMac = reply.arp!.senderMac;

    // Host -> guest: a UDP datagram (the host learns the guest's MAC from a static entry).
    inNs('ip', 'neigh', 'replace', GUEST_IP, 'lladdr', '52:54:00:77:00:02', 'dev', 'vhost');
    const hostSends = () =>
      nodeInNs(
        `require('dgram').createSocket('udp4').send('hello guest', 7777, '${GUEST_IP}', (e, n, s) => process.exit(e ? 1 : 0))`,
      );
    await hostSends();
    const datagram = await guest.take('UDP from the host', (f) => f.udp?.dstPort === 7777);
    assert.equal(new TextDecoder().decode(datagram.udp!.data), 'hello guest');
    assert.equal(datagram.ip!.src, HOST_IP);
    assert.equal(datagram.hdrFlags, VIRTIO_NET_HDR_F_NEEDS_CSUM, 'the checksum was left to the guest');
    // A driver without GUEST_CSUM: the tap is told (TUNSETOFFLOAD) and completes checksums itself.
    // This one offloads its own transmit checksums (CSUM) instead.
    device.reset();
    guest = new TestGuest(device, featureBit(VIRTIO_NET_F_CSUM));
    await hostSends();
    const complete = await guest.take('UDP from the host again', (f) => f.udp?.dstPort === 7777);
    assert.equal(complete.hdrFlags & VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 'a complete checksum');

    // Guest -> host: a UDP datagram to a listener in the namespace.
    const listener = nodeInNs(
      `const s = require('dgram').createSocket('udp4'); s.on('message', (m) => { process.stdout.write(m); process.exit(0); }); s.bind(7778, '${HOST_IP}', () => process.stdout.write('ready\\n'));`,
    );
    // Send until the listener has bound (its bind races the first datagram).
    let heard: string | undefined;
    void listener.then((out) => {
      heard = out;
    });
    const payload = new TextEncoder().encode('hello host');
    await waitFor(
      'the host to hear the guest',
      () => {
        if (heard !== undefined) return true;
        // A checksum field that is wrong unless the kernel finishes it, as NEEDS_CSUM asks: the
        // datagram arrives only if the header reached the tap.
        const packet = udp(ipBytes(GUEST_IP), ipBytes(HOST_IP), 40000, 7778, payload);
        packet.set([0x12, 0x34], 6);
        const header = new Uint8Array(NET_HDR_SIZE);
        header[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        header[6] = 34; // csum_start: the UDP header
        header[8] = 6; // csum_offset: its checksum field
        guest.send(
          ethernet(
            hostMac,
            GUEST_MAC,
            ETHERTYPE_IPV4,
            ipv4(ipBytes(GUEST_IP), ipBytes(HOST_IP), IPPROTO_UDP, packet),
          ),
          header,
        );
        return undefined;
      },
      10_000,
    );
    assert.match(heard!, /hello host$/);
    assert.ok(device.metrics.txFrames >= 2 && device.metrics.rxFrames >= 2);

    // The tap vanishes: link down with a config interrupt; the device stays usable.
    const configChanges = guest.h.configChanges;
    inNs('ip', 'link', 'del', TAP);
    await waitFor('link down', () => links.find(([up]) => !up), 10_000);
    assert.equal(device.link, false);
    assert.equal(guest.h.configChanges, configChanges + 1);
    assert.match(links[0]![1], /is gone/);
    // It comes back (here, in our namespace): the backend reattaches and the link is up again.
    ip('tuntap', 'add', 'dev', TAP, 'mode', 'tap', 'vnet_hdr');
    await waitFor('link up', () => links.find(([up]) => up), 10_000);
    assert.equal(device.link, true);
    assert.deepEqual(guest.h.needsReset, []);
  } finally {
    device.close();
  }
});
