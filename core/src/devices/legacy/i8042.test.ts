import assert from 'node:assert/strict';
import { test } from 'node:test';
import { I8042 } from './i8042.js';

function setup() {
  let resets = 0;
  const dev = new I8042(() => resets++);
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
  const cmd = (v: number) => dev.commandPort.write(0, Uint8Array.of(v));
  const put = (v: number) => dev.dataPort.write(0, Uint8Array.of(v));
  return { status, data, cmd, put, resets: () => resets };
}

test('0xFE on the command port resets the machine', () => {
  const s = setup();
  s.cmd(0xfe);
  assert.equal(s.resets(), 1);
});

test('writing the output port with bit 0 clear resets too', () => {
  const s = setup();
  s.cmd(0xd1);
  s.put(0x01);
  assert.equal(s.resets(), 0);
  s.cmd(0xd1);
  s.put(0x00);
  assert.equal(s.resets(), 1);
});

test('self test, command byte round trip, output-full status', () => {
  const s = setup();
  assert.equal(s.status() & 0x01, 0);
  s.cmd(0xaa);
  assert.equal(s.status() & 0x01, 1);
  assert.equal(s.data(), 0x55);
  s.cmd(0x60);
  s.put(0x47);
  s.cmd(0x20);
  assert.equal(s.data(), 0x47);
  assert.equal(s.status() & 0x01, 0);
});
