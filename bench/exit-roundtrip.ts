// Exit round trip: a guest loop at CPL3 (IOPL 3) doing `out` to a port, N times. What one exit
// costs under Vireo with the port answered in TypeScript on the vCPU's worker (fast path) and
// on the main thread (device path; and with the port declared a posted write), against a C
// KVM_RUN loop with a no-op handler and against
// QEMU running the same guest binary. Each figure is (time with N exits - time with none) / N,
// the median of --repeat runs, so start-up costs cancel out.
//   node dist/bench/exit-roundtrip.js [--exits N] [--repeat R]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createTestVm, HandlerBus, TestPort, testGuest, testGuestDir } from '../core/src/kvm/test-vm.js';
import { VcpuSet } from '../core/src/kvm/vcpu-set.js';
import { kvmSkipReason } from '../tests/support/tags.js';
import { hostProgram, QEMU, qemuImage, qemuUnavailable, run, withParams } from './lib/guest-image.js';
import { type Measurement, median, printFigure } from './lib/report.js';

const { values } = parseArgs({
  options: {
    exits: { type: 'string', default: '50000' },
    repeat: { type: 'string', default: '3' },
  },
});
const exits = Number(values.exits);
const repeat = Number(values.repeat);

/** Nanoseconds for the C loop with n exits (its own clock around the KVM_RUN loop). */
interface RunResult {
  /** Wall-clock nanoseconds of the run. */
  ns: number;
  /** Nanoseconds the vCPU thread spent between KVM_RUN calls, per exit (undefined: not measurable). */
  userPerExit?: number;
}

/** The C loop with n exits (its own clock around the KVM_RUN loop). */
function cBaseline(binary: string, guestPath: string, n: number): RunResult {
  const result = run(binary, [guestPath, String(n)]);
  if (result.status !== 0) throw new Error(`C baseline failed: ${result.stderr.trim()}`);
  const [ns, runs, userNs] = result.stdout.trim().split(' ').map(Number);
  return { ns: ns!, userPerExit: userNs! / runs! };
}

async function vireo(
  guest: Uint8Array,
  n: number,
  path: 'worker' | 'main' | 'posted' | 'posted-lazy',
): Promise<RunResult> {
  const vm = createTestVm({ guest, param: BigInt(n) });
  let set: VcpuSet | undefined;
  const pio = new HandlerBus()
    .on(TestPort.DEBUG_EXIT, {
      write: (data) => set!.requestStop({ reason: 'shutdown', status: data[0]!, message: 'debug exit' }),
    })
    .on(TestPort.BENCH, { write: () => {} });
  set = new VcpuSet({
    vcpus: vm.vcpus,
    pio,
    mmio: new HandlerBus(),
    workerDevices:
      path === 'worker'
        ? {
            module: new URL('../core/src/kvm/fast-path-devices.js', import.meta.url),
            options: { ports: [TestPort.BENCH] },
          }
        : undefined,
    postedWrites:
      path === 'posted' || path === 'posted-lazy'
        ? { pio: [TestPort.BENCH], maxDelayMs: path === 'posted-lazy' ? 1 : 0 }
        : undefined,
  });
  const started = process.hrtime.bigint();
  set.start();
  const stop = await set.done;
  const elapsed = Number(process.hrtime.bigint() - started);
  const runStats = vm.vcpus[0]!.runStats();
  vm.close();
  if (stop.reason !== 'shutdown') throw new Error(`guest did not finish: ${stop.message}`);
  return { ns: elapsed, userPerExit: runStats.userNs / runStats.runs };
}

// -cpu host minus arch-capabilities: emulating hosts (PVM) refuse that MSR and QEMU aborts.
const QEMU_ARGS = ['-accel', 'kvm', '-cpu', 'host,-arch-capabilities', '-M', 'microvm', '-m', '32'];
const QEMU_TAIL = [
  '-nodefaults',
  '-nographic',
  '-no-reboot',
  '-device',
  'isa-debug-exit,iobase=0x501,iosize=1',
];

function qemu(image: string): RunResult {
  const started = process.hrtime.bigint();
  const result = run(QEMU, [...QEMU_ARGS, ...QEMU_TAIL, '-kernel', image]);
  const elapsed = Number(process.hrtime.bigint() - started);
  // isa-debug-exit turns the guest's 0 into exit status (0 << 1) | 1.
  if (result.status !== 1)
    throw new Error(`QEMU exited ${result.status}: ${result.stderr.trim().slice(0, 300)}`);
  return { ns: elapsed };
}

