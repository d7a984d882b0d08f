// virtio-net through device and backend: a polling CPL3 guest driver (bench/guests/
// virtio-net-bench.c) sends UDP to a host peer (bench/lib/udp-peer.ts: a sink and an echo
// server) and times each phase; the same guest runs under Vireo and under QEMU's virtio-net-pci
// with the same backend, side by side in one run:
//   passt: Vireo's PasstBackend, and QEMU's `-netdev stream` to a passt started the same way;
//          the guest talks to passt's gateway address, which passt maps to the host's loopback.
//   tap:   a tap with vnet headers in a network namespace made for the run (10.78.0.1 on the
//          tap, the peer bound there); Vireo's TapBackend, QEMU's `-netdev tap,fd=` (vhost off:
//          the device model in user space on both sides).
// Figures: 60-byte frames per second and 1514-byte-frame throughput from the guest (a frame counts
// when the device has completed it), the same for what reached the host peer (a backend or the
// host may drop datagrams: UDP), and echo round trips per second with a window in flight. Ratios
// are against QEMU.
//
// Run (root for the tap part): node dist/bench/virtio-net.js [--small 200000] [--large 100000]
//   [--echo 20000] [--window 16] [--repeat 1] [--echo-guest]
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { NetBackend } from '../core/src/net/backend.js';
import { macBytes } from '../core/src/net/mac.js';
import { netAddon } from '../core/src/net/native-net.js';
import { findPasst, PasstBackend } from '../core/src/net/passt.js';
import { TapBackend } from '../core/src/net/tap.js';
import { kvmSkipReason } from '../tests/support/tags.js';
import { describeFailure, type GuestRun, phases, runInQemu, runInVireo } from './lib/bench-guest.js';
import { qemuImage, qemuUnavailable } from './lib/guest-image.js';
import {
  LARGE_PAYLOAD,
  netBenchGuest,
  type Peer,
  type PeerCounts,
  passtAddresses,
  SMALL_PAYLOAD,
  startPeer,
} from './lib/net-peer.js';
import { medianRow, printFigure } from './lib/report.js';

const { values } = parseArgs({
  options: {
    small: { type: 'string', default: '200000' },
    large: { type: 'string', default: '100000' },
    echo: { type: 'string', default: '20000' },
    window: { type: 'string', default: '16' },
    repeat: { type: 'string', default: '1' },
    'echo-guest': { type: 'boolean', default: false },
  },
});
const SMALL = Number(values.small);
const LARGE = Number(values.large);
const ECHO = Number(values.echo);
const WINDOW = Number(values.window);
const REPEAT = Number(values.repeat);
const TIMEOUT_MS = 300_000;
const MIB = 1024 * 1024;
const MAC = '52:54:00:12:34:56';
const NS = `vireo-bench-net-${process.pid}`;
const TAP = `vbtap${process.pid % 100000}`;
const TAP_PEER = '10.78.0.1';
const TAP_GUEST = '10.78.0.2';

interface Rates {
  smallPps: number | string;
  largeMibps: number | string;
  /** What reached the host peer, per second of the phase. */
  smallDeliveredPps: number | string;
  largeDeliveredMibps: number | string;
  echoPerSecond: number | string;
  note: string;
}

function guestFor(guestIp: string, peerIp: string, peer: Peer): Uint8Array {
  return netBenchGuest({ guestIp, peerIp, peer, small: SMALL, large: LARGE, echo: ECHO, window: WINDOW });
}

/**
 * The guest's TSC rate, from the TSC values on its phase lines against when they arrived: over the
 * whole run, so a line that reaches the harness late (QEMU's debugcon, a busy host) barely matters.
 */
function tscHz(run: GuestRun): number | undefined {
  const marks = run.lines.flatMap((line) => {
    const match = /^(?:begin|end) \S+ .*\btsc=(\d+)/.exec(line.text);
    return match ? [{ tsc: Number(match[1]), at: line.at }] : [];
  });
  const first = marks[0];
  const last = marks.at(-1);
  if (!first || !last || last.at - first.at < 100) return undefined;
  return (last.tsc - first.tsc) / ((last.at - first.at) / 1000);
}

