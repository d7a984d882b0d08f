// The host side of the virtio-net bench guest (bench/guests/virtio-net-bench.c), for the benchmark
// and its test: the UDP peer process (udp-peer.ts), the addresses passt gives a guest here, and
// the guest image with its parameters.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BENCH_BAR_BASE, BENCH_GUEST_RAM } from './bench-guest.js';
import { benchGuest, withParams } from './guest-image.js';

const peerScript = join(dirname(fileURLToPath(import.meta.url)), 'udp-peer.js');

/** UDP payload bytes of the guest's 60- and 1514-byte frames (Ethernet, IPv4 and UDP headers off). */
export const SMALL_PAYLOAD = 60 - 42;
export const LARGE_PAYLOAD = 1514 - 42;

export interface PeerCounts {
  sinkFrames: number;
  sinkBytes: number;
  /** Datagrams by payload size: each phase of the guest sends its own. */
  bySize: Record<number, number>;
  echoed: number;
}

export interface Peer {
  sinkPort: number;
  echoPort: number;
  stop(): Promise<PeerCounts>;
}

function ipNumber(text: string): number {
  return text.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

/** What passt gives a guest here: the host's address on the default route, and its gateway. */
export function passtAddresses(): { guest: string; peer: string } | string {
  const route = readFileSync('/proc/net/route', 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .find((fields) => fields[1] === '00000000');
  if (!route) return 'no default route (passt needs one to take its addresses from)';
  const gatewayHex = route[2]!;
  const peer = [6, 4, 2, 0].map((i) => Number.parseInt(gatewayHex.slice(i, i + 2), 16)).join('.');
  const guest = networkInterfaces()[route[0]!]?.find((a) => a.family === 'IPv4')?.address;
  if (!guest) return `no IPv4 address on ${route[0]}`;
  return { guest, peer };
}

/** The UDP sink and echo server on `address`, inside network namespace `namespace` when given. */
export async function startPeer(address: string, namespace?: string): Promise<Peer> {
  const node = [process.execPath, peerScript, address, '0', '0'];
  const child: ChildProcessWithoutNullStreams = namespace
    ? spawn('ip', ['netns', 'exec', namespace, ...node])
    : spawn(node[0]!, node.slice(1));
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    out += text;
  });
  child.stderr.setEncoding('utf8').on('data', (text: string) => process.stderr.write(`  peer: ${text}`));
  const ports = await new Promise<number[]>((resolve, reject) => {
    child.on('exit', (code) => reject(new Error(`the UDP peer exited (${code}): ${out}`)));
    child.stdout.on('data', () => {
      const match = /^ready (\d+) (\d+)\n/.exec(out);
      if (match) resolve([Number(match[1]), Number(match[2])]);
    });
  });
  return {
    sinkPort: ports[0]!,
    echoPort: ports[1]!,
    stop: () =>
      new Promise((resolve) => {
        child.removeAllListeners('exit');
        child.on('exit', () => resolve(JSON.parse(out.split('\n')[1]!)));
        child.stdin.end();
      }),
  };
}

export interface NetBenchSettings {
  guestIp: string;
  peerIp: string;
  peer: Peer;
  /** Frames of each phase, echo round trips and the echo window (1-64). */
  small: number;
  large: number;
  echo: number;
  window: number;
}

/** The virtio-net bench guest with its parameters (see its header comment). */
export function netBenchGuest(s: NetBenchSettings): Uint8Array {
  return withParams(benchGuest('virtio-net-bench'), [
    BENCH_GUEST_RAM,
    BENCH_BAR_BASE,
    (BigInt(ipNumber(s.guestIp)) << 32n) | BigInt(ipNumber(s.peerIp)),
    (s.peer.sinkPort << 16) | s.peer.echoPort,
    s.small,
    s.large,
    s.echo,
    s.window,
  ]);
}
