import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fillValue, readValue } from '../bus.js';
import { AcpiPm, PM_TIMER_HZ } from './acpi-pm.js';

function setup() {
  const levels: boolean[] = [];
  let powerOffs = 0;
  let ns = 0n;
  const pm = new AcpiPm({
    sci: { set: (l) => levels.push(l) },
    onPowerOff: () => powerOffs++,
    clockNs: () => ns,
  });
  const read = (dev: typeof pm.eventBlock, offset: number, size: number) => {
    const d = new Uint8Array(size);
    dev.read(offset, d);
    return readValue(d);
  };
  const write = (dev: typeof pm.eventBlock, offset: number, size: number, value: number) => {
    const d = new Uint8Array(size);
    fillValue(d, value);
    dev.write(offset, d);
  };
  return { pm, levels, read, write, powerOffs: () => powerOffs, advance: (n: bigint) => (ns += n) };
}

test('SLP_EN with SLP_TYP 5 powers off; other sleep types do not', () => {
  const s = setup();
  s.write(s.pm.controlBlock, 0, 2, (3 << 10) | (1 << 13));
  assert.equal(s.powerOffs(), 0);
  s.write(s.pm.controlBlock, 0, 2, 0x3400 | 1);
  assert.equal(s.powerOffs(), 1);
  assert.equal(s.read(s.pm.controlBlock, 0, 2) & 1, 1, 'SCI_EN reads set');
});

test('the power button raises the SCI only when enabled, cleared by writing 1', () => {
  const s = setup();
  s.pm.pressPowerButton();
  assert.deepEqual(s.levels, [], 'not enabled yet');
  assert.equal(s.read(s.pm.eventBlock, 0, 2), 0x100, 'status latched');
  s.write(s.pm.eventBlock, 2, 2, 0x100);
  assert.deepEqual(s.levels, [true]);
  assert.equal(s.read(s.pm.eventBlock, 0, 4), 0x0100_0100);
  s.write(s.pm.eventBlock, 0, 2, 0x100);
  assert.deepEqual(s.levels, [true, false]);
  assert.equal(s.read(s.pm.eventBlock, 0, 2), 0);
});

test('the PM timer counts at 3.579545 MHz and wraps at 24 bits', () => {
  const s = setup();
  s.advance(1_000_000_000n);
  assert.equal(s.read(s.pm.timer, 0, 4), PM_TIMER_HZ & 0xffffff);
  s.advance(4_000_000_000n);
  assert.equal(s.read(s.pm.timer, 0, 4), (5 * PM_TIMER_HZ) & 0xffffff);
});
