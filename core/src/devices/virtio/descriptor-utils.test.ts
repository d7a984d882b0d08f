import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GuestMemory } from '../../memory/guest-memory.js';
import { ChainError, Reader, Writer } from './descriptor-utils.js';
import type { DescriptorChain } from './queue/chain.js';

function memoryWith(bytes: number[]): GuestMemory {
  const ram = new Uint8Array(0x1000);
  ram.set(bytes);
  return new GuestMemory([{ gpa: 0, bytes: ram }]);
}

/** Readable pieces of 3, 0, 1 and 4 bytes over RAM bytes 0..7, then writable 2 + 5 at 0x100. */
function splitChain(): DescriptorChain {
  return {
    headIndex: 0,
    indirect: false,
    readableLength: 8,
    writableLength: 7,
    descriptors: [
      { addr: 0, len: 3, writable: false },
      { addr: 3, len: 0, writable: false },
      { addr: 3, len: 1, writable: false },
      { addr: 4, len: 4, writable: false },
      { addr: 0x100, len: 2, writable: true },
      { addr: 0x200, len: 5, writable: true },
    ],
  };
}

describe('Reader', () => {
  test('reads the readable buffers as one little-endian stream', () => {
    const memory = memoryWith([1, 2, 3, 4, 5, 6, 7, 8]);
    const reader = Reader.fromChain(memory, splitChain());
    assert.equal(reader.remaining, 8);
    assert.equal(reader.readU16(), 0x0201);
    assert.equal(reader.readU32(), 0x06050403); // straddles three descriptors
    assert.equal(reader.bytesRead, 6);
    assert.deepEqual([...reader.readBytes(2)], [7, 8]);
    assert.equal(reader.remaining, 0);
  });

  test('readU64 and readU8 and skip', () => {
    const memory = memoryWith([0xff, 1, 2, 3, 4, 5, 6, 7, 8]);
    const reader = new Reader([memory.view(0, 1), memory.view(1, 8)]);
    assert.equal(reader.readU8(), 0xff);
    reader.skip(0);
    assert.equal(reader.readU64(), 0x0807060504030201n);
  });

  test('a short chain throws ChainError and consumes nothing', () => {
    const reader = Reader.fromChain(memoryWith([1, 2, 3, 4, 5, 6, 7, 8]), splitChain());
    reader.skip(5);
    assert.throws(
      () => reader.readU32(),
      (e: unknown) => e instanceof ChainError && e.kind === 'short-read',
    );
    assert.throws(() => reader.readBytes(4), ChainError);
    assert.throws(() => reader.skip(4), ChainError);
    assert.throws(
      () => reader.readBytes(-1),
      (e: unknown) => e instanceof ChainError && e.kind === 'bad-length',
    );
    assert.throws(() => reader.readBytes(1.5), ChainError);
    assert.equal(reader.remaining, 3);
    assert.deepEqual([...reader.readBytes(3)], [6, 7, 8]);
  });

  test('readInto fills the whole target', () => {
    const reader = Reader.fromChain(memoryWith([1, 2, 3, 4, 5, 6, 7, 8]), splitChain());
    const target = new Uint8Array(6);
    reader.readInto(target);
    assert.deepEqual([...target], [1, 2, 3, 4, 5, 6]);
    assert.throws(() => reader.readInto(new Uint8Array(3)), ChainError);
  });

  test('views are zero-copy and consume moves past them', () => {
    const memory = memoryWith([1, 2, 3, 4, 5, 6, 7, 8]);
    const reader = Reader.fromChain(memory, splitChain());
    reader.skip(1);
    const views = reader.views(5);
    assert.deepEqual(
      views.map((v) => [...v]),
      [[2, 3], [4], [5, 6]],
    );
    memory.writeU8(1, 0x42);
    assert.equal(views[0]![0], 0x42, 'views alias guest RAM');
    assert.equal(reader.remaining, 7, 'views() does not consume');
    reader.consume(5);
    assert.deepEqual([...reader.readBytes(2)], [7, 8]);
    assert.deepEqual(reader.views(), []);
  });

  test('splitAt divides the stream', () => {
    const reader = Reader.fromChain(memoryWith([1, 2, 3, 4, 5, 6, 7, 8]), splitChain());
    reader.skip(1);
    const tail = reader.splitAt(3);
    assert.equal(reader.remaining, 3);
    assert.equal(tail.remaining, 4);
    assert.deepEqual([...reader.readBytes(3)], [2, 3, 4]);
    assert.throws(() => reader.readU8(), ChainError);
    assert.deepEqual([...tail.readBytes(4)], [5, 6, 7, 8]);
    assert.throws(() => tail.splitAt(1), ChainError);
  });

  test('a chain with a buffer outside RAM (not from Queue.pop) is refused', () => {
    const chain: DescriptorChain = {
      headIndex: 0,
      indirect: false,
      readableLength: 16,
      writableLength: 0,
      descriptors: [{ addr: 0xff8, len: 16, writable: false }],
    };
    assert.throws(
      () => Reader.fromChain(memoryWith([]), chain),
      (e: unknown) => e instanceof ChainError && e.kind === 'outside-ram',
    );
  });
});

