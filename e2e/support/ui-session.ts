// A real daemon in its own temporary XDG folders, its browser mode started the way people start
// it (`vireo ui --no-open --json`), and a Chromium page on the address that command printed.

import type { Browser, Page } from 'playwright-core';
import { startTestDaemon, type TestDaemon } from '../../core/src/daemon/test-daemon.js';
import { startVireo } from '../../tests/support/vireo-process.js';
import { launchBrowser } from './browser.js';

/** Runs `vireo ui --no-open --json` against the daemon and returns the address it printed. */
export async function vireoUiUrl(daemon: TestDaemon): Promise<string> {
  const run = startVireo(['ui', '--no-open', '--json'], daemon.env);
  const { code } = await run.exited;
  if (code !== 0) throw new Error(`vireo ui exited with ${code}:\n${run.output()}`);
  const printed = JSON.parse(run.output()) as { url?: unknown };
  if (typeof printed.url !== 'string') throw new Error(`vireo ui printed no url: ${run.output()}`);
  return printed.url;
}

export interface UiSession {
  daemon: TestDaemon;
  url: string;
  browser: Browser;
  page: Page;
  /** Browser errors seen on the page (console errors, uncaught exceptions). */
  pageErrors: string[];
  close(): Promise<void>;
}

export async function openUiSession(options: { fakeMachine?: boolean } = {}): Promise<UiSession> {
  const daemon = await startTestDaemon({ fakeMachine: options.fakeMachine });
  let browser: Browser | undefined;
  try {
    const url = await vireoUiUrl(daemon);
    browser = await launchBrowser();
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') pageErrors.push(message.text());
    });
    const opened = browser;
    return {
      daemon,
      url,
      browser: opened,
      page,
      pageErrors,
      async close() {
        await opened.close();
        await daemon.cleanup();
      },
    };
  } catch (error) {
    await browser?.close();
    await daemon.cleanup();
    throw error;
  }
}
