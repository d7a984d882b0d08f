import assert from 'node:assert/strict';
import { test } from 'node:test';
import { I8042 } from './i8042.js';

function setup(withKeyboard = false) {
  let resets = 0;
  const levels: boolean[] = [];
  const dev = new I8042({
    onReset: () => resets++,
    ...(withKeyboard ? { keyboardIrq: { set: (level: boolean) => levels.push(level) } } : {}),
  });
  const status = () => {
    const d = new Uint8Array(1);
    dev.commandPort.read(0, d);
    return d[0]!;
  };
  const data = () => {
    const d = new Uint8Array(1);
    dev.dataPort.read(0, d);
    return d[0]!;
  };
  const drain = () => {
    const bytes: number[] = [];
    while (status() & 0x01) bytes.push(data());
    return bytes;
  };
  const cmd = (v: number) => dev.commandPort.write(0, Uint8Array.of(v));
  const put = (v: number) => dev.dataPort.write(0, Uint8Array.of(v));
  return { dev, status, data, drain, cmd, put, levels, resets: () => resets };
}

test('0xFE on the command port resets the machine; so does any pulse with bit 0 low', () => {
  const s = setup();
  s.cmd(0xfe);
  assert.equal(s.resets(), 1);
  s.cmd(0xff); // pulse nothing
  assert.equal(s.resets(), 1);
  s.cmd(0xf0);
  assert.equal(s.resets(), 2);
});

test('writing the output port with bit 0 clear resets too', () => {
  const s = setup();
  s.cmd(0xd1);
  s.put(0x03);
  assert.equal(s.resets(), 0);
  s.cmd(0xd0);
  assert.equal(s.data(), 0x03, 'output port reads back');
  s.cmd(0xd1);
  s.put(0x02);
  assert.equal(s.resets(), 1);
});

test('status: system flag follows the command byte, keylock off, command/data bit', () => {
  const s = setup();
  assert.equal(s.status() & 0x15, 0x14, 'system flag, unlocked, output empty');
  s.cmd(0x60);
  assert.equal(s.status() & 0x08, 0x08, 'last write was a command');
  s.put(0x41);
  assert.equal(s.status() & 0x0c, 0x00, 'data written; system flag now clear');
});

test('self test 0x55, interface test 0x00, command byte round trip, no mouse port', () => {
  const s = setup();
  s.cmd(0xaa);
  assert.equal(s.status() & 0x01, 1);
  assert.deepEqual(s.drain(), [0x55]);
  s.cmd(0xab);
  assert.deepEqual(s.drain(), [0x00]);
  s.cmd(0x60);
  s.put(0x47);
  s.cmd(0x20);
  assert.deepEqual(s.drain(), [0x47 | 0x20], 'AUX stays disabled');
  s.cmd(0xa8); // enable AUX: nothing to enable
  s.cmd(0x20);
  assert.equal(s.data() & 0x20, 0x20);
  s.cmd(0xa9);
  assert.notEqual(s.data(), 0x00, 'AUX interface test fails: no mouse port');
  s.cmd(0xd3);
  s.put(0x5a);
  assert.deepEqual(s.drain(), [], 'no AUX loopback');
});

test('without a keyboard, bytes for it get no answer', () => {
  const s = setup();
  s.put(0xf2);
  assert.deepEqual(s.drain(), []);
});

test('a keyboard answers atkbd probing with IRQ 1 edges per byte', () => {
  const s = setup(true);
  s.put(0xf2); // GET ID
  assert.deepEqual(s.levels, [true]);
  assert.equal(s.data(), 0xfa);
  assert.deepEqual(s.levels, [true, false, true], 'a new edge for the next byte');
  assert.deepEqual(s.drain(), [0xab, 0x41], 'translated ID');
  assert.equal(s.levels.at(-1), false);
  s.put(0xed); // SET LEDS + parameter
  s.put(0x00);
  s.put(0xff); // reset
  assert.deepEqual(s.drain(), [0xfa, 0xfa, 0xfa, 0xaa]);
  s.put(0xf0); // get scan code set
  s.put(0x00);
  assert.deepEqual(s.drain(), [0xfa, 0xfa, 0x02]);
  s.cmd(0x60);
  s.put(0x04); // interrupts off
  s.put(0xf4);
  assert.equal(s.levels.at(-1), false, 'no IRQ while the command byte disables it');
  assert.deepEqual(s.drain(), [0xfa]);
});

test('snapshot: queued bytes, command byte and a half-sent command survive', () => {
  const a = setup(true);
  a.cmd(0x60);
  a.put(0x45);
  a.put(0xf2); // keyboard GET ID: FA AB 41 queued (translation on)
  a.cmd(0xd1); // output port write pending
  const state = JSON.parse(JSON.stringify(a.dev.state()));
  const b = setup(true);
  assert.equal(b.dev.restore(state), undefined);
  assert.equal(b.levels.at(-1), true, 'IRQ 1 re-driven for the waiting byte');
  assert.deepEqual(b.drain(), [0xfa, 0xab, 0x41]);
  b.put(0x00); // completes the pending output-port write: reset line low
  assert.equal(b.resets(), 1);
  b.cmd(0x20);
  assert.deepEqual(b.drain(), [0x45 | 0x20]);
  assert.match(b.dev.restore({ ...state, output: [256] }) ?? '', /out of range/);
});
