import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CmosRtc, type CmosRtcOptions } from './rtc.js';

/** Thursday 29 February 2024, 13:45:07.500 UTC. */
const FIXED = Date.UTC(2024, 1, 29, 13, 45, 7, 500);

function setup(options: Omit<CmosRtcOptions, 'now'> = {}) {
  let ms = FIXED;
  const rtc = new CmosRtc({ now: () => ms, ...options });
  const rd = (register: number) => {
    rtc.write(0, Uint8Array.of(register));
    const d = new Uint8Array(1);
    rtc.read(1, d);
    return d[0]!;
  };
  const wr = (register: number, value: number) => {
    rtc.write(0, Uint8Array.of(register));
    rtc.write(1, Uint8Array.of(value));
  };
  const time = () => [0, 2, 4, 6, 7, 8, 9, 0x32].map(rd);
  return { rtc, rd, wr, time, setMs: (v: number) => (ms = v), advance: (d: number) => (ms += d) };
}

test('time and date in BCD, 24-hour, from the injected clock (the power-on default)', () => {
  const { time, rd } = setup();
  assert.deepEqual(time(), [0x07, 0x45, 0x13, 0x05, 0x29, 0x02, 0x24, 0x20]);
  assert.equal(rd(0x0b), 0x02, 'register B: 24-hour, BCD');
  assert.equal(rd(0x0d), 0x80, 'register D: valid RAM and time');
});

test('binary mode and 12-hour mode follow register B', () => {
  const { time, wr, rd, setMs } = setup();
  wr(0x0b, 0x06);
  assert.deepEqual(time(), [7, 45, 13, 5, 29, 2, 24, 20]);
  wr(0x0b, 0x00);
  assert.equal(rd(0x04), 0x81, '1 PM in BCD with the PM bit');
  wr(0x0b, 0x04);
  assert.equal(rd(0x04), 0x81, '1 PM in binary');
  setMs(Date.UTC(2024, 1, 29, 0, 30));
  assert.equal(rd(0x04), 12, 'midnight is 12 AM');
  setMs(Date.UTC(2024, 1, 29, 12, 30));
  assert.equal(rd(0x04), 0x80 | 12, 'noon is 12 PM');
});

test('setting the time under SET applies all fields at once and keeps running from there', () => {
  const { time, wr, rd, advance } = setup();
  wr(0x0b, 0x82);
  assert.equal(rd(0x0a) & 0x80, 0, 'no update in progress while SET');
  for (const [register, value] of [
    [0x09, 0x25],
    [0x08, 0x12],
    [0x07, 0x31],
    [0x04, 0x23],
    [0x02, 0x59],
    [0x00, 0x58],
  ] as const) {
    wr(register, value);
  }
  advance(5000);
  assert.deepEqual(time().slice(0, 3), [0x58, 0x59, 0x23], 'frozen while SET is on');
  wr(0x0b, 0x02);
  assert.deepEqual(time(), [0x58, 0x59, 0x23, 0x04, 0x31, 0x12, 0x25, 0x20]);
  advance(3000);
  assert.deepEqual(time(), [0x01, 0x00, 0x00, 0x05, 0x01, 0x01, 0x26, 0x20], 'rolls into 2026');
});

test('a 12-hour time written in 12-hour mode is understood', () => {
  const { wr, rd } = setup();
  wr(0x0b, 0x80); // SET, 12-hour, BCD
  wr(0x04, 0x80 | 0x11); // 11 PM
  wr(0x0b, 0x02);
  assert.equal(rd(0x04), 0x23);
});

test('UIP is set only just before the seconds change', () => {
  const { rd, setMs } = setup();
  assert.equal(rd(0x0a) & 0x80, 0);
  assert.equal(rd(0x0a) & 0x7f, 0x26);
  setMs(FIXED + 499.5);
  assert.equal(rd(0x0a) & 0x80, 0x80);
  setMs(FIXED + 501);
  assert.equal(rd(0x0a) & 0x80, 0);
});

