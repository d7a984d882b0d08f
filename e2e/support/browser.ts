// The browser the end-to-end tests and the UI benchmark drive: Debian's Chromium (apt package
// `chromium`, installed by scripts/setup) through playwright-core, headless.

import { accessSync, constants, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';

const repositoryRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Screenshots and other artefacts of a run (gitignored). */
export const ARTIFACTS_DIR = join(repositoryRoot, 'test-results', 'e2e');

export function chromiumPath(): string {
  return process.env.VIREO_CHROMIUM || '/usr/bin/chromium';
}

/** Why browser tests must skip on this machine, or false. */
export function browserSkipReason(): string | false {
  try {
    accessSync(chromiumPath(), constants.X_OK);
    return false;
  } catch {
    return `no Chromium at ${chromiumPath()} (apt package chromium; scripts/setup installs it)`;
  }
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    // Root cannot use Chromium's sandbox; the page is our own renderer from 127.0.0.1.
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  });
}

export function artifactPath(name: string): string {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  return join(ARTIFACTS_DIR, name);
}
