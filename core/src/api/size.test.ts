import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatSize, parseSize } from './size.js';

test('parseSize accepts bytes and binary and decimal units', () => {
  assert.equal(parseSize('4096'), 4096);
  assert.equal(parseSize('512M'), 512 * 1024 * 1024);
  assert.equal(parseSize('512m'), 512 * 1024 * 1024);
  assert.equal(parseSize('2G'), 2 * 1024 ** 3);
  assert.equal(parseSize('1GiB'), 1024 ** 3);
  assert.equal(parseSize('1GB'), 1e9);
  assert.equal(parseSize('1.5G'), 1.5 * 1024 ** 3);
});

test('parseSize names what is wrong', () => {
  assert.throws(() => parseSize('lots'), /'lots' is not a size/);
  assert.throws(() => parseSize('12X'), /unknown unit 'X'/);
  assert.throws(() => parseSize('-1M'), /not a size/);
  assert.throws(() => parseSize('99999999999T'), /too large/);
});

test('formatSize prints whole units where it can', () => {
  assert.equal(formatSize(512 * 1024 * 1024), '512M');
  assert.equal(formatSize(3 * 1024 ** 3), '3G');
  assert.equal(formatSize(1536 * 1024 * 1024 + 1), '1.5G');
});