function rates(run: GuestRun, counts: PeerCounts): Rates {
  if (run.error || run.status !== 0) {
    const why = describeFailure(run);
    return {
      smallPps: why,
      largeMibps: why,
      smallDeliveredPps: why,
      largeDeliveredMibps: why,
      echoPerSecond: why,
      note: '',
    };
  }
  const found = phases(run);
  const hz = tscHz(run);
  const per = (name: string, pick: (frames: number, bytes: number, seconds: number) => number) => {
    const phase = found.get(name);
    if (!phase) return 'the guest did not report this phase';
    if (!hz) return 'the run was too short to time (raise the counts)';
    const seconds = Number(phase.fields.get('cycles')) / hz;
    return pick(Number(phase.fields.get('frames')), Number(phase.fields.get('bytes')), seconds);
  };
  const echo = found.get('echo');
  return {
    smallPps: per('tx-small', (frames, _b, s) => frames / s),
    largeMibps: per('tx-large', (_f, bytes, s) => bytes / MIB / s),
    smallDeliveredPps: per('tx-small', (_f, _b, s) => (counts.bySize[SMALL_PAYLOAD] ?? 0) / s),
    largeDeliveredMibps: per(
      'tx-large',
      (_f, _b, s) => ((counts.bySize[LARGE_PAYLOAD] ?? 0) * 1514) / MIB / s,
    ),
    echoPerSecond: per('echo', (frames, _b, s) => frames / s),
    note: `peer got ${counts.sinkFrames}/${SMALL + LARGE} datagrams, echoed ${counts.echoed}; echo lost ${echo?.fields.get('lost') ?? '?'}`,
  };
}

const echo = values['echo-guest'];

async function vireoRun(guest: Uint8Array, backend: NetBackend): Promise<GuestRun> {
  try {
    return await runInVireo(
      guest,
      { network: { backend, mac: macBytes(MAC) } },
      { timeoutMs: TIMEOUT_MS, echo },
    );
  } finally {
    backend.close();
  }
}

const device = `virtio-net-pci,netdev=n0,disable-legacy=on,romfile=,mac=${MAC}`;

