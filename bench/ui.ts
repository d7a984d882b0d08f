// The window's own costs, in Debian's Chromium against a real daemon (own XDG folders):
//  - from `vireo ui` (the command spawned) to an interactive VM list with 20 VMs defined (every
//    row drawn with its enabled Start button), beside `vireo list --json` answering the same
//    question on the terminal over the Unix socket;
//  - console throughput from a guest to xterm.js in browser mode: a freestanding PVH guest writes
//    N bytes to COM1 (rep outsb) when it reads a key; timed from the key typed in the page to its
//    end marker drawn by xterm.js, beside the same bytes to an API client on the Unix socket.
// Run: node dist/bench/ui.js [--runs N] [--kilobytes N]

/// <reference lib="dom" />

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Browser } from 'playwright-core';
import type { ApiClient } from '../core/src/api/client.js';
import { startTestDaemon, type TestDaemon } from '../core/src/daemon/test-daemon.js';
import { browserSkipReason, launchBrowser } from '../e2e/support/browser.js';
import { vireoUiUrl } from '../e2e/support/ui-session.js';
import {
  buildFloodGuest,
  FLOOD_BANNER,
  FLOOD_LINE_BYTES,
  floodEndMarker,
} from '../tests/support/console-guests.js';
import { kvmSkipReason } from '../tests/support/tags.js';
import { startVireo } from '../tests/support/vireo-process.js';
import { median, printFigure } from './lib/report.js';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '3' }, kilobytes: { type: 'string', default: '64' } },
});
const runs = Number(values.runs);
// Small rounds: the guest's UART (one exit per byte) is slow where KVM emulates guest kernel code.
const floodLines = Math.round((Number(values.kilobytes) * 1024) / FLOOD_LINE_BYTES);
const floodBytes = floodLines * FLOOD_LINE_BYTES;
const VM_COUNT = 20;

async function timeToInteractiveList(daemon: TestDaemon, browser: Browser) {
  const cli: number[] = [];
  const uiUrl: number[] = [];
  const ui: number[] = [];
  for (let run = 0; run < runs; run++) {
    let began = performance.now();
    const list = startVireo(['list', '--json'], daemon.env);
    const { code } = await list.exited;
    const listed = JSON.parse(list.output()) as unknown[] | { vms: unknown[] };
    const count = Array.isArray(listed) ? listed.length : listed.vms.length;
    if (code !== 0 || count !== VM_COUNT) throw new Error(`vireo list failed: ${list.output()}`);
    cli.push(performance.now() - began);

    // A new browser context each time: nothing cached from the run before.
    const context = await browser.newContext();
    const page = await context.newPage();
    began = performance.now();
    const url = await vireoUiUrl(daemon);
    uiUrl.push(performance.now() - began);
    await page.goto(url);
    await page.waitForFunction(
      (rows) => document.querySelectorAll('tbody tr button:not([disabled])').length >= rows,
      VM_COUNT,
      { polling: 'raf', timeout: 60_000 },
    );
    ui.push(performance.now() - began);
    await context.close();
  }
  return { cli: median(cli), uiUrl: median(uiUrl), ui: median(ui) };
}

