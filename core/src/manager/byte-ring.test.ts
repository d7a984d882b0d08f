import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ByteRing } from './byte-ring.js';

test('keeps the last bytes across wrap-around', () => {
  const ring = new ByteRing(8);
  ring.push(Buffer.from('abc'));
  assert.equal(ring.contents().toString(), 'abc');
  ring.push(Buffer.from('defgh'));
  assert.equal(ring.contents().toString(), 'abcdefgh');
  ring.push(Buffer.from('ij'));
  assert.equal(ring.contents().toString(), 'cdefghij');
  ring.push(Buffer.from('0123456789xyz'));
  assert.equal(ring.contents().toString(), '56789xyz');
  ring.push(Buffer.from('!'));
  assert.equal(ring.contents().toString(), '6789xyz!');
});

test('many small pushes equal one big one', () => {
  const ring = new ByteRing(37);
  let all = '';
  for (let i = 0; i < 500; i++) {
    const piece = `${i},`;
    all += piece;
    ring.push(Buffer.from(piece));
  }
  assert.equal(ring.contents().toString(), all.slice(-37));
});

test('lastLines strips terminal escapes and carriage returns', () => {
  const ring = new ByteRing(1024);
  ring.push(Buffer.from('one\r\ntwo\r\n\x1b[1mthree\x1b[0m\r\nfour\r\n'));
  assert.equal(ring.lastLines(2), 'three\nfour');
  assert.equal(new ByteRing(0).lastLines(3), '');
});
