// Start-up and memory of a VM process, Vireo against QEMU, with the same tiny PVH guest, which
// powers off through the ACPI PM1a control port (QEMU gets an isa-debug-exit device there):
// - to first instruction: process start to the guest's first byte on the serial console;
// - to exit: process start to process exit, for a guest that powers off at once;
// - resident memory: the VM process's RSS with the guest halted (the guest touches a few pages,
//   so this is the VMM's own footprint).
// A third row, Node.js running an empty script, is the floor any VMM written for Node starts from.
// The children get this process's environment without NODE_EXTRA_CA_CERTS: when it is set (CI
// proxies set it), Node reads and parses that certificate bundle before running any script,
// ~35 ms here, which no VM needs and a desktop session does not pay.
// Run: node dist/bench/startup.js [--runs 10]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ACPI_POWER_OFF, buildPvhGuest, HALT_FOREVER, serialWrite } from '../tests/support/pvh-guest.js';
import { median, printFigure } from './lib/report.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values } = parseArgs({ options: { runs: { type: 'string', default: '10' } } });
const runs = Number(values.runs);
const MEMORY = '64M';
const NODE_ALONE = 'Node.js, empty script';

function buildGuest(work: string, haltForever: boolean): string {
  const name = haltForever ? 'halt' : 'poweroff';
  // The first instruction writes 'V' to COM1 so the host sees when the guest started.
  const body = [serialWrite('V'), haltForever ? '' : ACPI_POWER_OFF, HALT_FOREVER].join('\n');
  return buildPvhGuest(work, name, body);
}

interface Launch {
  command: string;
  args: string[];
}

const { NODE_EXTRA_CA_CERTS: extraCaCerts, ...childEnv } = process.env;

/** What Node costs before it runs a line of Vireo: start and exit with an empty script. */
function nodeAlone(): Launch {
  return { command: process.execPath, args: ['-e', 'process.stdout.write("V")'] };
}

function vireo(elf: string): Launch {
  return {
    command: process.execPath,
    // No network card, as QEMU's -nodefaults machine has none.
    args: [join(root, 'bin', 'vireo'), 'run', '--kernel', elf, '--memory', MEMORY, '--net', 'none'],
  };
}

function qemu(elf: string): Launch {
  return {
    command: 'qemu-system-x86_64',
    args: [
      ...['-M', 'microvm,x-option-roms=off,rtc=off,pic=on,pit=on,isa-serial=on', '-accel', 'kvm'],
      ...['-cpu', 'host,-arch-capabilities', '-m', MEMORY, '-nodefaults', '-no-user-config'],
      ...['-display', 'none', '-serial', 'stdio', '-kernel', elf],
      ...['-device', 'isa-debug-exit,iobase=0x604,iosize=2'],
    ],
  };
}

interface Timing {
  firstInstructionMs: number;
  exitMs: number;
}

function timeRun(launch: Launch): Promise<Timing> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const elapsed = () => Number(process.hrtime.bigint() - started) / 1e6;
    const child = spawn(launch.command, launch.args, { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv });
    let first: number | undefined;
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      if (first === undefined && chunk.includes('V')) first = elapsed();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('exit', () => {
      const exitMs = elapsed();
      if (first === undefined)
        reject(new Error(`${launch.command}: the guest never wrote its byte: ${stderr}`));
      else resolve({ firstInstructionMs: first, exitMs });
    });
  });
}

/** RSS in KiB of a VM process whose guest wrote its byte and halted. */
function residentKiB(launch: Launch): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(launch.command, launch.args, { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv });
    child.on('error', reject);
    child.stdout.on('data', (chunk: Buffer) => {
      if (!chunk.includes('V')) return;
      // Let start-up work settle (JIT, lazily mapped pages) before reading the figure.
      setTimeout(() => {
        const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
        const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
        child.kill('SIGKILL');
        resolve(rss);
      }, 1000);
    });
  });
}

function qemuMissing(): string | undefined {
  const probe = spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' });
  return probe.status === 0
    ? undefined
    : 'qemu-system-x86_64 not installed (apt-get install qemu-system-x86)';
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'vireo-bench-startup-'));
  try {
    const poweroff = buildGuest(work, false);
    const halt = buildGuest(work, true);
    const missing = qemuMissing();
    const systems: [string, (elf: string) => Launch][] = [['Vireo', vireo]];
    if (!missing) systems.push(['QEMU microvm', qemu]);
    const timed: [string, (elf: string) => Launch][] = [...systems, [NODE_ALONE, nodeAlone]];

    const first = new Map<string, number[]>();
    const exit = new Map<string, number[]>();
    const rss = new Map<string, number[]>();
    for (let i = 0; i < runs; i++) {
      // Alternate the systems within each round so both see the same machine load.
      for (const [name, launch] of timed) {
        const timing = await timeRun(launch(poweroff));
        first.set(name, [...(first.get(name) ?? []), timing.firstInstructionMs]);
        exit.set(name, [...(exit.get(name) ?? []), timing.exitMs]);
      }
    }
    for (const [name, launch] of systems) {
      const samples: number[] = [];
      for (let i = 0; i < Math.min(runs, 3); i++) samples.push(await residentKiB(launch(halt)));
      rss.set(name, samples);
    }

    const rows = (figures: Map<string, number[]>, scale = 1) => [
      ...(figures === rss ? systems : timed).map(([name]) => ({
        name,
        value: median(figures.get(name)!) / scale,
      })),
      ...(missing ? [{ name: 'QEMU microvm', value: missing }] : []),
    ];
    console.log(`start-up benchmark: ${runs} runs each, medians; guest RAM ${MEMORY}`);
    if (extraCaCerts !== undefined)
      console.log("(NODE_EXTRA_CA_CERTS removed from the children's environment)");
    printFigure(
      {
        title: 'process start to first guest instruction',
        unit: 'ms',
        baseline: 'QEMU microvm',
        better: 'lower',
      },
      rows(first),
    );
    printFigure(
      {
        title: 'process start to exit, guest powers off at once',
        unit: 'ms',
        baseline: 'QEMU microvm',
        better: 'lower',
      },
      rows(exit),
    );
    printFigure(
      {
        title: 'resident memory of the VM process, guest halted',
        unit: 'MiB',
        baseline: 'QEMU microvm',
        better: 'lower',
      },
      rows(rss, 1024),
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
