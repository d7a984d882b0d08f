import assert from 'node:assert/strict';
import { after, describe } from 'node:test';
import { kvmTest } from '../../../tests/support/tags.js';
import {
  createTestVm,
  HandlerBus,
  littleEndian,
  putLittleEndian,
  TestPort,
  type TestVm,
  testGuest,
} from './test-vm.js';
import { VcpuSet, type VmStop } from './vcpu-set.js';

const open: TestVm[] = [];
after(() => {
  for (const vm of open) vm.close();
});

function debugExit(set: () => VcpuSet): { write: (data: Uint8Array) => void } {
  return {
    write: (data) => set().requestStop({ reason: 'shutdown', status: data[0]!, message: 'debug exit' }),
  };
}

async function runToStop(vm: TestVm, pio: HandlerBus, mmio = new HandlerBus(), extra = {}): Promise<VmStop> {
  let set: VcpuSet | undefined;
  pio.on(
    TestPort.DEBUG_EXIT,
    debugExit(() => set!),
  );
  set = new VcpuSet({ vcpus: vm.vcpus, pio, mmio, ...extra });
  set.start();
  return set.done;
}

describe('vCPU runner', () => {
  kvmTest('port I/O exits reach TypeScript devices and in-data reaches the guest', async () => {
    const vm = createTestVm({ guest: testGuest('port-io') });
    open.push(vm);
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
});