test('the index port masks NMIs with bit 7 and still selects the register', () => {
  const { rtc } = setup();
  rtc.write(0, Uint8Array.of(0x80 | 0x0d));
  const d = new Uint8Array(1);
  rtc.read(1, d);
  assert.equal(d[0], 0x80);
  assert.equal(rtc.nmiDisabled, true);
  rtc.write(0, Uint8Array.of(0x0d));
  assert.equal(rtc.nmiDisabled, false);
});

test('NVRAM bytes hold what the guest writes; C and D are read-only', () => {
  const { rd, wr } = setup();
  wr(0x40, 0xab);
  assert.equal(rd(0x40), 0xab);
  wr(0x0d, 0x00);
  assert.equal(rd(0x0d), 0x80);
});

test('memory-size bytes: above 16 MiB below the hole and above 4 GiB, in 64 KiB units', () => {
  const small = setup({ memoryBytes: 2 * 2 ** 30 });
  assert.equal(small.rd(0x34) | (small.rd(0x35) << 8), (2 * 2 ** 30 - 16 * 2 ** 20) / 65536);
  assert.equal(small.rd(0x5b) | small.rd(0x5c) | small.rd(0x5d), 0);
  assert.equal(small.rd(0x30) | (small.rd(0x31) << 8), 0xffff, 'extended KiB caps at 64 MiB');
  const large = setup({ memoryBytes: 6 * 2 ** 30 });
  assert.equal(large.rd(0x34) | (large.rd(0x35) << 8), (3 * 2 ** 30 - 16 * 2 ** 20) / 65536);
  const above = large.rd(0x5b) | (large.rd(0x5c) << 8) | (large.rd(0x5d) << 16);
  assert.equal(above, (3 * 2 ** 30) / 65536, '3 GiB above 4 GiB');
});

test('update-ended and alarm interrupts on IRQ 8, acknowledged by reading register C', () => {
  const pending: { callback: () => void; ms: number }[] = [];
  const levels: boolean[] = [];
  const s = setup({
    irq: { set: (level) => levels.push(level) },
    timers: {
      setTimeout: (callback, ms) => pending.push({ callback, ms }),
      clearTimeout: () => pending.splice(0),
    },
  });
  const fire = () => {
    const next = pending.shift()!;
    s.advance(next.ms);
    next.callback();
  };
  s.wr(0x0b, 0x12); // UIE, 24-hour, BCD
  assert.equal(pending.length, 1);
  assert.equal(pending[0]!.ms, 500, 'scheduled at the next second');
  fire();
  assert.deepEqual(levels, [true]);
  assert.equal(s.rd(0x0c), 0x90, 'IRQF and UF');
  assert.deepEqual(levels, [true, false]);
  s.wr(0x01, 0x10); // alarm at hh:mm:10, any hour and minute
  s.wr(0x03, 0xff);
  s.wr(0x05, 0xff);
  s.wr(0x0b, 0x22); // AIE only
  fire(); // :09
  assert.deepEqual(levels, [true, false], 'updates are not interrupts without UIE');
  fire(); // :10
  assert.equal(s.rd(0x0c), 0xb0, 'IRQF, AF and UF');
  assert.deepEqual(levels, [true, false, true, false]);
  s.wr(0x0b, 0x02);
  assert.equal(pending.length, 0, 'no timer while no interrupt is enabled');
});

test('snapshot: the guest clock offset, NVRAM and a time being set survive', () => {
  const a = setup();
  a.wr(0x0b, 0x82);
  a.wr(0x09, 0x28); // 2028 (a leap year), still latched under SET
  a.wr(0x40, 0x99);
  const state = JSON.parse(JSON.stringify(a.rtc.state()));
  const b = setup();
  assert.equal(b.rtc.restore(state), undefined);
  assert.equal(b.rd(0x40), 0x99);
  assert.equal(b.rd(0x09), 0x28, 'latched year');
  b.wr(0x0b, 0x02);
  assert.deepEqual(b.time(), [0x07, 0x45, 0x13, 0x03, 0x29, 0x02, 0x28, 0x20], 'Tuesday 29 February 2028');
  assert.match(b.rtc.restore({ ...state, nvram: [1, 2, 3] }) ?? '', /128 bytes/);
});
