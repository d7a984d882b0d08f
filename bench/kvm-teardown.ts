// Why Vireo's machines use KVM's split irqchip: how long a process that ran a KVM VM for a few
// milliseconds (a test, a `vireo run` whose guest powers off at once) takes to exit, by what the
// VM was given. The kernel destroys the VM on the exit path, and with KVM's in-kernel PIC, IOAPIC
// and PIT, or a recent ioeventfd registration, it first waits for an SRCU grace period (a few
// jiffies). Rows are medians of times measured by a C program (bench/kvm-teardown.c): the exit,
// and the VM's set-up, where some variants wait instead.
//   node dist/bench/kvm-teardown.js [--runs 21] [--life-us 3000]
import { parseArgs } from 'node:util';
import { kvmSkipReason } from '../tests/support/tags.js';
import { hostProgram, run } from './lib/guest-image.js';
import { median, printFigure } from './lib/report.js';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '21' }, 'life-us': { type: 'string', default: '3000' } },
});

const VARIANTS: [name: string, variant: string][] = [
  ['split irqchip (Vireo)', 'split-irqchip'],
  ['split irqchip + an ioeventfd', 'split-irqchip+ioeventfd'],
  ['in-kernel irqchip', 'kernel-irqchip'],
  ['in-kernel irqchip and PIT', 'kernel-irqchip+pit'],
  ['bare VM', 'bare'],
];

const skip = kvmSkipReason();
if (skip) {
  console.log(`kvm-teardown: ${skip}`);
} else {
  const binary = hostProgram('kvm-teardown');
  console.log(`kvm-teardown: ${values.runs} runs per variant, each VM lives ${values['life-us']} µs`);
  const results = VARIANTS.map(([name, variant]) => {
    const result = run(binary, [variant, values.runs, values['life-us']]);
    if (result.status !== 0) return { name, failure: `failed: ${result.stderr.trim()}` };
    const [exits, setups] = result.stdout
      .trim()
      .split('\n')
      .map((line) => line.split(' ').map(Number));
    return { name, exitMs: median(exits!) / 1e6, setupMs: median(setups!) / 1e6 };
  });
  const figure = (title: string, pick: (r: (typeof results)[number]) => number | undefined) =>
    printFigure(
      { title, unit: 'ms', baseline: VARIANTS[0]![0], better: 'lower', digits: 2 },
      results.map((r) => ({ name: r.name, value: pick(r) ?? r.failure ?? 'no figure' })),
    );
  figure('process exit after a short VM life (the KVM teardown on the exit path)', (r) => r.exitMs);
  figure('building the VM', (r) => r.setupMs);
  figure('both', (r) => (r.exitMs === undefined ? undefined : r.exitMs + r.setupMs!));
}
