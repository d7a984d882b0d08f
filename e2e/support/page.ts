// Reading the window the way a person sees it.

import { readFileSync } from 'node:fs';
import type { Locator, Page } from 'playwright-core';

export function vmRow(page: Page, id: string): Locator {
  return page.locator(`tr[data-vm="${id}"]`);
}

/** The terminal's visible rows as text (xterm's DOM renderer draws spaces as no-break spaces). */
export async function consoleText(page: Page): Promise<string> {
  const rows = await page.locator('.xterm-rows > div').allTextContents();
  return rows.map((row) => row.replaceAll('\u00a0', ' ').trimEnd()).join('\n');
}

/**
 * Waits until `pattern` matches the terminal; returns everything seen on the way. A boot log
 * scrolls past, so each look is collected rather than only the last screen.
 */
export async function waitForConsole(
  page: Page,
  pattern: RegExp,
  timeoutMs: number,
  seen: string[] = [],
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await consoleText(page);
    seen.push(text);
    if (pattern.test(text)) return seen.join('\n');
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${pattern} in the console; it shows:\n${text}`,
      );
    }
    await page.waitForTimeout(250);
  }
}

/** The whole terminal (scrollback included) through the console's "Save text" button. */
export async function savedConsoleText(page: Page): Promise<string> {
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Save text' }).click(),
  ]);
  const path = await download.path();
  return readFileSync(path, 'utf8');
}
