/// <reference lib="dom" />
// The window in Debian's Chromium against a real daemon (own XDG folders) started through
// `vireo ui --no-open --json`, with real VMs: freestanding PVH guests that start at once. The
// Linux boot through the window is in boot.test.ts. Screenshots land in test-results/e2e/.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import type { ApiClient } from '../core/src/api/client.js';
import { buildEchoGuest, ECHO_BANNER } from '../tests/support/console-guests.js';
import { kvmSkipReason } from '../tests/support/tags.js';
import { artifactPath, browserSkipReason } from './support/browser.js';
import { consoleText, savedConsoleText, vmRow, waitForConsole } from './support/page.js';
import { openUiSession, type UiSession } from './support/ui-session.js';

const MIB = 1024 * 1024;

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: artifactPath(`${name}.png`), fullPage: true });
}

/** Status of a plain HTTP request (no browser): what any local process would get. */
function httpStatus(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, body: '' });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the window in Chromium, browser mode', { skip: browserSkipReason() || kvmSkipReason() }, () => {
  let session: UiSession;
  let client: ApiClient;
  let page: Page;
  let guests: string;
  let echoKernel: string;

  before(async () => {
    guests = mkdtempSync(join(tmpdir(), 'vireo-e2e-guests-'));
    echoKernel = buildEchoGuest(guests);
    session = await openUiSession();
    client = await session.daemon.client();
    page = session.page;
  });
  after(async () => {
    await session?.close();
    rmSync(guests, { recursive: true, force: true });
  });

  test('the token check: without the token nothing is served and the API socket refuses', async () => {
    const url = new URL(session.url);
    const bare = `${url.origin}/`;
    const noToken = await httpStatus(bare);
    assert.equal(noToken.status, 403);
    assert.doesNotMatch(noToken.body, /<script|id="root"/, 'none of the window without the token');
    assert.equal((await httpStatus(`${bare}?token=wrong`)).status, 403);
    const socket = await httpStatus(`${url.origin}/api`, {
      Connection: 'Upgrade',
      Upgrade: 'websocket',
      'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
      Origin: url.origin,
    });
    assert.equal(socket.status, 403, 'the WebSocket is refused without the token');

    // A browser that never saw the token gets nothing either.
    const stranger = await session.browser.newPage();
    const response = await stranger.goto(bare);
    assert.equal(response?.status(), 403);
    assert.equal(await stranger.locator('#root').count(), 0);
    await stranger.screenshot({ path: artifactPath('token-refused.png') });
    await stranger.close();
  });

  test('an empty library says so and offers to create a VM', async () => {
    await page.goto(session.url);
    await page.getByText('No virtual machines yet.').waitFor();
    assert.ok(await page.getByRole('link', { name: 'Create one' }).isVisible());
    await screenshot(page, 'list-empty');
  });

  test('the list follows the event stream: VMs made and started elsewhere appear and move live', async () => {
    await client.call('vm.create', {
      name: 'echo',
      memoryBytes: 64 * MIB,
      boot: { kind: 'kernel', kernel: echoKernel },
    });
    await client.call('vm.create', {
      name: 'second',
      cpus: 2,
      memoryBytes: 128 * MIB,
      boot: { kind: 'kernel', kernel: echoKernel },
    });
    const echo = vmRow(page, 'echo');
    await echo.waitFor();
    assert.deepEqual(
      await page.locator('tbody tr th a').allInnerTexts(),
      ['echo', 'second'],
      'sorted by name',
    );
    const cells = await vmRow(page, 'second').locator('td').allTextContents();
    assert.deepEqual(cells.slice(0, 3), ['stopped', '2', '128M']);
    assert.equal(await echo.getByRole('button', { name: 'Shut down' }).isDisabled(), true);

    // Started from the window: the state and the buttons follow.
    await echo.getByRole('button', { name: 'Start' }).click();
    await page.locator('tr[data-vm="echo"][data-state="running"]').waitFor();
    assert.equal(await echo.getByRole('button', { name: 'Start' }).isDisabled(), true);
    assert.equal(await echo.getByRole('button', { name: 'Pause' }).isEnabled(), true);
    await echo.getByRole('button', { name: 'Pause' }).click();
    await page.locator('tr[data-vm="echo"][data-state="paused"]').waitFor();
    assert.equal(await echo.getByRole('button', { name: 'Resume' }).isEnabled(), true);
    await screenshot(page, 'list-running');

    // Stopped by someone else (the CLI, a script): the window hears it from the event stream.
    await client.call('vm.stop', { vm: 'echo', force: true });
    await page.locator('tr[data-vm="echo"][data-state="stopped"]').waitFor();
    await client.call('vm.delete', { vm: 'second' });
    await vmRow(page, 'second').waitFor({ state: 'detached' });
  });

  test('the serial console: output in xterm.js, typing reaches the guest, the terminal fits its box', async () => {
    await page.goto(`${session.url}#/vm/echo/console`);
    await page.getByRole('button', { name: 'Start' }).click();
    await page.locator('h1 .state-running').waitFor();
    await waitForConsole(page, new RegExp(ECHO_BANNER), 30_000);
    await page.locator('.xterm').click();
    await page.keyboard.type('typed in chromium');
    await page.keyboard.press('Enter');
    // The guest echoes each byte: the text comes back through the guest, not a local echo.
    await waitForConsole(page, /typed in chromium\s*$/m, 30_000);
    await screenshot(page, 'vm-console');
    assert.equal(await savedConsoleText(page), `${ECHO_BANNER}\ntyped in chromium\n`, 'Save text has it all');

    const columns = () =>
      page.evaluate(() => document.querySelector('.xterm-rows > div')?.textContent?.length ?? 0);
    const wide = await page.locator('.xterm-screen').boundingBox();
    await page.setViewportSize({ width: 800, height: 700 });
    await page.waitForFunction(
      (before) => (document.querySelector('.xterm-screen')?.getBoundingClientRect().width ?? before) < before,
      wide!.width,
    );
    assert.ok((await columns()) > 0);
    await page.setViewportSize({ width: 1200, height: 800 });
    assert.match(await consoleText(page), new RegExp(ECHO_BANNER), 'the history survives a resize');
  });

  test('details, log, and keyboard navigation between tabs', async () => {
    await page.getByRole('tab', { name: 'Console' }).focus();
    await page.keyboard.press('ArrowRight');
    await page.getByRole('tab', { name: 'Details', selected: true }).waitFor();
    assert.ok(
      await page.getByRole('tab', { name: 'Details' }).evaluate((tab) => tab === document.activeElement),
    );
    assert.match((await page.locator('.review').textContent()) ?? '', /VM host process \d+/);
    await screenshot(page, 'vm-details');
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowRight');
    await page.getByRole('tab', { name: 'Log', selected: true }).waitFor();
    assert.match((await page.locator('.log').textContent()) ?? '', /running/);
    await screenshot(page, 'vm-log');
  });

  test('settings of a stopped VM are edited in place and reach the daemon', async () => {
    await page.getByRole('button', { name: 'Force off' }).click();
    await page.locator('h1 .state-stopped').waitFor();
    await page.getByRole('tab', { name: 'Settings' }).click();
    const cpus = page.getByLabel('CPUs');
    await cpus.fill('0');
    await page.locator('#field-cpus-error').getByText('at least 1 CPU').waitFor();
    await cpus.fill('2');
    await page.getByLabel('Memory').fill('96M');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved; the changes apply at the next start.').waitFor();
    await screenshot(page, 'vm-settings');
    const spec = (await client.call('vm.get', { vm: 'echo' })).spec;
    assert.equal(spec.cpus, 2);
    assert.equal(spec.memoryBytes, 96 * MIB);
  });

  test('wizard: every field is checked as typed, with the error next to it; Next stops at errors', async () => {
    await page.goto(`${session.url}#/`);
    // Keyboard only: Tab to "New VM", Enter.
    await page.locator('body').focus();
    for (let i = 0; i < 5; i++) {
      await page.keyboard.press('Tab');
      if (
        await page.getByRole('link', { name: 'New VM' }).evaluate((link) => link === document.activeElement)
      )
        break;
    }
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'New virtual machine' }).waitFor();

    await page.getByRole('button', { name: 'Next' }).click();
    await page.locator('#field-name-error').getByText('a name is required').waitFor();
    assert.equal(await page.getByLabel('Name').getAttribute('aria-invalid'), 'true');
    await page.getByLabel('Name').fill(' padded');
    await page.locator('#field-name-error').getByText('a name does not start or end with spaces').waitFor();
    await page.getByLabel('Name').fill('echo');
    await page.locator('#field-name-error').getByText("a VM named 'echo' already exists").waitFor();
    await page.getByLabel('A Linux kernel').check();
    await page.getByLabel('Kernel', { exact: true }).fill('boot/vmlinuz');
    await page.locator('#field-kernel-error').getByText('must be an absolute path').waitFor();
    await screenshot(page, 'wizard-source-errors');
    await page.getByLabel('Kernel', { exact: true }).fill(echoKernel);
    await page.getByLabel('Name').fill('from-wizard');
    await page.getByRole('button', { name: 'Next' }).click();

    await page.getByRole('heading', { name: 'Resources' }).waitFor();
    await page.getByLabel('Memory').fill('33M');
    await page.locator('#field-memory-error').getByText('memory must be a multiple of 2M').waitFor();
    await page.getByLabel('Memory').fill('512G');
    await page
      .locator('#field-memory-error')
      .getByText(/^the host has .* of memory$/)
      .waitFor();
    await page.getByLabel('CPUs').fill('two');
    await page.locator('#field-cpus-error').getByText('CPUs is a whole number').waitFor();
    await page.getByRole('button', { name: 'Next' }).click();
    assert.ok(
      await page.getByRole('heading', { name: 'Resources' }).isVisible(),
      'Next stays on a step with errors',
    );
    await screenshot(page, 'wizard-resources-errors');
    await page.getByLabel('CPUs').fill('1');
    await page.getByLabel('Memory').fill('64M');
    await page.getByRole('button', { name: 'Next' }).click();

    await page.getByRole('heading', { name: 'Disks' }).waitFor();
    await page.getByRole('button', { name: 'Add a new disk' }).click();
    await page.getByLabel('New blank disk 1: size').fill('1000');
    await page.locator('#field-disks-0-size-error').getByText('a new disk is at least 1M').waitFor();
    await page.getByLabel('New blank disk 1: size').fill('16M');
    await page.getByRole('button', { name: 'Next' }).click();

    await page.getByRole('heading', { name: 'Network' }).waitFor();
    await page.getByLabel('Bridged (tap)').check();
    await page.getByLabel('MAC address (optional)').fill('01:00:00:00:00:01');
    await page.locator('#field-mac-error').getByText('a MAC address must be unicast').waitFor();
    await page.getByLabel('User-mode (passt)').check();
    await page.getByLabel('Port forwards (optional)').fill('tcp:8080:80, 99999:22');
    await page.locator('#field-forwards-error').getByText(/99999/).waitFor();
    await screenshot(page, 'wizard-network-errors');
    await page.getByLabel('None').check();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('heading', { name: 'Console' }).waitFor();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('heading', { name: 'Review' }).waitFor();
    await screenshot(page, 'wizard-review');
    await page.getByRole('button', { name: 'Create' }).click();

    await page.getByRole('heading', { name: /from-wizard/ }).waitFor();
    const spec = (await client.call('vm.get', { vm: 'from-wizard' })).spec;
    assert.equal(spec.memoryBytes, 64 * MIB);
    assert.equal(spec.disks.length, 1);
    assert.ok(existsSync(spec.disks[0]!.path), 'the new blank disk exists');
  });

  test('dark theme follows the system setting', async () => {
    await page.goto(`${session.url}#/`);
    await vmRow(page, 'echo').waitFor();
    const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await page.emulateMedia({ colorScheme: 'light' });
    const light = await background();
    await page.emulateMedia({ colorScheme: 'dark' });
    const dark = await background();
    assert.notEqual(light, dark);
    const luminance = (rgb: string) =>
      (rgb.match(/\d+/g) ?? []).slice(0, 3).reduce((sum, n) => sum + Number(n), 0);
    assert.ok(luminance(dark) < luminance(light), `dark ${dark} is darker than light ${light}`);
    await screenshot(page, 'list-dark');
    await page.goto(`${session.url}#/vm/echo/console`);
    await page.locator('.xterm').waitFor();
    await screenshot(page, 'vm-console-dark');
    await page.emulateMedia({ colorScheme: 'light' });
  });

  test('when the daemon goes away the window says so', async () => {
    await page.goto(`${session.url}#/`);
    await vmRow(page, 'echo').waitFor();
    assert.deepEqual(session.pageErrors, [], 'no errors in the page so far');
    await session.daemon.kill();
    await page
      .getByRole('alert')
      .getByText(/The connection to the daemon ended/)
      .waitFor();
    await screenshot(page, 'list-connection-lost');
  });
});
