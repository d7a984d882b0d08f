import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EscapeParser } from './escape.js';

const bytes = (s: string) => new TextEncoder().encode(s);

test('plain input passes through untouched', () => {
  const result = new EscapeParser().feed(bytes('ls -l\r'));
  assert.deepEqual(result.forward, bytes('ls -l\r'));
  assert.deepEqual(result.commands, []);
});

test('Ctrl-A x quits, even when split across reads', () => {
  const parser = new EscapeParser();
  const first = parser.feed(bytes('ab\x01'));
  assert.deepEqual(first.forward, bytes('ab'));
  assert.deepEqual(first.commands, []);
  const second = parser.feed(bytes('xcd'));
  assert.deepEqual(second.commands, ['quit']);
  assert.deepEqual(second.forward, bytes('cd'));
});

test('Ctrl-A a and Ctrl-A Ctrl-A send one Ctrl-A; unknown keys are dropped', () => {
  const result = new EscapeParser().feed(bytes('\x01a\x01\x01\x01z\x01P\x01h'));
  assert.deepEqual(result.forward, Uint8Array.from([1, 1]));
  assert.deepEqual(result.commands, ['power-button', 'help']);
});
