import assert from 'node:assert/strict';
import { after, describe } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { kvmTest } from '../../../tests/support/tags.js';
import { handleEmulationFailure } from '../x86/emulation-failure.js';
import { EventFd } from './kvm.js';
import { defaultIrqchipRoutes } from './structs.js';
import {
  createTestVm,
  HandlerBus,
  littleEndian,
  putLittleEndian,
  TestPort,
  type TestVm,
  testGuest,
} from './test-vm.js';
import type { VcpuSetOptions, VmStop } from './vcpu-set.js';
import { VcpuSet } from './vcpu-set.js';

const open: TestVm[] = [];
const started: VcpuSet[] = [];
after(async () => {
  // A test that failed midway may have left its vCPUs running: their threads would keep this
  // file's process alive, and closing their VM would fail (EBUSY).
  await Promise.all(started.map((set) => set.stop('test file done')));
  for (const vm of open) vm.close();
});

function testVm(options: Parameters<typeof createTestVm>[0]): TestVm {
  const vm = createTestVm(options);
  open.push(vm);
  return vm;
}

const fastPath = new URL('./fast-path-devices.js', import.meta.url);

/** Starts the vCPUs with a debug-exit port that stops the VM; returns the set. */
function start(vm: TestVm, pio: HandlerBus, extra: Partial<VcpuSetOptions> = {}): VcpuSet {
  let set: VcpuSet | undefined;
  pio.on(TestPort.DEBUG_EXIT, {
    write: (data) => set!.requestStop({ reason: 'shutdown', status: data[0]!, message: 'debug exit' }),
  });
  set = new VcpuSet({ vcpus: vm.vcpus, pio, mmio: new HandlerBus(), log: () => {}, ...extra });
  started.push(set);
  set.start();
  return set;
}

function runToStop(vm: TestVm, pio: HandlerBus, extra: Partial<VcpuSetOptions> = {}): Promise<VmStop> {
  return start(vm, pio, extra).done;
}