/** Bytes per second of flood rounds received by an API client on the Unix socket. */
async function socketThroughput(client: ApiClient, firstRound: number) {
  let text = '';
  let wake = () => {};
  const onOutput = (note: { data: string }) => {
    text = (text + Buffer.from(note.data, 'base64').toString('latin1')).slice(-256);
    wake();
  };
  client.on('console.output', onOutput);
  await client.call('console.attach', { vm: 'flood', history: false });
  const rates: number[] = [];
  for (let round = firstRound; round < firstRound + runs; round++) {
    const marker = floodEndMarker(round);
    text = '';
    const began = performance.now();
    await client.call('console.write', { vm: 'flood', data: Buffer.from('g').toString('base64') });
    while (!text.includes(marker)) {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
    rates.push(floodBytes / ((performance.now() - began) / 1000));
  }
  await client.call('console.detach', { vm: 'flood' });
  client.off('console.output', onOutput);
  return median(rates);
}

/**
 * Bytes per second of flood rounds drawn by xterm.js in the page, from the key typed there; and of
 * the same rounds as an API client on the socket saw them meanwhile, which tells a guest slowed by
 * the browser's work from a window lagging behind its guest.
 */
async function browserThroughput(url: string, browser: Browser, observer: ApiClient, firstRound: number) {
  let text = '';
  let markerSeenAt = 0;
  let marker = '';
  const onOutput = (note: { data: string }) => {
    text = (text + Buffer.from(note.data, 'base64').toString('latin1')).slice(-256);
    if (markerSeenAt === 0 && marker && text.includes(marker)) markerSeenAt = performance.now();
  };
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  await page.goto(`${url}#/vm/flood/console`);
  // The history replayed: the end of the rounds before.
  await page.waitForFunction(
    (last) => document.querySelector('.xterm-rows')?.textContent?.includes(last),
    firstRound === 0 ? FLOOD_BANNER : floodEndMarker(firstRound - 1),
  );
  await page.locator('.xterm').click();
  observer.on('console.output', onOutput);
  await observer.call('console.attach', { vm: 'flood', history: false });
  const drawn: number[] = [];
  const observed: number[] = [];
  for (let round = firstRound; round < firstRound + runs; round++) {
    marker = floodEndMarker(round);
    text = '';
    markerSeenAt = 0;
    const began = performance.now();
    await page.keyboard.press('g');
    await page.waitForFunction(
      (end) => document.querySelector('.xterm-rows')?.textContent?.includes(end),
      marker,
      { polling: 'raf', timeout: 300_000 },
    );
    drawn.push(floodBytes / ((performance.now() - began) / 1000));
    observed.push(floodBytes / ((markerSeenAt - began) / 1000));
  }
  await observer.call('console.detach', { vm: 'flood' });
  observer.off('console.output', onOutput);
  await page.close();
  return { drawn: median(drawn), observed: median(observed) };
}

async function main(): Promise<void> {
  const skip = browserSkipReason() || kvmSkipReason();
  if (skip) {
    console.log(`bench/ui: skipped: ${skip}`);
    return;
  }
  const guests = mkdtempSync(join(tmpdir(), 'vireo-bench-ui-'));
  const daemon = await startTestDaemon();
  const browser = await launchBrowser();
  try {
    const client = await daemon.client();
    for (let i = 0; i < VM_COUNT; i++) {
      await client.call('vm.create', {
        name: `vm-${String(i).padStart(2, '0')}`,
        memoryBytes: 256 * 1024 * 1024,
      });
    }
    const list = await timeToInteractiveList(daemon, browser);
    printFigure(
      {
        title: `From the command to the VM list (${VM_COUNT} VMs; median of ${runs})`,
        unit: 'ms',
        baseline: 'vireo list --json (terminal, Unix socket)',
        better: 'lower',
        digits: 0,
      },
      [
        { name: 'vireo list --json (terminal, Unix socket)', value: list.cli },
        { name: 'vireo ui --no-open --json -> address printed', value: list.uiUrl },
        { name: 'vireo ui -> interactive list in Chromium', value: list.ui },
      ],
    );

    const kernel = buildFloodGuest(guests, floodLines);
    await client.call('vm.delete', { vm: 'vm-00' });
    await client.call('vm.create', {
      name: 'flood',
      memoryBytes: 64 * 1024 * 1024,
      boot: { kind: 'kernel', kernel },
    });
    await client.call('vm.start', { vm: 'flood' });
    const url = await vireoUiUrl(daemon);
    // Alternate so that host noise falls on both sides.
    const socket = await socketThroughput(client, 0);
    const page = await browserThroughput(url, browser, client, runs);
    const socketAgain = await socketThroughput(client, 2 * runs);
    const KIB = 1024;
    printFigure(
      {
        title: `Console throughput, guest COM1 to the reader (${floodBytes / 1024} KiB rounds; median of ${runs})`,
        unit: 'KiB/s',
        baseline: 'API client on the Unix socket',
        better: 'higher',
        digits: 2,
      },
      [
        { name: 'API client on the Unix socket', value: median([socket, socketAgain]) / KIB },
        { name: 'xterm.js in Chromium (WebSocket)', value: page.drawn / KIB },
        { name: '  the socket client meanwhile', value: page.observed / KIB },
      ],
    );
    await client.call('vm.stop', { vm: 'flood', force: true });
  } finally {
    await browser.close();
    await daemon.cleanup();
    rmSync(guests, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
