import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeStreamFrame, StreamFrameDecoder } from './frame-stream.js';

test('frames survive any split of the stream', () => {
  const frames = [new Uint8Array(60).fill(1), new Uint8Array(1).fill(2), new Uint8Array(1514).fill(3)];
  const stream = Buffer.concat(frames.map((f) => encodeStreamFrame([f.subarray(0, 7), f.subarray(7)])));
  for (const step of [1, 3, 64, stream.length]) {
    const got: Uint8Array[] = [];
    const decoder = new StreamFrameDecoder((frame) => got.push(frame.slice()));
    for (let at = 0; at < stream.length; at += step) decoder.push(stream.subarray(at, at + step));
    assert.deepEqual(
      got.map((f) => Buffer.from(f)),
      frames.map((f) => Buffer.from(f)),
      `chunks of ${step}`,
    );
    assert.equal(decoder.buffered, 0);
  }
});

test('a length past the limit breaks the stream', () => {
  const decoder = new StreamFrameDecoder(() => {}, 100);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(101);
  assert.throws(() => decoder.push(header), /101 bytes is over the 100-byte limit/);
});
