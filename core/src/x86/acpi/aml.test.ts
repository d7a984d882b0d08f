import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  buffer,
  concat,
  device,
  dwordMemory,
  eisaId,
  integer,
  name,
  nameString,
  pkg,
  pkgLength,
  resourceTemplate,
  scope,
  wordBusNumber,
  wordIo,
} from './aml.js';

const bytes = (a: Uint8Array) => [...a];

test('pkgLength uses one byte up to 63 and counts itself', () => {
  assert.deepEqual(bytes(pkgLength(0)), [0x01]);
  assert.deepEqual(bytes(pkgLength(62)), [0x3f]);
  // 63 body bytes + 2 length bytes = 65 = 0x41: lead byte 0x40 | 0x1, then 0x41 >> 4.
  assert.deepEqual(bytes(pkgLength(63)), [0x41, 0x04]);
  assert.deepEqual(bytes(pkgLength(0xffd)), [0x4f, 0xff]);
  assert.deepEqual(bytes(pkgLength(0xffe)), [0x81, 0x00, 0x01]);
  assert.throws(() => pkgLength(-1));
});

test('pkgLength round-trips through a decoder for many sizes', () => {
  for (const body of [0, 1, 62, 63, 100, 4093, 4094, 70000, 1 << 20, (1 << 28) - 10]) {
    const enc = pkgLength(body);
    const extra = enc[0]! >> 6;
    let value = extra === 0 ? enc[0]! & 0x3f : enc[0]! & 0xf;
    for (let i = 1; i <= extra; i++) value += enc[i]! * 2 ** (4 + 8 * (i - 1));
    assert.equal(value, body + enc.length, `body ${body}`);
    assert.equal(enc.length, extra + 1);
  }
});

test('integers take the shortest encoding', () => {
  assert.deepEqual(bytes(integer(0)), [0x00]);
  assert.deepEqual(bytes(integer(1)), [0x01]);
  assert.deepEqual(bytes(integer(5)), [0x0a, 0x05]);
  assert.deepEqual(bytes(integer(0x1234)), [0x0b, 0x34, 0x12]);
  assert.deepEqual(bytes(integer(0xc000_0000)), [0x0c, 0x00, 0x00, 0x00, 0xc0]);
  assert.deepEqual(bytes(integer(0x1_0000_0000n)), [0x0e, 0, 0, 0, 0, 1, 0, 0, 0]);
  assert.deepEqual(bytes(integer(0xffff_ffff)), [0x0c, 0xff, 0xff, 0xff, 0xff]);
  assert.deepEqual(bytes(integer(2 ** 40)), [0x0e, 0, 0, 0, 0, 0, 1, 0, 0], 'a number past 32 bits');
  assert.deepEqual(bytes(integer(0x1234n)), bytes(integer(0x1234)), 'a bigint encodes as the number');
  assert.deepEqual(bytes(integer(0xffff_ffff_ffff_ffffn)), [0xff]);
  assert.throws(() => integer(-1));
});

test('name strings: plain, rooted, parent, dual and multi segment', () => {
  assert.deepEqual(bytes(nameString('_S5')), [0x5f, 0x53, 0x35, 0x5f]);
  assert.deepEqual(bytes(nameString('\\_SB')), [0x5c, 0x5f, 0x53, 0x42, 0x5f]);
  assert.deepEqual(bytes(nameString('^PCI0')), [0x5e, 0x50, 0x43, 0x49, 0x30]);
  assert.deepEqual(bytes(nameString('\\_SB.PCI0')), [0x5c, 0x2e, ...Buffer.from('_SB_PCI0')]);
  assert.deepEqual(bytes(nameString('A.B.C')), [0x2f, 3, ...Buffer.from('A___B___C___')]);
  assert.throws(() => nameString('toolong'));
  assert.throws(() => nameString('lc'));
});

test('Name(_S5_, Package(){5, 5, 0, 0}) matches the known encoding', () => {
  const s5 = name('_S5_', pkg([integer(5), integer(5), integer(0), integer(0)]));
  assert.deepEqual(
    bytes(s5),
    [0x08, 0x5f, 0x53, 0x35, 0x5f, 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00],
  );
});

test('EisaId("PNP0A03") compiles to 0x030AD041', () => {
  assert.equal(eisaId('PNP0A03'), 0x030a_d041);
  assert.equal(eisaId('PNP0C02'), 0x020c_d041);
  assert.throws(() => eisaId('pnp0a03'));
});

test('scope and device wrap their bodies with a PkgLength', () => {
  const dev = device('PCI0', [name('_UID', integer(0))]);
  assert.deepEqual(bytes(dev), [
    0x5b,
    0x82,
    0x0b,
    ...Buffer.from('PCI0'),
    0x08,
    ...Buffer.from('_UID'),
    0x00,
  ]);
  const sc = scope('\\_SB', [dev]);
  assert.equal(sc[0], 0x10);
  assert.equal(sc[1], 1 + 5 + dev.length);
  // A large body switches to the multi-byte PkgLength.
  const big = scope('\\_SB', [buffer(new Uint8Array(100))]);
  assert.equal(big[1]! >> 6, 1);
});

test('buffer carries its size as an integer term', () => {
  assert.deepEqual(bytes(buffer([1, 2, 3])), [0x11, 0x06, 0x0a, 0x03, 1, 2, 3]);
});

test('resource descriptors have their spec lengths and ranges', () => {
  const bus = wordBusNumber(0, 0xff);
  assert.equal(bus.length, 16);
  assert.deepEqual(bytes(bus), [0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0, 0, 0, 0, 0xff, 0, 0, 0, 0x00, 0x01]);
  const io = wordIo(0x0d00, 0xffff);
  assert.equal(io[3], 1);
  assert.equal(io[5], 3);
  assert.deepEqual(bytes(io.subarray(14, 16)), [0x00, 0xf3]); // length 0xf300
  const mem = dwordMemory(0xc000_0000, 0xdfff_ffff);
  assert.equal(mem.length, 26);
  assert.equal(new DataView(mem.buffer).getUint32(22, true), 0x2000_0000);
  const rt = resourceTemplate([bus]);
  assert.deepEqual(bytes(rt.subarray(-2)), [0x79, 0x00]);
  assert.throws(() => wordIo(5, 4));
});

test('concat joins byte arrays in order', () => {
  assert.deepEqual(bytes(concat([1], Uint8Array.of(2, 3), [])), [1, 2, 3]);
});
