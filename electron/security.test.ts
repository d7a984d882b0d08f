import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applicationMenu } from './menu.js';
import { isAllowedNavigation, isPermissionAllowed, mainWindowOptions, opensExternally } from './security.js';

test('the window is isolated and sandboxed, without Node', () => {
  const options = mainWindowOptions({ preload: '/app/preload.cjs', devTools: false });
  const web = options.webPreferences!;
  assert.equal(web.preload, '/app/preload.cjs');
  assert.equal(web.contextIsolation, true);
  assert.equal(web.sandbox, true);
  assert.equal(web.nodeIntegration, false);
  assert.equal(web.nodeIntegrationInWorker, false);
  assert.equal(web.nodeIntegrationInSubFrames, false);
  assert.equal(web.webSecurity, true);
  assert.equal(web.webviewTag, false);
  assert.equal(web.navigateOnDragDrop, false);
  assert.equal(web.devTools, false);
  assert.equal(options.show, false, 'shown once painted');
});

test('navigation stays on the renderer; only web links leave, to the system browser', () => {
  assert.equal(isAllowedNavigation('vireo://app/index.html'), true);
  for (const url of [
    'https://example.com/',
    'file:///etc/passwd',
    'vireo://evil/',
    'javascript:alert(1)',
    '',
  ]) {
    assert.equal(isAllowedNavigation(url), false, url);
  }
  assert.equal(opensExternally('https://example.com/docs'), true);
  assert.equal(opensExternally('http://example.com/'), true);
  for (const url of [
    'file:///etc/passwd',
    'vireo://app/',
    'javascript:alert(1)',
    'smb://host/share',
    'nonsense',
  ]) {
    assert.equal(opensExternally(url), false, url);
  }
});

test('pages get no permissions but writing to the clipboard', () => {
  assert.equal(isPermissionAllowed('clipboard-sanitized-write'), true);
  for (const permission of [
    'media',
    'geolocation',
    'notifications',
    'openExternal',
    'clipboard-read',
    'usb',
  ]) {
    assert.equal(isPermissionAllowed(permission), false, permission);
  }
});

test('developer tools are in the menu only when asked for', () => {
  const roles = (devTools: boolean) =>
    JSON.stringify(applicationMenu({ devTools }))
      .match(/"role":"[A-Za-z]+"/g)
      ?.map((role) => role.slice(8, -1));
  assert.ok(roles(true)?.includes('toggleDevTools'));
  assert.ok(!roles(false)?.includes('toggleDevTools'));
  for (const role of ['quit', 'editMenu', 'reload', 'about']) assert.ok(roles(false)?.includes(role), role);
});
