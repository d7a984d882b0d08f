// Machine's pause, resume and reset on /dev/kvm with tiny PVH guests: one that counts on its serial
// line, one that prints a boot counter kept in RAM (so a reboot that did not clear RAM shows), and
// one that takes interrupts through the IOAPIC model and KVM's local APIC (the split irqchip).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import {
  ACPI_POWER_OFF,
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

/**
 * 32-bit PVH guest: IDT gates for vector 0x30 (COM1, IOAPIC pin 4, edge) and 0x31 (the SCI, pin 9,
 * level). The UART's THR-empty interrupt prints "U". The power button's SCI prints "P" and the
 * first time EOIs without clearing the status bit, so the line is still high at the EOI and the
 * IOAPIC must deliver it again; the second time it clears the status first. Then "D" and power off.
 * Handlers never return (this host's KVM cannot emulate a 32-bit iret): each resets the stack and
 * jumps to the next stage, which waits with sti; hlt.
 */
const INTERRUPT_GUEST = `
  cli
  mov %cs, %bx
  mov $handler_uart, %eax
  mov $idt + 0x30 * 8, %edi
  call set_gate
  mov $handler_sci, %eax
  mov $idt + 0x31 * 8, %edi
  call set_gate
  lidt idtr
  movl $0x1ff, 0xfee000f0          # LAPIC: software enable, spurious vector 0xff
  movl $0x10 + 2 * 4, 0xfec00000   # IOAPIC pin 4: vector 0x30, edge, fixed, APIC 0
  movl $0x30, 0xfec00010
  movl $0x10 + 2 * 4 + 1, 0xfec00000
  movl $0, 0xfec00010
  movl $0x10 + 2 * 9, 0xfec00000   # pin 9: vector 0x31, level
  movl $0x8031, 0xfec00010
  movl $0x10 + 2 * 9 + 1, 0xfec00000
  movl $0, 0xfec00010
  mov $0x602, %dx                  # PM1_EN: power button
  mov $0x100, %ax
  out %ax, %dx
  mov $0x3fc, %dx                  # MCR: OUT2 (the PC's IRQ enable)
  mov $0x08, %al
  out %al, %dx
  mov $0x3f9, %dx                  # IER: THR empty
  mov $0x02, %al
  out %al, %dx
1:
  sti
  hlt
  jmp 1b

wait_sci:
  mov $0x8ff0, %esp
  sti
  hlt
  jmp wait_sci

done:
  mov $0x3f8, %dx
  mov $'D', %al
  out %al, %dx
  ${ACPI_POWER_OFF}
  ${HALT_FOREVER}

set_gate:                          # %eax handler, %edi gate, %bx code selector
  mov %ax, (%edi)
  mov %bx, 2(%edi)
  movw $0x8e00, 4(%edi)
  shr $16, %eax
  mov %ax, 6(%edi)
  ret

handler_uart:
  mov $0x3f9, %dx                  # IER: off, or THR empty would interrupt again
  xor %al, %al
  out %al, %dx
  mov $0x3f8, %dx
  mov $'U', %al
  out %al, %dx
  movl $0, 0xfee000b0              # EOI
  jmp wait_sci

handler_sci:
  incl sci_count
  mov $0x3f8, %dx
  mov $'P', %al
  out %al, %dx
  cmpl $2, sci_count
  jb 1f
  mov $0x600, %dx                  # PM1_STS: clear the power button status (the SCI goes low)
  mov $0x100, %ax
  out %ax, %dx
  movl $0, 0xfee000b0              # EOI
  jmp done
1:
  movl $0, 0xfee000b0              # EOI with the line still high
  jmp wait_sci

  .balign 8
idt:
  .fill 0x32 * 8, 1, 0
idtr:
  .word 0x32 * 8 - 1
  .long idt
sci_count:
  .long 0
`;

kvmTest(
  'interrupts through the IOAPIC: an edge from the UART, a level SCI delivered again after an EOI while still high',
  async () => {
    const guest = await startGuest('ioapic', INTERRUPT_GUEST);
    try {
      await guest.waitFor(() => guest.console() === 'U', 'the UART interrupt');
      guest.machine.pressPowerButton();
      await guest.waitFor(() => guest.console().endsWith('D'), 'the SCI handled twice');
      assert.deepEqual(await guest.exit, { reason: 'poweroff' });
      assert.equal(
        guest.console(),
        'UPPD',
        'one UART interrupt, the SCI twice (once re-delivered), then done',
      );
    } finally {
      await guest.machine.stop();
    }
  },
);
