// The KVM side of the data path without a guest: ioeventfd registration and its eventfd seen on
// the event loop, MSI routes and irqfds accepted by KVM, and everything released on close.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { kvmTest } from '../../../../../tests/support/tags.js';
import { EventFd, Kvm } from '../../../kvm/kvm.js';
import { defaultIrqchipRoutes } from '../../../kvm/structs.js';
import { KvmMsiSink, MsiRoutes } from '../../pci/kvm-msi.js';
import { KvmKicks } from './kvm-kicks.js';
import { punchHole, watchFd } from './native-io.js';

describe('native I/O helpers', () => {
  test('watchFd calls back on the event loop while an eventfd is readable, and stops', async () => {
    const eventFd = new EventFd();
    const seen: (bigint | null)[] = [];
    let wake = () => {};
    const stop = watchFd(eventFd.fd, () => {
      seen.push(eventFd.read());
      wake();
    });
    const next = () => new Promise<void>((resolve) => (wake = resolve));
    let fired = next();
    eventFd.write(3n);
    await fired;
    fired = next();
    eventFd.write(1n);
    await fired;
    stop();
    stop();
    eventFd.write(5n);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(seen, [3n, 1n]);
    eventFd.close();
  });

  test('punchHole rejects with the errno for a bad fd', async () => {
    await assert.rejects(punchHole(-1, 0, 4096), { code: 'EBADF' });
  });
});

describe('KVM wiring', () => {
  kvmTest(
    'kicks: an ioeventfd on an MMIO address, its eventfd watched, deassigned on unregister',
    async () => {
      const kvm = Kvm.open();
      const vm = kvm.createVm();
      try {
        vm.createIrqchip();
        const kicks = new KvmKicks(vm);
        let kicked = 0;
        const unregister = kicks.register(0xc000_3000, 2, () => kicked++);
        // Registering the same address twice is refused by KVM (EEXIST): proof it was assigned.
        assert.throws(() => kicks.register(0xc000_3000, 2, () => {}), /EEXIST/);
        unregister();
        const again = kicks.register(0xc000_3000, 2, () => kicked++);
        again();
        assert.equal(kicked, 0);
      } finally {
        vm.close();
        kvm.close();
      }
    },
  );

  kvmTest('MSI-X vectors: routes and irqfds accepted by KVM, triggers are eventfd writes', () => {
    const kvm = Kvm.open();
    const vm = kvm.createVm();
    try {
      vm.createIrqchip();
      const routes = new MsiRoutes(vm, defaultIrqchipRoutes());
      vm.setGsiRouting(routes.routes());
      const sink = new KvmMsiSink(vm, routes);
      sink.route(0, { addressLo: 0xfee0_0000, addressHi: 0, data: 0x41 });
      sink.route(1, { addressLo: 0xfee0_0000, addressHi: 0, data: 0x42 });
      sink.route(1, undefined);
      assert.equal(routes.routes().filter((r) => r.kind === 'msi').length, 1);
      sink.trigger(0);
      sink.trigger(5); // a vector never routed: nothing to signal
      sink.close();
      assert.equal(routes.routes().filter((r) => r.kind === 'msi').length, 0);
    } finally {
      vm.close();
      kvm.close();
    }
  });
});
