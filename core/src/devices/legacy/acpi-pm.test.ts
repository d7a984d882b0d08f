import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fillValue, readValue } from '../bus.js';
import { AcpiPm, PM_TIMER_HZ } from './acpi-pm.js';

function setup(options: { s5SleepType?: number; timerBits?: 24 | 32 } = {}) {
  const levels: boolean[] = [];
  let powerOffs = 0;
  let ns = 0n;
  const pm = new AcpiPm({
    sci: { set: (l) => levels.push(l) },
    onPowerOff: () => powerOffs++,
    clockNs: () => ns,
    ...options,
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

test('ACPICA sequence: SLP_TYP written first, then SLP_EN read-modify-write; byte writes work too', () => {
  const s = setup();
  const control = s.read(s.pm.controlBlock, 0, 2);
  s.write(s.pm.controlBlock, 0, 2, (control & ~0x3c00) | (5 << 10));
  assert.equal(s.powerOffs(), 0, 'SLP_TYP alone does nothing');
  assert.equal(s.read(s.pm.controlBlock, 0, 2), (5 << 10) | 1, 'SLP_TYP reads back, SCI_EN stays set');
  s.write(s.pm.controlBlock, 1, 1, ((5 << 10) | (1 << 13)) >> 8);
  assert.equal(s.powerOffs(), 1, 'SLP_EN in the high byte alone');
  assert.equal(s.read(s.pm.controlBlock, 0, 2) & (1 << 13), 0, 'SLP_EN is write-only');
});

test('the S5 sleep type is a constructor option', () => {
  const s = setup({ s5SleepType: 7 });
  s.write(s.pm.controlBlock, 0, 2, (5 << 10) | (1 << 13));
  assert.equal(s.powerOffs(), 0);
  s.write(s.pm.controlBlock, 0, 2, (7 << 10) | (1 << 13));
  assert.equal(s.powerOffs(), 1);
});

test('the SCI stays high while any enabled status is set and follows the enable bit', () => {
  const s = setup();
  s.write(s.pm.eventBlock, 0, 4, 0x0100_0000); // enable the power button with a dword write
  s.pm.pressPowerButton();
  assert.equal(s.pm.sciAsserted, true);
  s.pm.pressPowerButton();
  assert.deepEqual(s.levels, [true], 'a second press while pending changes nothing');
  s.write(s.pm.eventBlock, 0, 2, 0x0001); // clearing another bit leaves it
  assert.equal(s.pm.sciAsserted, true);
  s.write(s.pm.eventBlock, 2, 2, 0);
  assert.equal(s.pm.sciAsserted, false, 'disabling drops the line, status stays latched');
  assert.equal(s.read(s.pm.eventBlock, 1, 1), 0x01);
  s.write(s.pm.eventBlock, 3, 1, 0x01);
  assert.equal(s.pm.sciAsserted, true, 're-enabling raises it again');
  s.write(s.pm.eventBlock, 1, 1, 0x01);
  assert.deepEqual(s.levels, [true, false, true, false]);
});

test('a 32-bit PM timer wraps at 32 bits; partial reads see its bytes', () => {
  const s = setup({ timerBits: 32 });
  s.advance(5_000_000_000n);
  const ticks = 5 * PM_TIMER_HZ;
  assert.equal(s.read(s.pm.timer, 0, 4), ticks);
  assert.equal(s.read(s.pm.timer, 2, 2), Math.floor(ticks / 65536) & 0xffff);
  assert.equal(s.read(s.pm.timer, 0, 1), ticks & 0xff);
});

test('snapshot: status, enable and SLP_TYP restored, the SCI re-driven, the timer continuing', () => {
  const a = setup();
  a.write(a.pm.eventBlock, 2, 2, 0x100);
  a.pm.pressPowerButton();
  a.write(a.pm.controlBlock, 0, 2, 5 << 10);
  a.advance(2_000_000_000n);
  const state = JSON.parse(JSON.stringify(a.pm.state()));
  const b = setup();
  b.advance(123_456_789_000n); // a different host clock
  assert.equal(b.pm.restore(state), undefined);
  assert.deepEqual(b.levels, [true]);
  assert.equal(b.read(b.pm.eventBlock, 0, 4), 0x0100_0100);
  assert.equal(b.read(b.pm.controlBlock, 0, 2), (5 << 10) | 1);
  const before = b.read(b.pm.timer, 0, 4);
  assert.ok(Math.abs(before - ((2 * PM_TIMER_HZ) & 0xffffff)) <= 1, 'no jump in the PM timer');
  assert.match(b.pm.restore({ ...state, status: -1 }) ?? '', /out of range/);
});
