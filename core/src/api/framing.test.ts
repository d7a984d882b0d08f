import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LineSplitter, MessageTooLargeError } from './framing.js';

test('lines split across chunks, several per chunk, empty lines kept', () => {
  const splitter = new LineSplitter(100);
  assert.deepEqual(splitter.push(Buffer.from('{"a":')), []);
  assert.deepEqual(splitter.push(Buffer.from('1}\n{"b":2}\n\n{"c"')), ['{"a":1}', '{"b":2}', '']);
  assert.deepEqual(splitter.push(Buffer.from(':3}\n')), ['{"c":3}']);
});

test('a multi-byte character split between chunks decodes whole', () => {
  const bytes = Buffer.from('"é"\n');
  const splitter = new LineSplitter(100);
  assert.deepEqual(splitter.push(bytes.subarray(0, 2)), []);
  assert.deepEqual(splitter.push(bytes.subarray(2)), ['"é"']);
});

test('a line over the cap throws, whether or not its newline has arrived', () => {
  const splitter = new LineSplitter(8);
  assert.deepEqual(splitter.push(Buffer.from('12345678\n')), ['12345678']);
  assert.throws(() => splitter.push(Buffer.from('123456789')), MessageTooLargeError);
  const other = new LineSplitter(8);
  other.push(Buffer.from('12345'));
  assert.throws(() => other.push(Buffer.from('6789\n')), MessageTooLargeError);
});
