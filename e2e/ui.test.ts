/// <reference lib="dom" />
// The window in Debian's Chromium against a real daemon (own XDG folders) started through
// `vireo ui --no-open --json`, with real VMs: freestanding PVH guests that start at once. The
// Linux boot through the window is in boot.test.ts. Screenshots land in test-results/e2e/.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
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

/** A sparse file of `sizeBytes` with random bytes at the given [offset, length] places. */
function writeSparseImage(path: string, sizeBytes: number, data: [number, number][]): void {
  const fd = openSync(path, 'w');
  try {
    for (const [offset, length] of data) writeSync(fd, randomBytes(length), 0, length, offset);
    ftruncateSync(fd, sizeBytes);
  } finally {
    closeSync(fd);
  }
}

/** Whether two files hold the same bytes, compared a MiB at a time. */
function sameBytes(a: string, b: string): boolean {
  const [fa, fb] = [openSync(a, 'r'), openSync(b, 'r')];
  try {
    const [ba, bb] = [Buffer.alloc(MIB), Buffer.alloc(MIB)];
    for (let position = 0; ; position += MIB) {
      const na = readSync(fa, ba, 0, MIB, position);
      const nb = readSync(fb, bb, 0, MIB, position);
      if (na !== nb || !ba.subarray(0, na).equals(bb.subarray(0, nb))) return false;
      if (na === 0) return true;
    }
  } finally {
    closeSync(fa);
    closeSync(fb);
  }
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

  test('wizard: a disk image is copied into the VM folder behind a progress bar; a bad path is an error on its field', async () => {
    // A sparse image with real data in places (holes stay holes in the copy).
    const source = join(guests, 'root.raw');
    const sourceBytes = 384 * MIB;
    writeSparseImage(source, sourceBytes, [
      [0, 8 * MIB],
      [123_456_789, 3 * MIB],
      [sourceBytes - MIB, MIB],
    ]);

    // A page of its own whose socket passes through the test, in order, holding two moments for
    // screenshots: the first partial progress (later messages wait behind it) and the answer to
    // vm.create. The copy itself is real and runs on in the daemon meanwhile.
    const copying = await session.browser.newPage({ viewport: { width: 1200, height: 800 } });
    const creates: number[] = [];
    const hold = () => {
      let open = () => {};
      const opened = new Promise<void>((resolve) => {
        open = resolve;
      });
      return { open, opened };
    };
    const midway = hold();
    const answer = hold();
    let midwayHeld = false;
    await copying.routeWebSocket(/\/api/, (ws) => {
      const server = ws.connectToServer();
      ws.onMessage((message) => {
        const request = JSON.parse(String(message)) as { id?: number; method?: string };
        if (request.method === 'vm.create' && request.id !== undefined) creates.push(request.id);
        server.send(message);
      });
      let queue = Promise.resolve();
      server.onMessage((message) => {
        const note = JSON.parse(String(message)) as {
          id?: number;
          result?: unknown;
          params?: { kind?: string; done?: number; total?: number };
        };
        const isAnswer = note.id !== undefined && note.result !== undefined && creates.includes(note.id);
        const partial = note.params?.kind === 'progress' && note.params.done! < note.params.total!;
        queue = queue.then(async () => {
          if (isAnswer) await answer.opened;
          ws.send(message);
          if (partial && !midwayHeld) {
            midwayHeld = true;
            await midway.opened;
          }
        });
      });
    });
    await copying.goto(`${session.url}#/new`);
    await copying.getByLabel('Name').fill('copied');
    await copying.getByLabel('A disk image').check();
    assert.equal(
      await copying.getByLabel("Copy it into the VM's folder").isChecked(),
      true,
      'copying is the default for a disk image',
    );
    const missing = join(guests, 'missing.raw');
    await copying.getByRole('textbox', { name: 'Disk image' }).fill(missing);
    await copying.getByLabel('Kernel', { exact: true }).fill(echoKernel);
    await copying.getByRole('button', { name: /Review/ }).click();
    await copying.getByRole('heading', { name: 'Review' }).waitFor();
    assert.match((await copying.locator('.review').textContent()) ?? '', /\(a copy\)/);
    await copying.getByRole('button', { name: 'Create' }).click();
    // The daemon cannot read it: the wizard goes back to the field and says why there.
    await copying.locator('#field-image-error').getByText(`cannot read '${missing}': ENOENT`).waitFor();
    assert.equal(
      await copying.getByRole('textbox', { name: 'Disk image' }).getAttribute('aria-invalid'),
      'true',
    );
    await screenshot(copying, 'wizard-copy-error');

    await copying.getByRole('textbox', { name: 'Disk image' }).fill(source);
    assert.equal(
      await copying.locator('#field-image-error').count(),
      0,
      'the error goes once the path changes',
    );
    await copying.getByRole('button', { name: /Review/ }).click();
    await copying.getByRole('heading', { name: 'Review' }).waitFor();
    // Every state the bar is drawn in, as the DOM changes (not sampled: a fast copy is missed).
    await copying.evaluate(() => {
      const seen: { now: string | null; max: string | null }[] = [];
      (window as unknown as { progressSeen: typeof seen }).progressSeen = seen;
      new MutationObserver(() => {
        const bar = document.querySelector('[role="progressbar"]');
        const state = {
          now: bar?.getAttribute('aria-valuenow') ?? null,
          max: bar?.getAttribute('aria-valuemax') ?? null,
        };
        const last = seen.at(-1);
        if (bar && (last?.now !== state.now || last?.max !== state.max)) seen.push(state);
      }).observe(document.body, { subtree: true, childList: true, attributes: true });
    });
    await copying.getByRole('button', { name: 'Create' }).click();
    const bar = copying.getByRole('progressbar', { name: 'Copying the disk images' });
    await copying.locator('[role="progressbar"][aria-valuenow]').waitFor({ timeout: 60_000 });
    assert.ok(Number(await bar.getAttribute('aria-valuenow')) < sourceBytes, 'held part way');
    await screenshot(copying, 'wizard-copy-progress-midway');
    midway.open();
    await copying
      .locator(`[role="progressbar"][aria-valuenow="${sourceBytes}"]`)
      .waitFor({ timeout: 60_000 });
    assert.equal(await bar.getAttribute('aria-valuemax'), String(sourceBytes));
    assert.match((await bar.getAttribute('aria-valuetext')) ?? '', /^384M of 384M copied \(100%\)$/);
    // Once more, by keyboard and by click: the create is not sent twice.
    assert.equal(await copying.getByRole('button', { name: 'Creating…' }).isDisabled(), true);
    await copying.locator('form').evaluate((form: HTMLFormElement) => form.requestSubmit());
    assert.ok(await copying.getByRole('heading', { name: 'Review' }).isVisible(), 'still on the review');
    assert.equal(await copying.locator('[aria-invalid="true"], .step-invalid').count(), 0);
    await screenshot(copying, 'wizard-copy-progress');
    answer.open();

    await copying.getByRole('heading', { name: /copied/ }).waitFor({ timeout: 60_000 });
    assert.equal(creates.length, 2, 'one create for the missing image, one for the copy');
    const seen = await copying.evaluate(
      () =>
        (window as unknown as { progressSeen: { now: string | null; max: string | null }[] }).progressSeen,
    );
    const values = seen.filter((state) => state.now !== null);
    assert.ok(values.length > 0, `the bar showed bytes: ${JSON.stringify(seen)}`);
    assert.ok(
      values.every((state) => state.max === String(sourceBytes)),
      `over the image's size: ${JSON.stringify(seen)}`,
    );
    const done = values.map((state) => Number(state.now));
    assert.deepEqual(
      done,
      [...done].sort((a, b) => a - b),
      'never backwards',
    );
    console.log(`progress bar states seen: ${done.map((n) => Math.round(n / MIB)).join(', ')} MiB`);
    await copying.close();

    const { spec } = await client.call('vm.get', { vm: 'copied' });
    const { dataDir } = await client.call('daemon.info', {});
    assert.equal(spec.disks.length, 1);
    const disk = spec.disks[0]!;
    assert.equal(dirname(disk.path), join(dataDir, 'vms', spec.id), "the disk is in the VM's folder");
    assert.notEqual(disk.path, source);
    assert.equal(disk.readonly, false);
    assert.equal(statSync(disk.path).size, sourceBytes);
    assert.ok(sameBytes(disk.path, source), 'the copy holds the same bytes as the source');
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
