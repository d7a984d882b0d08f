// The whole story in the window, with the built-in guest (a real Linux kernel): made in the
// wizard, started, its boot watched in the serial console, stopped; then its kernel kept up
// without an init and driven with magic SysRq typed in the console; then deleted. Boots take
// minutes where KVM emulates guest kernel code, so this is a [boot] test quick runs leave out.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import type { ApiClient } from '../core/src/api/client.js';
import { INIT_READY_MARKER, SHELL_PROMPT } from '../core/src/guest-material/test-protocol.js';
import { guestMaterial, materialSkipReason } from '../tests/support/material.js';
import { guestUserspaceSkipReason, slowBootSkipReason } from '../tests/support/tags.js';
import { artifactPath, browserSkipReason } from './support/browser.js';
import { consoleText, savedConsoleText, vmRow, waitForConsole } from './support/page.js';
import { openUiSession, type UiSession } from './support/ui-session.js';

const MINUTE = 60_000;

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: artifactPath(`${name}.png`), fullPage: true });
}

describe('a Linux VM through the window', {
  skip: slowBootSkipReason() || materialSkipReason() || browserSkipReason(),
}, () => {
  let session: UiSession;
  let client: ApiClient;
  let page: Page;

  const smallKernel = () => guestMaterial()!.smallKernel.bzImage;

  before(async () => {
    session = await openUiSession();
    client = await session.daemon.client();
    page = session.page;
  });
  after(async () => {
    await session?.close();
  });

  test('[boot] create with the built-in guest, start, watch the boot on the console, stop, SysRq typed in, delete', {
    timeout: 40 * MINUTE,
  }, async (t) => {
    await page.goto(session.url);
    await page.getByText('No virtual machines yet.').waitFor();
    await page.getByRole('link', { name: 'New VM' }).click();
    await page.getByLabel('Name').fill('Linux in the window');
    assert.ok(await page.getByLabel('The built-in guest').isChecked(), 'the built-in guest is the default');
    await page.getByRole('button', { name: 'Next' }).click();
    // One vCPU: this kernel boots with one where KVM emulates guest kernels (linux-boot.test.ts).
    await page.getByLabel('CPUs').fill('1');
    await page.getByLabel('Memory').fill('256M');
    for (const step of ['Disks', 'Network', 'Console', 'Review']) {
      await page.getByRole('button', { name: 'Next' }).click();
      await page.getByRole('heading', { name: step }).waitFor();
    }
    await page.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('heading', { name: /Linux in the window/ }).waitFor();
    const id = 'linux-in-the-window';
    assert.equal(new URL(page.url()).hash, `#/vm/${id}/console`);

    await page.getByRole('button', { name: 'Start' }).click();
    await page.locator('h1 .state-running').waitFor({ timeout: MINUTE });
    await waitForConsole(page, /Linux version/, 10 * MINUTE);
    await screenshot(page, 'boot-console-early');
    await waitForConsole(page, /Run \/init as init process/, 25 * MINUTE);
    await screenshot(page, 'boot-console');
    const log = await savedConsoleText(page);
    assert.match(log, /Linux version \d+\.\d+/, 'the kernel banner is in the terminal');
    assert.match(log, /ttyS0 at I\/O 0x3f8 \(irq = 4, base_baud = 115200\) is a 16550A/);
    assert.match(log, /Run \/init as init process/);

    await t.test(
      'type a command in the console and see its output',
      { skip: guestUserspaceSkipReason() },
      async () => {
        await waitForConsole(page, new RegExp(INIT_READY_MARKER), 5 * MINUTE);
        await waitForConsole(page, SHELL_PROMPT, 2 * MINUTE);
        await page.locator('.xterm').click();
        await page.keyboard.type('echo vireo-$((6*7))');
        await page.keyboard.press('Enter');
        await waitForConsole(page, /^vireo-42$/m, 2 * MINUTE);
        await screenshot(page, 'boot-console-shell');
      },
    );

    await page.getByRole('button', { name: 'Force off' }).click();
    await page.locator('h1 .state-stopped').waitFor({ timeout: MINUTE });
    assert.match(await consoleText(page), /\S/, 'the console keeps what the guest printed');

    // Typed input that needs no guest user space: the same kernel kept up without an init
    // (rdinit=/none, a root device that never comes), set in the settings tab, then magic SysRq
    // on its serial line: BREAK, then h for the help.
    await page.getByRole('tab', { name: 'Settings' }).click();
    await page.getByLabel('A Linux kernel').check();
    await page.getByLabel('Kernel', { exact: true }).fill(smallKernel());
    await page.getByLabel('Kernel command line').fill('console=ttyS0 rdinit=/none root=/dev/vdz rootwait');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved; the changes apply at the next start.').waitFor();
    await page.getByRole('tab', { name: 'Console' }).click();
    await page.getByRole('button', { name: 'Start' }).click();
    await page.locator('h1 .state-running').waitFor({ timeout: MINUTE });
    await waitForConsole(page, /Waiting for root device \/dev\/vdz/, 25 * MINUTE);
    await page.getByRole('button', { name: 'Send BREAK' }).click();
    await page.keyboard.press('h');
    await waitForConsole(page, /sysrq: HELP : /, 3 * MINUTE);
    await screenshot(page, 'boot-console-sysrq');
    assert.match(await savedConsoleText(page), /sysrq: HELP : .*show-registers\(p\)/);
    await page.getByRole('button', { name: 'Force off' }).click();
    await page.locator('h1 .state-stopped').waitFor({ timeout: MINUTE });

    const folder = join(session.daemon.paths.vmsDir, id);
    assert.ok(existsSync(folder));

    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('heading', { name: 'Virtual machines' }).waitFor();
    await vmRow(page, id).waitFor({ state: 'detached' });
    assert.deepEqual((await client.call('vm.list', {})).vms, []);
    assert.equal(existsSync(folder), false, 'the VM folder is gone');
    assert.deepEqual(session.pageErrors, []);
  });
});
