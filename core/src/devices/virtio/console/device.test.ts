import assert from 'node:assert/strict';
import { test } from 'node:test';
import { activateDevice } from '../pci/test-context.js';
import { VirtioConsole } from './device.js';

const text = (s: string) => new TextEncoder().encode(s);

test('transmitted bytes reach onOutput in order', () => {
  const out: string[] = [];
  const device = new VirtioConsole({ onOutput: (b) => out.push(new TextDecoder().decode(b)) });
  const h = activateDevice(device);
  const tx = h.drivers[1]!;
  tx.addChain([text('hello '), text('hvc0')], []);
  tx.addChain([text('\n')], [], { indirect: true });
  device.queueNotify(1);
  assert.deepEqual(out, ['hello hvc0', '\n']);
  assert.equal(tx.takeUsed()?.len, 0);
  assert.equal(device.metrics.bytesOut, 11);
});

test('input waits for receive buffers and is split across them', () => {
  const device = new VirtioConsole({ onOutput: () => {} });
  const h = activateDevice(device);
  const rx = h.drivers[0]!;
  device.receive(text('ls -l\n'));
  assert.equal(rx.takeUsed(), undefined, 'no buffers yet');
  const a = rx.addChain([], [4]);
  const b = rx.addChain([], [16]);
  device.queueNotify(0);
  assert.deepEqual(rx.takeUsed(), { id: a.head, len: 4 });
  assert.deepEqual(rx.takeUsed(), { id: b.head, len: 2 });
  assert.equal(new TextDecoder().decode(rx.memory.read(a.writable[0]!.addr, 4)), 'ls -');
  assert.equal(new TextDecoder().decode(rx.memory.read(b.writable[0]!.addr, 2)), 'l\n');
  assert.ok(h.interrupts.includes(0));
  const c = rx.addChain([], [8]);
  device.queueNotify(0);
  assert.equal(rx.takeUsed(), undefined, 'an idle buffer stays with the device');
  device.receive(text('x'));
  assert.deepEqual(rx.takeUsed(), { id: c.head, len: 1 });
});
