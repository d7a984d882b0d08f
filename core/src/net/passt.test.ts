// The passt backend against the real passt, with the test in the guest's place: it sends the
// Ethernet frames a guest would and reads what passt sends back.

import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { createConnection, createServer } from 'node:net';
import { networkInterfaces } from 'node:os';
import { after, test } from 'node:test';
import { waitFor } from '../devices/virtio/pci/test-context.js';
import type { NetBackendEvents } from './backend.js';
import { parsePortForward } from './config.js';
import { findPasst, PasstBackend, passtArgs } from './passt.js';
import {
  arpRequest,
  dhcpMessage,
  ETHERTYPE_IPV4,
  ethernet,
  IPPROTO_UDP,
  ipBytes,
  ipv4,
  type ParsedFrame,
  parseFrame,
  TCP_SYN,
  udp,
} from './test-frames.js';

const skip = findPasst() ? false : 'passt is not installed (apt install passt)';
const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x0a, 0x0b, 0x0c);

/** A backend's events as a list the test can wait on. */
class Inbox implements NetBackendEvents {
  frames: ParsedFrame[] = [];
  links: [boolean, string][] = [];
  frame(frame: Uint8Array): void {
    this.frames.push(parseFrame(frame));
  }
  link(up: boolean, reason: string): void {
    this.links.push([up, reason]);
  }
  writable(): void {}
  /** Waits for (and removes) the first frame `match` accepts. */
  async take(what: string, match: (f: ParsedFrame) => boolean): Promise<ParsedFrame> {
    return waitFor(
      what,
      () => {
        const index = this.frames.findIndex(match);
        return index < 0 ? undefined : this.frames.splice(index, 1)[0];
      },
      10_000,
    );
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const backends: PasstBackend[] = [];
after(() => {
  for (const backend of backends) backend.close();
});

async function launch(options: Partial<Parameters<typeof PasstBackend.launch>[0]> = {}) {
  const logs: string[] = [];
  const backend = await PasstBackend.launch({ log: (line) => logs.push(line), ...options });
  backends.push(backend);
  const inbox = new Inbox();
  backend.start(inbox);
  return { backend, inbox, logs };
}

/** DHCP as a guest does it: DISCOVER, OFFER, REQUEST, ACK. Returns the lease. */
async function lease(backend: PasstBackend, inbox: Inbox) {
  backend.send([dhcpMessage(GUEST_MAC, 0x1234, 'discover')]);
  const offer = await inbox.take('DHCPOFFER', (f) => f.dhcp?.xid === 0x1234 && f.dhcp.type === 2);
  const server = offer.dhcp!.options.get(54)!;
  backend.send([dhcpMessage(GUEST_MAC, 0x1235, 'request', ipBytes(offer.dhcp!.yiaddr), server)]);
  const ack = await inbox.take('DHCPACK', (f) => f.dhcp?.xid === 0x1235 && f.dhcp.type === 5);
  return { address: ack.dhcp!.yiaddr, router: Array.from(ack.dhcp!.options.get(3)!).join('.'), offer };
}

test('passt command line: socket, one-off, forwards bound where asked', () => {
  const args = passtArgs(3, [parsePortForward('tcp:8080:80'), parsePortForward('udp:0.0.0.0:5353:53')]);
  assert.deepEqual(args.slice(-4), ['--tcp-ports', '127.0.0.1/8080:80', '--udp-ports', '0.0.0.0/5353:53']);
  assert.deepEqual(args.slice(0, 4), ['--foreground', '--one-off', '--fd', '3']);
});

test('a missing passt binary is a clear error', async () => {
  await assert.rejects(
    PasstBackend.launch({ binary: '/nonexistent/passt', log: () => {} }),
    /cannot start .*ENOENT/,
  );
});

test('passt refusing its arguments is reported in its own words', { skip }, async () => {
  const port = await freePort();
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(port, '127.0.0.1', resolve));
  try {
    await assert.rejects(
      PasstBackend.launch({ forwards: [parsePortForward(`tcp:${port}:80`)], log: () => {} }),
      (error: Error) =>
        /passt exited \(status 1\) while starting/.test(error.message) &&
        error.message.includes(String(port)),
    );
  } finally {
    busy.close();
  }
});

test('DHCP lease and ARP from the real passt', { skip }, async () => {
  const { backend, inbox } = await launch();
  assert.equal(backend.up, true);
  const { address, router, offer } = await lease(backend, inbox);
  // passt hands the guest the host's own address (that is how its NAT works).
  const hostAddresses = Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && a.family === 'IPv4' && !a.internal)
    .map((a) => a!.address);
  assert.ok(hostAddresses.includes(address), `${address} is one of ${hostAddresses.join(', ')}`);
  assert.deepEqual(offer.dest.length, 6);
  backend.send([arpRequest(GUEST_MAC, ipBytes(address), ipBytes(router))]);
  const reply = await inbox.take('ARP reply', (f) => f.arp?.op === 2);
  assert.equal(reply.arp!.senderIp, router);
  assert.deepEqual(reply.dest, GUEST_MAC);
});

