// Running a bench guest (bench/guests) under Vireo and under QEMU, and reading its report: text
// lines on BENCH_REPORT_PORT, each timestamped by the harness as it arrives. A phase is framed
// by "begin NAME" and "end NAME key=value ..."; its time is the harness's clock between the two,
// so it includes nothing of guest start-up or shutdown.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createTestVm, TestPort } from '../../core/src/kvm/test-vm.js';
import { VcpuSet } from '../../core/src/kvm/vcpu-set.js';
import { createPlatform, type Platform, type PlatformDevices } from '../../core/src/machine/platform.js';
import { PCI_MMIO32_START } from '../../core/src/x86/layout.js';
import { QEMU } from './guest-image.js';

export interface ReportLine {
  text: string;
  /** performance.now() when the line's last byte arrived. */
  at: number;
}

export interface GuestRun {
  /** The guest's debug-exit status (0: success), or undefined when it did not exit itself. */
  status: number | undefined;
  lines: ReportLine[];
  /** Why the run failed, when it did. */
  error?: string;
}

export interface Phase {
  seconds: number;
  /** The "end" line's key=value fields. */
  fields: Map<string, bigint>;
}

/** Splits arriving bytes into timestamped lines. */
class LineCollector {
  readonly lines: ReportLine[] = [];
  private partial = '';

  constructor(private readonly echo: boolean) {}

  push(text: string): void {
    const at = performance.now();
    const parts = (this.partial + text).split('\n');
    this.partial = parts.pop()!;
    for (const line of parts) {
      this.lines.push({ text: line, at });
      if (this.echo) console.error(`  guest: ${line}`);
    }
  }
}

/** The guests' text port (bench/guests/guest.h): 0xe9, as QEMU's fw_cfg owns 0x510-0x511. */
export const BENCH_REPORT_PORT = 0xe9;

/** RAM for a bench guest: the guest image, rings and buffers (PARAM_HEAP_END is set to this). */
export const BENCH_GUEST_RAM = 64 * 1024 * 1024;
/** Where the guest places a BAR that firmware left unassigned (inside both machines' PCI hole). */
export const BENCH_BAR_BASE = PCI_MMIO32_START;

/**
 * The guest on Vireo: the test VM (one vCPU, long mode at 0x100000) with the machine's platform
 * and its virtio devices on PCI, kicks through ioeventfds as in a real VM.
 */
export async function runInVireo(
  guest: Uint8Array,
  devices: PlatformDevices,
  options: { timeoutMs: number; echo?: boolean; inspect?: (platform: Platform) => void },
): Promise<GuestRun> {
  const vm = createTestVm({ guest, memoryBytes: BENCH_GUEST_RAM });
  const collector = new LineCollector(options.echo ?? false);
  const decoder = new TextDecoder();
  let set: VcpuSet | undefined;
  let status: number | undefined;
  const platform = createPlatform(
    vm.vm,
    vm.memory,
    { onConsoleOutput: () => {}, log: (line) => console.error(`  vireo: ${line}`) },
    devices,
  );
  try {
    platform.pio.register(
      BENCH_REPORT_PORT,
      1,
      { read: (_o, data) => data.fill(0), write: (_o, data) => collector.push(decoder.decode(data)) },
      'bench-report',
    );
    platform.pio.register(
      TestPort.DEBUG_EXIT,
      1,
      {
        read: (_o, data) => data.fill(0),
        write: (_o, data) => {
          status = data[0]!;
          set!.requestStop({ reason: 'shutdown', status, message: 'debug exit' });
        },
      },
      'bench-exit',
    );
    set = new VcpuSet({ vcpus: vm.vcpus, pio: platform.pio, mmio: platform.mmio });
    const timer = setTimeout(
      () => set!.requestStop({ reason: 'stopped', message: `no exit within ${options.timeoutMs} ms` }),
      options.timeoutMs,
    );
    set.start();
    const stop = await set.done;
    clearTimeout(timer);
    return {
      status,
      lines: collector.lines,
      error: stop.reason === 'shutdown' ? undefined : `${stop.reason}: ${stop.message}`,
    };
  } finally {
    for (const transport of platform.virtio) {
      await (transport.device as { quiesce?: () => Promise<void> }).quiesce?.();
    }
    options.inspect?.(platform);
    platform.close();
    vm.close();
  }
}

// -cpu host minus arch-capabilities: emulating hosts (PVM) refuse that MSR and QEMU aborts.
export const QEMU_KVM_ARGS = ['-accel', 'kvm', '-cpu', 'host,-arch-capabilities'];

/**
 * The same guest on QEMU's pc machine (i440fx: PCI config through 0xCF8/0xCFC, SeaBIOS assigns
 * the BARs), the report port as an isa-debugcon on stdout. `deviceArgs` adds the devices; `fds`
 * are handed to QEMU as its fds 3, 4, ... (a tap opened by the harness: `-netdev tap,fd=3`).
 */
export async function runInQemu(
  image: string,
  deviceArgs: string[],
  options: { timeoutMs: number; echo?: boolean; fds?: number[] },
): Promise<GuestRun> {
  const collector = new LineCollector(options.echo ?? false);
  const args = [
    ...QEMU_KVM_ARGS,
    '-M',
    'pc',
    '-m',
    String(BENCH_GUEST_RAM / (1024 * 1024)),
    '-nodefaults',
    '-display',
    'none',
    '-no-reboot',
    '-chardev',
    'stdio,id=report',
    '-device',
    `isa-debugcon,iobase=${BENCH_REPORT_PORT},chardev=report`,
    '-device',
    `isa-debug-exit,iobase=${TestPort.DEBUG_EXIT},iosize=1`,
    ...deviceArgs,
    '-kernel',
    image,
  ];
  const child = spawn(QEMU, args, {
    stdio: ['ignore', 'pipe', 'pipe', ...(options.fds ?? [])],
  }) as ChildProcessWithoutNullStreams;
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => collector.push(text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  // isa-debug-exit turns the guest's status s into the exit code (s << 1) | 1.
  if (code === null || code % 2 === 0) {
    return {
      status: undefined,
      lines: collector.lines,
      error: `QEMU exited ${code ?? 'on a signal (timeout?)'}: ${stderr.trim().slice(0, 300)}`,
    };
  }
  return { status: code >> 1, lines: collector.lines };
}

/** The phases in a run's report (begin/end pairs). */
export function phases(run: GuestRun): Map<string, Phase> {
  const found = new Map<string, Phase>();
  const begun = new Map<string, number>();
  for (const line of run.lines) {
    const words = line.text.trim().split(/\s+/);
    if (words[0] === 'begin' && words[1]) begun.set(words[1], line.at);
    if (words[0] === 'end' && words[1] && begun.has(words[1])) {
      const fields = new Map<string, bigint>();
      for (const word of words.slice(2)) {
        const match = /^(\w+)=(\d+)$/.exec(word);
        if (match) fields.set(match[1]!, BigInt(match[2]!));
      }
      found.set(words[1], { seconds: (line.at - begun.get(words[1])!) / 1000, fields });
    }
  }
  return found;
}

/** A failed run in one line: the harness's error, the exit status and the guest's last words. */
export function describeFailure(run: GuestRun): string {
  const last = run.lines
    .slice(-3)
    .map((l) => l.text)
    .join(' | ');
  return `${run.error ?? `guest exit status ${run.status}`}${last ? `; guest said: ${last}` : ''}`;
}
