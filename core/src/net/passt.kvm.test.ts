// A real VM under the daemon with user networking: when its passt dies the VM keeps running, the
// event stream says the link went down and, once passt is restarted, up again.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { buildPvhGuest, HALT_FOREVER, serialWrite } from '../../../tests/support/pvh-guest.js';
import { kvmTest } from '../../../tests/support/tags.js';
import type { VmEvent } from '../api/schema.js';
import { startTestDaemon } from '../daemon/test-daemon.js';
import { findPasst } from './passt.js';

const dir = mkdtempSync(join(tmpdir(), 'vireo-passt-vm-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The passt started by the VM host `pid`, from /proc. */
function passtOf(pid: number): number | undefined {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
    .trim()
    .split(/\s+/)
    .filter(Boolean);
  return children.map(Number).find((child) => {
    try {
      return readFileSync(`/proc/${child}/comm`, 'utf8').startsWith('passt');
    } catch {
      return false;
    }
  });
}

async function until<T>(what: string, probe: () => T | undefined, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

kvmTest('passt killed under a running VM: network down and up events, the VM runs on', async (t) => {
  if (!findPasst()) {
    t.skip('passt is not installed (apt install passt)');
    return;
  }
  const daemon = await startTestDaemon();
  try {
    const client = await daemon.client();
    const kernel = buildPvhGuest(dir, 'idle', `${serialWrite('up\n')}\n${HALT_FOREVER}`);
    await client.call('vm.create', {
      name: 'netvm',
      memoryBytes: 64 * 1024 * 1024,
      boot: { kind: 'kernel', kernel, cmdline: '' },
      network: { mode: 'user' },
    });
    const events: VmEvent[] = [];
    client.on('event', (event) => events.push(event));
    await client.call('events.subscribe', {});
    const started = await client.call('vm.start', { vm: 'netvm' });
    const first = await until('passt', () => passtOf(started.status.pid!));
    process.kill(first, 'SIGKILL');
    const network = () => events.filter((e) => e.kind === 'network');
    await until('link down and up', () => (network().length >= 2 ? true : undefined));
    const [down, up] = network() as Extract<VmEvent, { kind: 'network' }>[];
    assert.equal(down!.up, false);
    assert.match(down!.message, /passt exited \(SIGKILL\)/);
    assert.equal(up!.up, true);
    const again = await until('a new passt', () => passtOf(started.status.pid!));
    assert.notEqual(again, first);
    const info = await client.call('vm.get', { vm: 'netvm' });
    assert.equal(info.status.state, 'running');
    assert.equal(info.status.pid, started.status.pid);
    await client.call('vm.stop', { vm: 'netvm', force: true });
    await until('passt gone with the VM', () => {
      try {
        process.kill(again, 0);
        return undefined;
      } catch {
        return true;
      }
    });
  } finally {
    await daemon.cleanup();
  }
});
