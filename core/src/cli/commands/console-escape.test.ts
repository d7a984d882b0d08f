import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ConsoleAction, ConsoleEscapeParser } from './console-escape.js';

/** Actions as text: bytes as strings, commands as <name>. */
function show(actions: ConsoleAction[]): string[] {
  return actions.map((action) =>
    action.kind === 'bytes' ? Buffer.from(action.bytes).toString('latin1') : `<${action.command}>`,
  );
}

test('Ctrl-A d detaches; Ctrl-A a and Ctrl-A Ctrl-A send Ctrl-A; other keys after Ctrl-A are dropped', () => {
  const parser = new ConsoleEscapeParser();
  const actions = parser.feed(Buffer.from('ls\x01a\x01\x01\x01zx\x01p\x01d'));
  assert.deepEqual(show(actions), ['ls\x01\x01x', '<power-button>', '<detach>']);
});

test('a BREAK and the SysRq key typed after it stay in order', () => {
  const parser = new ConsoleEscapeParser();
  assert.deepEqual(show(parser.feed(Buffer.from('a\x01bh\x01Bo'))), ['a', '<break>', 'h', '<break>', 'o']);
});

test('an escape split across reads still counts', () => {
  const parser = new ConsoleEscapeParser();
  assert.deepEqual(show(parser.feed(Buffer.from('x\x01'))), ['x']);
  assert.deepEqual(show(parser.feed(Buffer.from('D'))), ['<detach>']);
});