test('UDP through passt NAT to a server on the host loopback, and back', { skip }, async () => {
  const { backend, inbox } = await launch();
  const { address, router } = await lease(backend, inbox);
  const server = createSocket('udp4');
  await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
  const port = server.address().port;
  const seen: string[] = [];
  server.on('message', (message, from) => {
    seen.push(message.toString());
    server.send(Buffer.from(`echo ${message}`), from.port, from.address);
  });
  try {
    backend.send([arpRequest(GUEST_MAC, ipBytes(address), ipBytes(router))]);
    const arp = await inbox.take('ARP reply', (f) => f.arp?.op === 2);
    const data = new TextEncoder().encode('hello from the guest');
    // The gateway address is the host itself, as seen from the guest.
    const datagram = udp(ipBytes(address), ipBytes(router), 40000, port, data);
    backend.send([
      ethernet(
        arp.arp!.senderMac,
        GUEST_MAC,
        ETHERTYPE_IPV4,
        ipv4(ipBytes(address), ipBytes(router), IPPROTO_UDP, datagram),
      ),
    ]);
    const echo = await inbox.take('UDP reply', (f) => f.udp?.dstPort === 40000);
    assert.deepEqual(seen, ['hello from the guest']);
    assert.equal(new TextDecoder().decode(echo.udp!.data), 'echo hello from the guest');
    assert.equal(echo.ip!.src, router);
    assert.equal(echo.udp!.srcPort, port);
  } finally {
    server.close();
  }
});

test('a port forward: a host client on 127.0.0.1 makes passt send a SYN to the guest port', {
  skip,
}, async () => {
  const hostPort = await freePort();
  const { backend, inbox } = await launch({ forwards: [parsePortForward(`tcp:${hostPort}:8022`)] });
  await lease(backend, inbox);
  const client = createConnection(hostPort, '127.0.0.1');
  client.on('error', () => {}); // the guest never answers; the test only looks at the SYN
  try {
    const syn = await inbox.take(
      'SYN to the guest',
      (f) => f.tcp !== undefined && (f.tcp.flags & TCP_SYN) !== 0,
    );
    assert.equal(syn.tcp!.dstPort, 8022);
    assert.deepEqual(syn.dest, GUEST_MAC);
  } finally {
    client.destroy();
  }
});

test('passt dies: link down with the reason, restarted, link up, frames flow again', { skip }, async () => {
  const { backend, inbox } = await launch({ restartDelayMs: 20 });
  const first = backend.pid!;
  process.kill(first, 'SIGKILL');
  await waitFor('link down', () => inbox.links.find(([up]) => !up), 10_000);
  assert.match(inbox.links[0]![1], /passt exited \(SIGKILL\).*restarting/);
  assert.equal(
    backend.send([arpRequest(GUEST_MAC, ipBytes('10.0.0.2'), ipBytes('10.0.0.1'))]),
    false,
    'dropped while down',
  );
  await waitFor('link up again', () => inbox.links.find(([up]) => up), 10_000);
  assert.notEqual(backend.pid, first);
  assert.equal(backend.up, true);
  await lease(backend, inbox);
});

test('close kills passt', { skip }, async () => {
  const { backend } = await launch();
  const pid = backend.pid!;
  backend.close();
  await waitFor('passt gone', () => {
    try {
      process.kill(pid, 0);
      return undefined;
    } catch {
      return true;
    }
  });
  assert.equal(backend.up, false);
});

// A test frame would never leave unnoticed: UDP counts in the IPv4 header.
test('test frames: IPv4 header checksum verifies', () => {
  const packet = ipv4(ipBytes('10.0.0.1'), ipBytes('10.0.0.2'), IPPROTO_UDP, new Uint8Array(8));
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += (packet[i]! << 8) | packet[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  assert.equal(sum, 0xffff);
});
