import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConsoleEscapeParser } from './console-escape.js';

test('Ctrl-A d detaches; Ctrl-A a and Ctrl-A Ctrl-A send Ctrl-A; other keys after Ctrl-A are dropped', () => {
  const parser = new ConsoleEscapeParser();
  const result = parser.feed(Buffer.from('ls\x01a\x01\x01\x01zx\x01p\x01d'));
  assert.deepEqual([...result.forward], [...Buffer.from('ls\x01\x01x')]);
  assert.deepEqual(result.commands, ['power-button', 'detach']);
});

test('an escape split across reads still counts', () => {
  const parser = new ConsoleEscapeParser();
  assert.deepEqual(parser.feed(Buffer.from('x\x01')).commands, []);
  const second = parser.feed(Buffer.from('D'));
  assert.deepEqual(second.commands, ['detach']);
  assert.equal(second.forward.length, 0);
});
