import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EscapeParser } from './escape.js';

const bytes = (s: string) => new TextEncoder().encode(s);

test('plain input passes through untouched', () => {
  assert.deepEqual(new EscapeParser().feed(bytes('ls -l\r')), [bytes('ls -l\r')]);
});

test('Ctrl-A x quits, even when split across reads', () => {
  const parser = new EscapeParser();
  assert.deepEqual(parser.feed(bytes('ab\x01')), [bytes('ab')]);
  assert.deepEqual(parser.feed(bytes('xcd')), ['quit', bytes('cd')]);
});

test('Ctrl-A a and Ctrl-A Ctrl-A send one Ctrl-A; unknown keys are dropped', () => {
  const events = new EscapeParser().feed(bytes('\x01a\x01\x01\x01z\x01P\x01h'));
  assert.deepEqual(events, [Uint8Array.from([1, 1]), 'power-button', 'help']);
});

test('Ctrl-A b sends a break in its place among the typed keys', () => {
  assert.deepEqual(new EscapeParser().feed(bytes('a\x01bh')), [bytes('a'), 'break', bytes('h')]);
});
