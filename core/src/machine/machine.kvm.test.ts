// Machine's pause, resume and reset on /dev/kvm with tiny PVH guests: one that counts on its serial
// line, one that prints a boot counter kept in RAM (so a reboot that did not clear RAM shows).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import {
  bootCounterGuest,
  buildPvhGuest,
  countingGuest,
  HALT_FOREVER,
  I8042_RESET,
} from '../../../tests/support/pvh-guest.js';
import { kvmTest } from '../../../tests/support/tags.js';
import { MachineConfig } from './config.js';
import { Machine, type MachineOptions } from './machine.js';

const dir = mkdtempSync(join(tmpdir(), 'vireo-machine-kvm-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function startGuest(name: string, body: string, options: MachineOptions = {}) {
  const kernel = buildPvhGuest(dir, name, body);
  let console = '';
  const reboots: string[] = [];
  const machine = await Machine.create(
    MachineConfig.parse({ kernel, memoryBytes: 64 * 1024 * 1024, cpus: 1 }),
    {
      onConsoleOutput: (bytes) => {
        console += Buffer.from(bytes).toString('latin1');
      },
      log: () => {},
      onReboot: (message) => reboots.push(message),
    },
    options,
  );
  const exit = machine.run();
  const waitFor = async (done: () => boolean, what: string) => {
    const deadline = Date.now() + 30_000;
    while (!done()) {
      if (Date.now() > deadline) assert.fail(`${what}; console:\n${console.slice(-2000)}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  return { machine, exit, reboots, console: () => console, waitFor };
}

function ticks(console: string): number[] {
  return [...console.matchAll(/tick ([0-9a-f]{8})\n/g)].map((match) => Number.parseInt(match[1]!, 16));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

kvmTest('pause stops a counting guest where it is; resume carries on from the same count', async () => {
  const guest = await startGuest('counter', countingGuest());
  try {
    await guest.waitFor(() => ticks(guest.console()).length >= 3, 'the guest counted');
    // How long a tick takes here: the window below is several ticks long on any host.
    const began = performance.now();
    const before = ticks(guest.console()).length;
    await guest.waitFor(() => ticks(guest.console()).length >= before + 2, 'two more ticks');
    const tickMs = (performance.now() - began) / 2;

    await guest.machine.pause();
    const atPause = guest.console();
    await sleep(Math.max(200, tickMs * 5));
    assert.equal(guest.console(), atPause, 'nothing was printed while paused');

    guest.machine.resume();
    const last = ticks(atPause).at(-1)!;
    await guest.waitFor(() => ticks(guest.console()).length > ticks(atPause).length, 'ticks after resume');
    assert.equal(ticks(guest.console())[ticks(atPause).length], last + 1, 'the count went on');

    // A reset of a paused machine boots it again, running: the count starts over.
    await guest.machine.pause();
    const beforeReset = guest.console().length;
    await guest.machine.reset();
    await guest.waitFor(
      () => ticks(guest.console().slice(beforeReset)).length >= 2,
      'the guest counts again after the reset',
    );
    assert.deepEqual(ticks(guest.console().slice(beforeReset)).slice(0, 2), [1, 2]);
    assert.deepEqual(guest.reboots, ['reset by the VMM']);
  } finally {
    await guest.machine.stop();
  }
  assert.deepEqual(await guest.exit, { reason: 'stopped' });
});

kvmTest("the guest's kvmclock runs with the host, and stands still across a pause", async () => {
  const guest = await startGuest('clock', countingGuest());
  try {
    await guest.waitFor(() => ticks(guest.console()).length >= 1, 'the guest runs');
    const nsSince = (from: bigint) => Number(guest.machine.guestClockNs() - from) / 1e6;

    // Running: the clock advances about as much as the host's (loosely: the host here is busy).
    let hostBegan = performance.now();
    let guestBegan = guest.machine.guestClockNs();
    await sleep(1000);
    const runningMs = nsSince(guestBegan);
    const hostRunningMs = performance.now() - hostBegan;
    assert.ok(runningMs > hostRunningMs * 0.8, `running: guest ${runningMs} ms, host ${hostRunningMs} ms`);

    // Paused for a second: after resume the clock is where pause() left it, give or take the
    // moments around the pause and resume calls, far less than the second paused.
    await guest.machine.pause();
    hostBegan = performance.now();
    guestBegan = guest.machine.guestClockNs();
    await sleep(1000);
    guest.machine.resume();
    const pausedMs = nsSince(guestBegan);
    const hostPausedMs = performance.now() - hostBegan;
    assert.ok(hostPausedMs >= 1000);
    assert.ok(pausedMs < hostPausedMs / 4, `paused: guest ${pausedMs} ms, host ${hostPausedMs} ms`);

    // And it runs on from there.
    const resumedAt = guest.machine.guestClockNs();
    const ticksAtResume = ticks(guest.console()).length;
    await guest.waitFor(() => ticks(guest.console()).length > ticksAtResume + 1, 'ticks after resume');
    assert.ok(guest.machine.guestClockNs() > resumedAt, 'the clock runs after resume');
  } finally {
    await guest.machine.stop();
  }
});

kvmTest('reset() reboots in place: RAM cleared, the kernel loaded again', async () => {
  const guest = await startGuest('boot-counter', bootCounterGuest(HALT_FOREVER));
  const boots = () => guest.console().match(/boot \d\n/g) ?? [];
  try {
    await guest.waitFor(() => boots().length === 1, 'the first boot');
    await guest.machine.reset();
    await guest.waitFor(() => boots().length === 2, 'the second boot');
    await guest.machine.reset();
    await guest.waitFor(() => boots().length === 3, 'the third boot');
    assert.deepEqual(boots(), ['boot 1\n', 'boot 1\n', 'boot 1\n'], 'each boot found RAM cleared');
    assert.equal(guest.reboots.length, 2);
  } finally {
    await guest.machine.stop();
  }
  assert.deepEqual(await guest.exit, { reason: 'stopped' });
});

kvmTest(
  "a guest's own reset reboots it when onGuestReset is 'reboot', and ends the run by default",
  async () => {
    const rebooting = await startGuest('self-reset', bootCounterGuest(`${I8042_RESET}\n${HALT_FOREVER}`), {
      onGuestReset: 'reboot',
    });
    const boots = () => rebooting.console().match(/boot \d\n/g) ?? [];
    try {
      await rebooting.waitFor(() => boots().length >= 3, 'three boots');
      assert.ok(
        boots().every((line) => line === 'boot 1\n'),
        boots().join(''),
      );
      assert.ok(rebooting.reboots.every((message) => message === 'guest reset the machine'));
    } finally {
      await rebooting.machine.stop();
    }
    assert.deepEqual(await rebooting.exit, { reason: 'stopped' });

    const ending = await startGuest('self-reset-exit', bootCounterGuest(`${I8042_RESET}\n${HALT_FOREVER}`));
    assert.deepEqual(await ending.exit, { reason: 'reset' });
    assert.equal(ending.console(), 'boot 1\n');
  },
);