describe('Writer', () => {
  test('writes across the writable buffers only', () => {
    const memory = memoryWith([1, 2, 3, 4, 5, 6, 7, 8]);
    const writer = Writer.fromChain(memory, splitChain());
    assert.equal(writer.available, 7);
    writer.writeU8(0xaa);
    writer.writeU32(0x44332211); // one byte in the first buffer, three in the second
    writer.writeU16(0xbbcc);
    assert.equal(writer.bytesWritten, 7);
    assert.equal(writer.available, 0);
    assert.deepEqual([...memory.read(0x100, 2)], [0xaa, 0x11]);
    assert.deepEqual([...memory.read(0x200, 5)], [0x22, 0x33, 0x44, 0xcc, 0xbb]);
    assert.deepEqual([...memory.read(0, 8)], [1, 2, 3, 4, 5, 6, 7, 8], 'readable part untouched');
  });

  test('a short chain throws before writing anything', () => {
    const memory = memoryWith([]);
    const writer = Writer.fromChain(memory, splitChain());
    writer.write(new Uint8Array([9, 9, 9, 9]));
    assert.throws(
      () => writer.writeU64(1n),
      (e: unknown) => e instanceof ChainError && e.kind === 'short-write',
    );
    assert.deepEqual([...memory.read(0x200, 5)], [9, 9, 0, 0, 0]);
    assert.equal(writer.bytesWritten, 4);
  });

  test('splitAt keeps a trailing status byte apart (the block device pattern)', () => {
    const memory = memoryWith([]);
    const writer = Writer.fromChain(memory, splitChain());
    const status = writer.splitAt(writer.available - 1);
    writer.write(new Uint8Array([1, 2, 3, 4, 5, 6]));
    assert.throws(() => writer.writeU8(7), ChainError);
    status.writeU8(0xee);
    assert.equal(writer.bytesWritten + status.bytesWritten, 7);
    assert.deepEqual([...memory.read(0x200, 5)], [3, 4, 5, 6, 0xee]);
  });

  test('views for zero-copy fills, then consume', () => {
    const memory = memoryWith([]);
    const writer = Writer.fromChain(memory, splitChain());
    const views = writer.views(3);
    assert.deepEqual(
      views.map((v) => v.length),
      [2, 1],
    );
    for (const v of views) v.fill(0x5a);
    writer.consume(3);
    writer.writeU8(1);
    assert.deepEqual([...memory.read(0x100, 2)], [0x5a, 0x5a]);
    assert.deepEqual([...memory.read(0x200, 2)], [0x5a, 1]);
    assert.throws(() => writer.consume(4), ChainError);
  });
});

describe('Reader and Writer against a flat model', () => {
  /** Cuts `bytes` into random pieces (some empty), as a chain's buffers would. */
  function pieces(bytes: Uint8Array, random: () => number): Uint8Array[] {
    const out: Uint8Array[] = [];
    let at = 0;
    while (at < bytes.length) {
      const n = Math.min(bytes.length - at, Math.floor(random() * 12));
      out.push(bytes.subarray(at, at + n));
      at += n;
    }
    return out;
  }

  function lcg(seed: number): () => number {
    let s = seed >>> 0;
    return () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return s / 2 ** 32;
    };
  }

  test('every read matches the same read from one flat buffer', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const random = lcg(seed);
      const flat = Uint8Array.from({ length: 64 }, () => Math.floor(random() * 256));
      const model = new DataView(flat.buffer);
      const reader = new Reader(pieces(flat.slice(), random));
      let at = 0;
      for (let step = 0; step < 40; step++) {
        const op = Math.floor(random() * 6);
        const size = [1, 2, 4, 8, Math.floor(random() * 20), Math.floor(random() * 10)][op]!;
        if (at + size > 64) {
          assert.throws(() => (op === 0 ? reader.readU8() : reader.readBytes(size)), ChainError);
          assert.equal(reader.remaining, 64 - at, `seed ${seed}: a failed read consumed nothing`);
          continue;
        }
        if (op === 0) assert.equal(reader.readU8(), model.getUint8(at));
        else if (op === 1) assert.equal(reader.readU16(), model.getUint16(at, true));
        else if (op === 2) assert.equal(reader.readU32(), model.getUint32(at, true), `seed ${seed}`);
        else if (op === 3) assert.equal(reader.readU64(), model.getBigUint64(at, true));
        else if (op === 4) assert.deepEqual(reader.readBytes(size), flat.slice(at, at + size));
        else reader.skip(size);
        at += size;
        assert.equal(reader.bytesRead, at);
      }
    }
  });

  test('every write lands where the same write to one flat buffer would', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const random = lcg(seed);
      const target = new Uint8Array(64);
      const expected = new Uint8Array(64);
      const model = new DataView(expected.buffer);
      const writer = new Writer(pieces(target, random));
      let at = 0;
      for (let step = 0; step < 40; step++) {
        const op = Math.floor(random() * 5);
        const size = [1, 2, 4, 8, Math.floor(random() * 20)][op]!;
        const value = Math.floor(random() * 2 ** 32);
        if (at + size > 64) {
          assert.throws(() => writer.write(new Uint8Array(size)), ChainError);
          continue;
        }
        if (op === 0) {
          writer.writeU8(value & 0xff);
          model.setUint8(at, value & 0xff);
        } else if (op === 1) {
          writer.writeU16(value & 0xffff);
          model.setUint16(at, value & 0xffff, true);
        } else if (op === 2) {
          writer.writeU32(value);
          model.setUint32(at, value, true);
        } else if (op === 3) {
          writer.writeU64(BigInt(value) * 3n);
          model.setBigUint64(at, BigInt(value) * 3n, true);
        } else {
          const bytes = Uint8Array.from({ length: size }, (_, i) => (value + i) & 0xff);
          writer.write(bytes);
          expected.set(bytes, at);
        }
        at += size;
        assert.equal(writer.bytesWritten, at);
      }
      assert.deepEqual(target, expected, `seed ${seed}`);
    }
  });
});