async function passtRuns(work: string, add: (name: string, r: Rates) => void, qemu: boolean): Promise<void> {
  const addresses = passtAddresses();
  if (typeof addresses === 'string') throw new Error(addresses);
  {
    const peer = await startPeer('127.0.0.1');
    const guest = guestFor(addresses.guest, addresses.peer, peer);
    const run = await vireoRun(
      guest,
      await PasstBackend.launch({ log: (line) => console.error(`  vireo: ${line}`) }),
    );
    add('Vireo + passt', rates(run, await peer.stop()));
  }
  if (!qemu) return;
  const peer = await startPeer('127.0.0.1');
  const guest = guestFor(addresses.guest, addresses.peer, peer);
  // Started as root, passt binds its socket as nobody: in /tmp itself, not in a private directory.
  const socket = join(tmpdir(), `vireo-bench-passt-${process.pid}.socket`);
  const passt = spawn(findPasst()!, ['--foreground', '--one-off', '--socket', socket], { stdio: 'ignore' });
  try {
    while (!existsSync(socket)) {
      if (passt.exitCode !== null) throw new Error(`passt for QEMU exited (${passt.exitCode})`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const run = await runInQemu(
      qemuImage(guest, work, 'virtio-net-passt'),
      ['-netdev', `stream,id=n0,server=off,addr.type=unix,addr.path=${socket}`, '-device', device],
      { timeoutMs: TIMEOUT_MS, echo },
    );
    add('QEMU + passt', rates(run, await peer.stop()));
  } finally {
    passt.kill('SIGKILL');
    rmSync(socket, { force: true });
  }
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Moves the tap (open in this process) into the bench namespace and gives it the peer address. */
function plugTap(): void {
  ip('link', 'set', TAP, 'netns', NS);
  ip('netns', 'exec', NS, 'ip', 'addr', 'add', `${TAP_PEER}/24`, 'dev', TAP);
  ip('netns', 'exec', NS, 'ip', 'link', 'set', TAP, 'up');
}

async function tapRuns(work: string, add: (name: string, r: Rates) => void, qemu: boolean): Promise<void> {
  {
    const backend = TapBackend.open(TAP, { log: () => {} });
    plugTap();
    const peer = await startPeer(TAP_PEER, NS);
    const run = await vireoRun(guestFor(TAP_GUEST, TAP_PEER, peer), backend);
    add('Vireo + tap', rates(run, await peer.stop()));
  }
  if (!qemu) return;
  const addon = netAddon();
  const { fd } = addon.tapOpen(TAP, addon.IFF_TAP | addon.IFF_NO_PI | addon.IFF_VNET_HDR);
  try {
    plugTap();
    const peer = await startPeer(TAP_PEER, NS);
    const run = await runInQemu(
      qemuImage(guestFor(TAP_GUEST, TAP_PEER, peer), work, 'virtio-net-tap'),
      ['-netdev', 'tap,id=n0,fd=3,vhost=off', '-device', device],
      { timeoutMs: TIMEOUT_MS, echo, fds: [fd] },
    );
    add('QEMU + tap', rates(run, await peer.stop()));
  } finally {
    closeSync(fd);
  }
}

function tapSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (a network namespace and a tap device)';
  if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun';
  return undefined;
}

async function main(): Promise<void> {
  const skip = kvmSkipReason();
  if (skip) {
    console.log(`virtio-net: ${skip}`);
    return;
  }
  const qemuMissing = qemuUnavailable();
  const passtMissing = findPasst() ? undefined : 'passt is not installed (apt install passt)';
  const tapMissing = tapSkipReason();
  const work = mkdtempSync(join(tmpdir(), 'vireo-bench-net-'));
  const samples = new Map<string, Rates[]>();
  const add = (name: string, r: Rates) => {
    samples.set(name, [...(samples.get(name) ?? []), r]);
    if (r.note) console.log(`  ${name}: ${r.note}`);
  };
  console.log(
    `virtio-net: ${SMALL} 60-byte and ${LARGE} 1514-byte UDP frames from the guest, ${ECHO} echo round trips ` +
      `(window ${WINDOW}); ${REPEAT} run(s), medians`,
  );
  if (!tapMissing) {
    ip('netns', 'add', NS);
    // Ctrl-C must not leave the namespace behind (the finally below does not run then).
    process.once('SIGINT', () => {
      ip('netns', 'del', NS);
      process.exit(130);
    });
  }
  try {
    for (let i = 0; i < REPEAT; i++) {
      if (!passtMissing) await passtRuns(work, add, !qemuMissing);
      if (!tapMissing) await tapRuns(work, add, !qemuMissing);
    }
  } finally {
    if (!tapMissing) ip('netns', 'del', NS);
    rmSync(work, { recursive: true, force: true });
  }

  const row = (name: string, pick: (r: Rates) => number | string, absent: string | undefined) =>
    medianRow(name, samples.get(name), pick, absent);
  const figures: [string, string, (r: Rates) => number | string, number][] = [
    ['60-byte UDP frames, guest to host', 'frames/s', (r) => r.smallPps, 0],
    ['1514-byte UDP frames, guest to host', 'MiB/s', (r) => r.largeMibps, 1],
    ['60-byte UDP frames that reached the host peer', 'frames/s', (r) => r.smallDeliveredPps, 0],
    ['1514-byte UDP frames that reached the host peer', 'MiB/s', (r) => r.largeDeliveredMibps, 1],
    [`UDP echo round trips, window ${WINDOW}`, 'round trips/s', (r) => r.echoPerSecond, 0],
  ];
  for (const [backend, missing] of [
    ['passt', passtMissing],
    ['tap', tapMissing],
  ] as const) {
    for (const [title, unit, pick, digits] of figures) {
      const qemuRow = `QEMU + ${backend}`;
      printFigure({ title: `${title} (${backend})`, unit, baseline: qemuRow, better: 'higher', digits }, [
        row(`Vireo + ${backend}`, pick, missing),
        row(qemuRow, pick, missing ?? qemuMissing),
      ]);
    }
  }
}

await main();