describe('vCPU runner', () => {
  kvmTest('port I/O exits reach TypeScript devices and in-data reaches the guest', async () => {
    const vm = testVm({ guest: testGuest('port-io') });
    const reports: number[] = [];
    let text = '';
    const pio = new HandlerBus()
      .on(TestPort.REPORT, { write: (data) => reports.push(littleEndian(data)) })
      .on(TestPort.REPORT_STRING, { write: (data) => (text += String.fromCharCode(data[0]!)) })
      .on(TestPort.QUERY, { read: (data) => putLittleEndian(data, 0x1000_0041) });
    const stop = await runToStop(vm, pio);
    assert.equal(stop.reason, 'shutdown');
    assert.equal(stop.status, 0x2a);
    assert.deepEqual(reports, [0x68, 0x69, 0x1234, 0xdead_beef, 0x1000_0042]);
    assert.equal(text, 'vireo');
  });

  kvmTest(
    'MMIO exits: writes arrive with their size, a read answer reaches the guest; ioeventfd takes a port without an exit',
    async () => {
      const vm = testVm({ guest: testGuest('mmio') });
      const notify = new EventFd();
      vm.vm.ioeventfd(notify.fd, 'pio', 0x514, 2);
      const writes: [number, number, number][] = [];
      const mmio = new HandlerBus()
        .on(0xd000_0000, {
          write: (data, address) => writes.push([address, data.length, littleEndian(data)]),
        })
        .on(0xd000_0008, {
          write: (data, address) => writes.push([address, data.length, littleEndian(data)]),
        })
        .on(0xd000_0010, {
          read: (data) => {
            assert.equal(data.length, 8);
            data.set([0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
          },
        });
      const reports: number[] = [];
      let notifyExits = 0;
      const pio = new HandlerBus()
        .on(TestPort.REPORT, { write: (data) => reports.push(littleEndian(data)) })
        .on(0x514, { write: () => notifyExits++ });
      const stop = await runToStop(vm, pio, { mmio });
      assert.equal(stop.reason, 'shutdown');
      assert.deepEqual(writes, [
        [0xd000_0000, 4, 0x1234_5678],
        [0xd000_0008, 1, 0xab],
      ]);
      assert.deepEqual(reports, [0x5566_7788, 0x1122_3344]);
      assert.equal(notifyExits, 0);
      assert.equal(notify.read(), 1n);
      notify.close();
    },
  );

  kvmTest(
    'worker fast path answers its ports in the vCPU thread; the rest go to the main thread',
    async () => {
      const exits = 500;
      const vm = testVm({ guest: testGuest('cpl3-loop'), param: BigInt(exits) });
      let mainThreadBench = 0;
      const pio = new HandlerBus().on(TestPort.BENCH, { write: () => mainThreadBench++ });
      const set = start(vm, pio, {
        workerDevices: { module: fastPath, options: { ports: [TestPort.BENCH] } },
      });
      const stop = await set.done;
      assert.equal(stop.reason, 'shutdown');
      assert.equal(mainThreadBench, 0);
      assert.deepEqual(set.stats(), [
        { localExits: exits, forwardedExits: 1, postedExits: 0, mainThreadExits: 0, thread: 'none' },
      ]);
    },
  );

  kvmTest(
    'without a fast path every exit is answered on the main thread (CPL3 loop with IOPL 3)',
    async () => {
      const exits = 300;
      const vm = testVm({ guest: testGuest('cpl3-loop'), param: BigInt(exits) });
      let bench = 0;
      const set = start(vm, new HandlerBus().on(TestPort.BENCH, { write: () => bench++ }));
      assert.equal((await set.done).reason, 'shutdown');
      assert.equal(bench, exits);
      assert.deepEqual(set.stats(), [
        { localExits: 0, forwardedExits: exits + 1, postedExits: 0, mainThreadExits: 0, thread: 'none' },
      ]);
    },
  );

  for (const maxDelayMs of [0, 5]) {
    kvmTest(
      `posted writes (maxDelayMs ${maxDelayMs}) reach the main-thread device in order without stopping the vCPU`,
      async () => {
        const exits = 400;
        const vm = testVm({ guest: testGuest('cpl3-loop'), param: BigInt(exits) });
        const order: number[] = [];
        let set: VcpuSet | undefined;
        const pio = new HandlerBus().on(TestPort.BENCH, { write: () => order.push(TestPort.BENCH) });
        pio.on(TestPort.DEBUG_EXIT, {
          write: (data) => {
            order.push(TestPort.DEBUG_EXIT);
            set!.requestStop({ reason: 'shutdown', status: data[0]!, message: 'debug exit' });
          },
        });
        set = new VcpuSet({
          vcpus: vm.vcpus,
          pio,
          mmio: new HandlerBus(),
          postedWrites: { pio: [TestPort.BENCH], maxDelayMs },
          log: () => {},
        });
        set.start();
        assert.equal((await set.done).reason, 'shutdown');
        // Every posted write was applied, and before the forwarded debug-exit write that followed them.
        assert.equal(order.length, exits + 1);
        assert.equal(order.at(-1), TestPort.DEBUG_EXIT);
        assert.deepEqual(set.stats(), [
          { localExits: 0, forwardedExits: 1, postedExits: exits, mainThreadExits: 0, thread: 'none' },
        ]);
      },
    );
  }

  kvmTest('interrupts reach the guest: PIC line, MSI, and irqfd through an MSI route', async () => {
    const vm = testVm({ guest: testGuest('interrupts') });
    const irqfd = new EventFd();
    vm.vm.setGsiRouting([
      ...defaultIrqchipRoutes(),
      { gsi: 24, kind: 'msi', addressLo: 0xfee0_0000, addressHi: 0, data: 0x42 },
    ]);
    vm.vm.irqfd(irqfd.fd, 24);
    const vectors: number[] = [];
    const pio = new HandlerBus()
      .on(TestPort.REPORT, { write: (data) => vectors.push(data[0]!) })
      .on(TestPort.READY, {
        write: (data) => {
          const stage = littleEndian(data);
          if (stage === 1) vm.vm.pulseIrq(5);
          else if (stage === 2) assert.equal(vm.vm.signalMsi(0xfee0_0000, 0, 0x41), true);
          else irqfd.write(1);
        },
      });
    const stop = await runToStop(vm, pio);
    irqfd.close();
    assert.equal(stop.reason, 'shutdown', stop.message);
    assert.deepEqual(vectors, [0x25, 0x41, 0x42]);
  });

  kvmTest('SMP: four vCPUs run at once, each with its own APIC id; stop kicks them out of HLT', async () => {
    const vm = testVm({ guest: testGuest('smp'), vcpus: 4 });
    const ids = new Set<number>();
    let set: VcpuSet | undefined;
    const pio = new HandlerBus().on(TestPort.REPORT, {
      write: (data) => {
        ids.add(littleEndian(data));
        if (ids.size === 4) set!.requestStop({ reason: 'stopped', message: 'all reported' });
      },
    });
    set = start(vm, pio);
    const stop = await set.done;
    assert.equal(stop.reason, 'stopped');
    assert.deepEqual([...ids].sort(), [0, 1, 2, 3]);
  });

  kvmTest('SMP: the BSP starts the other vCPUs with INIT/SIPI through its LAPIC', async () => {
    const vm = testVm({ guest: testGuest('smp-sipi'), vcpus: 3, apsWaitForSipi: true });
    const reports: number[] = [];
    let set: VcpuSet | undefined;
    const pio = new HandlerBus().on(TestPort.REPORT, {
      write: (data) => {
        reports.push(littleEndian(data));
        if (reports.length === 3) set!.requestStop({ reason: 'stopped', message: 'all reported' });
      },
    });
    set = start(vm, pio);
    const timer = setTimeout(() => set!.requestStop({ reason: 'stopped', message: 'timed out' }), 20_000);
    const stop = await set.done;
    clearTimeout(timer);
    assert.equal(stop.message, 'all reported', `reports so far: ${reports.map((r) => r.toString(16))}`);
    assert.equal(reports[0], 0);
    assert.deepEqual(reports.slice(1).sort(), [0x101, 0x102]);
  });

  kvmTest(
    'reset: an i8042 reset request reaches the device; a triple fault stops the VM as a reset',
    async () => {
      const vm = testVm({ guest: testGuest('reset'), param: 0n });
      let set: VcpuSet | undefined;
      const pio = new HandlerBus().on(0x64, {
        write: (data) => {
          if (data[0] === 0xfe) set!.requestStop({ reason: 'reset', message: 'i8042 reset' });
        },
      });
      set = start(vm, pio);
      assert.deepEqual(await set.done, { reason: 'reset', message: 'i8042 reset' });

      const faulting = testVm({ guest: testGuest('reset'), param: 1n });
      const stop = await runToStop(faulting, new HandlerBus());
      assert.equal(stop.reason, 'reset');
      assert.match(stop.message, /triple fault/);
    },
  );

  kvmTest(
    'startOnMainThread: vCPU 0 enters the guest on the main thread, whose exits are answered there; a VM that ends at once needs no worker',
    async () => {
      const vm = testVm({ guest: testGuest('port-io') });
      const reports: number[] = [];
      const order: string[] = [];
      const pio = new HandlerBus()
        .on(TestPort.REPORT, { write: (data) => reports.push(littleEndian(data)) })
        .on(TestPort.QUERY, { read: (data) => putLittleEndian(data, 0x1000_0041) });
      setImmediate(() => order.push('event loop'));
      const set = start(vm, pio, { startOnMainThread: true });
      // Every exit was answered before start() returned: the guest ran on this thread.
      assert.deepEqual(reports, [0x68, 0x69, 0x1234, 0xdead_beef, 0x1000_0042]);
      assert.equal(set.stats()[0]!.thread, 'none');
      const stop = await set.done;
      order.push('done');
      assert.equal(stop.reason, 'shutdown');
      assert.equal(stop.status, 0x2a);
      assert.ok(set.stats()[0]!.mainThreadExits >= 5);
      assert.equal(set.stats()[0]!.forwardedExits, 0, 'no worker ran the vCPU');
      // A VM that ended on the main thread reports it through the event loop, so that one that
      // resets at once and reboots cannot keep timers and stops from ever running.
      assert.deepEqual(order, ['event loop', 'done']);
    },
  );

  kvmTest(
    'startOnMainThread: the worker takes the vCPU over from the main thread, which then answers its exits as forwarded ones',
    async () => {
      // Reports its APIC id, then halts with interrupts off: only a kick gets the vCPU out.
      const vm = testVm({ guest: testGuest('smp') });
      const reports: number[] = [];
      const pio = new HandlerBus().on(TestPort.REPORT, { write: (data) => reports.push(littleEndian(data)) });
      const set = start(vm, pio, { startOnMainThread: true });
      assert.deepEqual(reports, [0], 'reported from the main thread, inside start()');
      assert.equal(set.stats()[0]!.mainThreadExits, 1);
      assert.equal(set.stats()[0]!.thread, 'worker', 'start() returns once the worker has the vCPU');
      await sleep(50);
      const stop = await set.stop('test over');
      assert.equal(stop.reason, 'stopped');
      assert.equal(set.stats()[0]!.thread, 'none');
    },
  );

  kvmTest('startOnMainThread: exits after the handoff reach the main-thread devices', async () => {
    const vm = testVm({ guest: testGuest('cpl3-loop'), param: 1n << 40n });
    let writes = 0;
    const pio = new HandlerBus().on(TestPort.BENCH, { write: () => writes++ });
    const set = start(vm, pio, { startOnMainThread: true });
    const onMain = set.stats()[0]!.mainThreadExits;
    assert.ok(onMain > 0, 'the guest looped on the main thread first');
    await sleep(200);
    assert.equal(set.stats()[0]!.thread, 'worker');
    assert.equal((await set.stop()).reason, 'stopped');
    const stats = set.stats()[0]!;
    assert.ok(stats.forwardedExits > 0, 'then on its worker, forwarding each exit');
    assert.equal(writes, onMain + stats.forwardedExits, 'every exit answered once');
  });

  kvmTest('pause parks every vCPU, resume runs them on, stop ends them', async () => {
    const vm = testVm({ guest: testGuest('cpl3-loop'), param: 1n << 40n });
    const set = start(vm, new HandlerBus(), { workerDevices: { module: fastPath } });
    await sleep(200);
    await set.pause();
    assert.equal(set.paused, true);
    const parkedAt = set.stats()[0]!.localExits;
    assert.ok(parkedAt > 0, 'the guest ran before the pause');
    await sleep(100);
    assert.equal(set.stats()[0]!.localExits, parkedAt, 'no exits while paused');
    // State can be read and written while parked.
    assert.ok(vm.vcpus[0]!.getRegs().rcx > 0n);
    set.resume();
    await sleep(200);
    assert.ok(set.stats()[0]!.localExits > parkedAt, 'runs again after resume');
    const stop = await set.stop();
    assert.equal(stop.reason, 'stopped');
  });

  kvmTest('dirty log reports the pages the guest wrote', async () => {
    const vm = testVm({ guest: testGuest('cpl3-loop'), param: 1n, logDirty: true });
    vm.vm.dirtyLog(0);
    const stop = await runToStop(vm, new HandlerBus());
    assert.equal(stop.reason, 'shutdown');
    const bitmap = vm.vm.dirtyLog(0);
    // iretq's frame went onto the boot stack at 0x8ff0 (page 8).
    assert.equal((bitmap[0]! >> 8n) & 1n, 1n);
    assert.equal((bitmap[0]! >> 0x200n) & 1n, 0n);
    assert.equal(vm.vm.dirtyLog(0)[0], 0n, 'reading resets the log');
  });

  kvmTest('int3 and fwait at CPL0 run, natively or through the emulation-failure policy', async (t) => {
    const vm = testVm({ guest: testGuest('breakpoint') });
    const reports: number[] = [];
    const notes: string[] = [];
    const pio = new HandlerBus().on(TestPort.REPORT, { write: (data) => reports.push(littleEndian(data)) });
    const stop = await runToStop(vm, pio, {
      onInternalError: (vcpu, info) => {
        if (info.suberror !== 1) return undefined;
        const outcome = handleEmulationFailure(vcpu, info.data);
        if (outcome.kind === 'fatal') return { reason: 'error', message: outcome.message };
        notes.push(outcome.note);
        return 'continue';
      },
    });
    assert.equal(stop.reason, 'shutdown', stop.message);
    // #BP handler ran with the return address just past the int3; then fwait went by.
    assert.deepEqual(reports, [3, 0, 0x9b]);
    t.diagnostic(notes.length ? `worked around: ${notes.join('; ')}` : 'the host ran int3 and fwait itself');
  });

  kvmTest('a vCPU thread that fails ends the VM with an error instead of crashing the process', async () => {
    const vm = testVm({ guest: testGuest('port-io') });
    const stop = await runToStop(vm, new HandlerBus(), {
      workerDevices: { module: new URL('./no-such-devices.js', import.meta.url) },
    });
    assert.equal(stop.reason, 'error');
    assert.match(stop.message, /vCPU 0 failed: .*no-such-devices/);
  });

  kvmTest('ioctl errors are exceptions naming the ioctl and errno, not crashes', () => {
    const vm = testVm({ guest: testGuest('port-io') });
    assert.throws(() => vm.vm.createVcpu(0), { code: 'EEXIST', message: /^KVM_CREATE_VCPU: EEXIST/ });
    assert.throws(() => vm.vm.setMemoryRegion(1, 0x100_0000, new Uint8Array(100)), {
      code: 'EINVAL',
      message: /page-aligned/,
    });
    assert.throws(() => vm.vcpus[0]!.setMsrs([{ index: 0xdead_beef, value: 1n }]), { code: 'EINVAL' });
  });
});
