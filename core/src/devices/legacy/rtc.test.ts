import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CmosRtc } from './rtc.js';

// 2026-11-23 17:04:09 UTC, a Monday.
const FIXED = Date.UTC(2026, 10, 23, 17, 4, 9);

function setup(now = () => FIXED) {
  const rtc = new CmosRtc(now);
  const get = (register: number) => {
    rtc.write(0, Uint8Array.of(register | 0x80));
    const d = new Uint8Array(1);
    rtc.read(1, d);
    return d[0]!;
  };
  const set = (register: number, value: number) => {
    rtc.write(0, Uint8Array.of(register));
    rtc.write(1, Uint8Array.of(value));
  };
  return { get, set };
}

test('reads the host time in BCD, 24-hour, by default', () => {
  const { get } = setup();
  assert.deepEqual(
    [get(0), get(2), get(4), get(6), get(7), get(8), get(9), get(0x32)],
    [0x09, 0x04, 0x17, 0x02, 0x23, 0x11, 0x26, 0x20],
  );
  assert.equal(get(0x0d), 0x80, 'battery valid');
  assert.equal(get(0x0a) & 0x80, 0, 'never mid-update');
});

test('binary and 12-hour modes follow register B', () => {
  const { get, set } = setup();
  set(0x0b, 0x04); // binary, 12-hour
  assert.equal(get(0x04), 0x80 | 5, '5 PM');
  assert.equal(get(0x07), 23);
});

test('a guest write to the clock becomes an offset that keeps ticking', () => {
  let now = FIXED;
  const { get, set } = setup(() => now);
  set(0x04, 0x08); // 08 hours BCD
  assert.equal(get(0x04), 0x08);
  now += 3600_000;
  assert.equal(get(0x04), 0x09);
  assert.equal(get(0x02), 0x04);
});

test('NVRAM bytes are kept', () => {
  const { get, set } = setup();
  set(0x40, 0x5a);
  assert.equal(get(0x40), 0x5a);
});
