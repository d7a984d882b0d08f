import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { rendererResponse } from './renderer-protocol.js';

let top: string;
let root: string;

before(() => {
  top = realpathSync(mkdtempSync(join(tmpdir(), 'vireo-protocol-')));
  root = join(top, 'dist');
  mkdirSync(join(root, 'assets'), { recursive: true });
  writeFileSync(join(root, 'index.html'), '<!doctype html><title>Vireo</title>');
  writeFileSync(join(root, 'assets', 'app.js'), 'export {};');
  writeFileSync(join(top, 'secret.txt'), 'SECRET');
  symlinkSync(join(top, 'secret.txt'), join(root, 'assets', 'link.txt'));
});
after(() => rmSync(top, { recursive: true, force: true }));

test('vireo://app/ serves index.html and assets with the policy that allows no connections', async () => {
  const index = await rendererResponse(root, 'vireo://app/');
  assert.equal(index.status, 200);
  assert.equal(await index.text(), '<!doctype html><title>Vireo</title>');
  assert.equal(index.headers.get('content-type'), 'text/html; charset=utf-8');
  const policy = index.headers.get('content-security-policy') ?? '';
  assert.match(policy, /script-src 'self'/);
  assert.match(policy, /connect-src 'none'/);
  const script = await rendererResponse(root, 'vireo://app/assets/app.js');
  assert.equal(script.headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.equal(await script.text(), 'export {};');
  const head = await rendererResponse(root, 'vireo://app/assets/app.js', 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(await head.text(), '');
  assert.equal((await rendererResponse(root, 'vireo://app/', 'POST')).status, 405);
});

test('nothing outside the bundle, nothing from another host', async () => {
  for (const url of [
    'vireo://app/../secret.txt',
    'vireo://app/%2e%2e/secret.txt',
    'vireo://app/assets/%2e%2e%2f%2e%2e%2fsecret.txt',
    'vireo://app/assets/link.txt',
    'vireo://app/assets/',
    'vireo://other/index.html',
    'file:///etc/passwd',
  ]) {
    const answer = await rendererResponse(root, url);
    assert.equal(answer.status, 404, url);
    assert.doesNotMatch(await answer.text(), /SECRET|root:x/, url);
  }
  assert.equal((await rendererResponse(root, 'not a url')).status, 404);
});
