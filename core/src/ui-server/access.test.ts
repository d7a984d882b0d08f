import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cookieValue, newToken, requestToken, tokenCookie, tokenMatches } from './access.js';
import { contentSecurityPolicy } from './csp.js';
import { mediaType, staticFilePath } from './static-files.js';

test('tokens are fresh, URL-safe and compared whole', () => {
  const token = newToken();
  assert.match(token, /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(newToken(), token);
  assert.equal(tokenMatches(token, token), true);
  assert.equal(tokenMatches(token, undefined), false);
  assert.equal(tokenMatches(token, token.slice(0, -1)), false);
  assert.equal(tokenMatches(token, `${token}x`), false);
});

test('the token comes from the query first, then from the port-named cookie', () => {
  const cookie = `a=1; ${tokenCookie(4000, 'from-cookie').split(';')[0]}; b=2`;
  assert.equal(cookieValue(cookie, 'vireo-token-4000'), 'from-cookie');
  assert.equal(requestToken(new URL('http://h/?token=q'), cookie, 4000), 'q');
  assert.equal(requestToken(new URL('http://h/'), cookie, 4000), 'from-cookie');
  assert.equal(requestToken(new URL('http://h/'), cookie, 4001), undefined, 'another port');
  assert.match(tokenCookie(4000, 't'), /HttpOnly/);
  assert.match(tokenCookie(4000, 't'), /SameSite=Strict/);
});

test('URL paths map into the root or nowhere', () => {
  assert.equal(staticFilePath('/r', '/'), '/r/index.html');
  assert.equal(staticFilePath('/r', '/assets/app.js'), '/r/assets/app.js');
  assert.equal(staticFilePath('/r', '/a%20b.css'), '/r/a b.css');
  for (const bad of [
    '/../etc/passwd',
    '/assets/../../x',
    '/%2e%2e/x',
    '/assets/%2e%2e%2f%2e%2e%2fx',
    '/assets/..%5c..%5cx',
    '/.env',
    '/./index.html',
    '//etc/passwd',
    '/a%00.js',
    '/%E0%A4%A',
    'relative',
  ]) {
    assert.equal(staticFilePath('/r', bad), undefined, bad);
  }
});

test('media types by extension, octet-stream otherwise', () => {
  assert.equal(mediaType('/r/index.html'), 'text/html; charset=utf-8');
  assert.equal(mediaType('/r/a.JS'), 'text/javascript; charset=utf-8');
  assert.equal(mediaType('/r/font.woff2'), 'font/woff2');
  assert.equal(mediaType('/r/blob'), 'application/octet-stream');
});

test('the policy allows only our own scripts and the given connections', () => {
  const policy = contentSecurityPolicy(['ws://127.0.0.1:1/api']);
  assert.match(policy, /default-src 'self'/);
  assert.match(policy, /script-src 'self'(;|$)/);
  assert.match(policy, /connect-src ws:\/\/127\.0\.0\.1:1\/api/);
  assert.match(policy, /object-src 'none'/);
  assert.doesNotMatch(policy, /unsafe-eval/);
  assert.match(contentSecurityPolicy([]), /connect-src 'none'/);
});