async function main(): Promise<void> {
  const skip = kvmSkipReason();
  if (skip) {
    console.log(`exit-roundtrip: ${skip}`);
    return;
  }
  const guest = testGuest('cpl3-loop');
  const guestPath = join(testGuestDir(), 'cpl3-loop.bin');
  const baseline = hostProgram('exit-roundtrip-baseline');
  const work = mkdtempSync(join(tmpdir(), 'vireo-exit-bench-'));
  const samples = new Map<string, number[]>();
  const failures = new Map<string, string>();
  const add = (name: string, perExit: number) => samples.set(name, [...(samples.get(name) ?? []), perExit]);

  const C = 'C KVM_RUN loop (no-op handler)';
  const FAST = 'Vireo, TS handler on the vCPU worker';
  const MAIN = 'Vireo, TS handler on the main thread';
  const POSTED = 'Vireo, main thread, posted writes';
  const POSTED_LAZY = 'Vireo, main thread, posted, drained every 1 ms';
  const QEMU_ROW = 'QEMU microvm (same guest)';

  let qemuImages: [string, string] | undefined;
  const qemuMissing = qemuUnavailable();
  if (qemuMissing) failures.set(QEMU_ROW, qemuMissing);
  else {
    try {
      qemuImages = [
        qemuImage(withParams(guest, [0]), work, '0'),
        qemuImage(withParams(guest, [exits]), work, String(exits)),
      ];
    } catch (error) {
      failures.set(QEMU_ROW, (error as Error).message);
    }
  }

  console.log(`exit-roundtrip: ${exits} exits per run, ${repeat} runs, guest ${guestPath}`);
  // Interleaved, so a busy moment on a shared machine does not land on one contender only.
  const userSamples = new Map<string, number[]>();
  /** Records (time with n exits - time with none) / n, and the VMM's time per exit with n. */
  const record = (name: string, withExits: RunResult, without: RunResult) => {
    add(name, (withExits.ns - without.ns) / exits);
    if (withExits.userPerExit !== undefined) {
      userSamples.set(name, [...(userSamples.get(name) ?? []), withExits.userPerExit]);
    }
  };
  for (let i = 0; i < repeat; i++) {
    record(C, cBaseline(baseline, guestPath, exits), cBaseline(baseline, guestPath, 0));
    for (const [name, path] of [
      [FAST, 'worker'],
      [MAIN, 'main'],
      [POSTED, 'posted'],
      [POSTED_LAZY, 'posted-lazy'],
    ] as const) {
      record(name, await vireo(guest, exits, path), await vireo(guest, 0, path));
    }
    if (qemuImages && !failures.has(QEMU_ROW)) {
      try {
        record(QEMU_ROW, qemu(qemuImages[1]), qemu(qemuImages[0]));
      } catch (error) {
        failures.set(QEMU_ROW, (error as Error).message);
      }
    }
  }
  rmSync(work, { recursive: true, force: true });

  const rows: Measurement[] = [C, FAST, MAIN, POSTED, POSTED_LAZY, QEMU_ROW].map((name) => ({
    name,
    value: failures.get(name) ?? median(samples.get(name) ?? [Number.NaN]),
  }));
  const ratios = printFigure(
    {
      title: 'Exit round trip (CPL3 `out` loop)',
      unit: 'ns per exit',
      baseline: C,
      better: 'lower',
      digits: 0,
    },
    rows,
  );
  printFigure(
    {
      title: 'VMM time per exit (vCPU thread outside KVM_RUN: the part the VMM adds)',
      unit: 'ns per exit',
      baseline: C,
      better: 'lower',
      digits: 0,
    },
    [C, FAST, MAIN, POSTED, POSTED_LAZY, QEMU_ROW].map((name) => ({
      name,
      value: userSamples.has(name)
        ? median(userSamples.get(name)!)
        : (failures.get(name) ?? 'QEMU is not instrumented; see the round trip above'),
    })),
  );
  const fast = ratios.get(FAST);
  const fastValue = rows.find((r) => r.name === FAST)?.value;
  const qemuValue = rows.find((r) => r.name === QEMU_ROW)?.value;
  const belowQemu =
    typeof qemuValue === 'number' && typeof fastValue === 'number' ? fastValue < qemuValue : undefined;
  console.log(
    `\ntarget: Vireo fast path <= 1.5x C (${fast === undefined ? 'n/a' : `${fast.toFixed(2)}x`}: ${fast !== undefined && fast <= 1.5 ? 'met' : 'NOT met'}), ` +
      `below QEMU (${belowQemu === undefined ? 'n/a' : belowQemu ? 'met' : 'NOT met'})`,
  );
  console.log('samples (ns/exit):');
  for (const [name, values] of samples)
    console.log(`  ${name}: ${values.map((v) => v.toFixed(0)).join(', ')}`);
}

await main();
