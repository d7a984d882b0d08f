import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createProgressDisplay, formatProgressBar } from './progress.js';

const MIB = 1024 * 1024;

test('the bar fills with the fraction done and says how much of what', () => {
  assert.equal(formatProgressBar(0, 4 * MIB, 10), '[..........]   0%  0B of 4M');
  assert.equal(formatProgressBar(MIB, 4 * MIB, 10), '[##........]  25%  1M of 4M');
  assert.equal(formatProgressBar(4 * MIB, 4 * MIB, 10), '[##########] 100%  4M of 4M');
  assert.equal(formatProgressBar(0, 0, 10), '[##########] 100%  0B of 0B', 'nothing to do is done');
});

test('on a terminal the bar is redrawn in place and its line ended at the finish', () => {
  let out = '';
  const display = createProgressDisplay('copying', 'bar', (text) => {
    out += text;
  });
  display.update(1, 2);
  display.update(2, 2);
  display.finish();
  assert.equal(out.split('\r').length, 3, 'two redraws');
  assert.ok(out.endsWith('\n'));
});

test('without a terminal: one line per tenth; with --json: every update as JSON', () => {
  const lines: string[] = [];
  const plain = createProgressDisplay('copying', 'lines', (text) => lines.push(text));
  for (let done = 0; done <= 100; done += 5) plain.update(done, 100);
  assert.equal(lines.length, 11);
  assert.equal(lines.at(-1), 'copying: 100% (100B of 100B)\n');

  const json: string[] = [];
  const display = createProgressDisplay('copying', 'json', (text) => json.push(text));
  display.update(5, 10);
  assert.deepEqual(JSON.parse(json[0]!), { progress: { operation: 'copying', done: 5, total: 10 } });
});
