// The daemon's console path with a real guest: its UART hands bytes over one per exit, and the
// daemon sends what arrives together as one notification, in order and exactly once.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import {
  buildFloodGuest,
  FLOOD_BANNER,
  FLOOD_LINE_BYTES,
  floodEndMarker,
} from '../../../tests/support/console-guests.js';
import { kvmTest } from '../../../tests/support/tags.js';
import { startTestDaemon, type TestDaemon } from './test-daemon.js';

const LINES = 256;
let guests: string;
let daemon: TestDaemon;

before(() => {
  guests = mkdtempSync(join(tmpdir(), 'vireo-console-output-'));
});
after(async () => {
  await daemon?.cleanup();
  rmSync(guests, { recursive: true, force: true });
});

kvmTest('a flood of UART bytes reaches a client whole, in order, in far fewer notifications', async () => {
  daemon = await startTestDaemon();
  const client = await daemon.client();
  const kernel = buildFloodGuest(guests, LINES);
  await client.call('vm.create', {
    name: 'flood',
    memoryBytes: 32 * 1024 * 1024,
    boot: { kind: 'kernel', kernel },
  });
  let text = '';
  let notifications = 0;
  client.on('console.output', (note) => {
    notifications++;
    text += Buffer.from(note.data, 'base64').toString('latin1');
  });
  await client.call('console.attach', { vm: 'flood', history: false });
  await client.call('vm.start', { vm: 'flood' });
  const deadline = Date.now() + 30_000;
  const waitFor = async (marker: string) => {
    while (!text.includes(marker)) {
      assert.ok(Date.now() < deadline, `no ${marker} in the console:\n${text.slice(-500)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  await waitFor(FLOOD_BANNER);
  text = '';
  notifications = 0;
  await client.call('console.write', { vm: 'flood', data: Buffer.from('g').toString('base64') });
  await waitFor(floodEndMarker(0));

  const lines = text.split('\r\n');
  assert.equal(lines.length, LINES + 2, 'every line once, then the marker');
  assert.ok(
    lines.slice(0, LINES).every((line) => line.length === FLOOD_LINE_BYTES - 2 && line.startsWith('0123')),
    'lines whole and in order',
  );
  const bytes = LINES * FLOOD_LINE_BYTES;
  assert.ok(notifications < bytes / 4, `${notifications} notifications for ${bytes} bytes`);
  await client.call('vm.stop', { vm: 'flood', force: true });
});
