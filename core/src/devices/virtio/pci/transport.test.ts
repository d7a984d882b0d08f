import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GuestMemory } from '../../../memory/guest-memory.js';
import { fillValue, readValue } from '../../bus.js';
import type { MsiMessage } from '../../pci/msix.js';
import { layoutRings } from '../queue/test-driver.js';
import type { VirtioDevice, VirtioDeviceContext } from './device.js';
import {
  COMMON_OFFSET,
  Common,
  DEVICE_CONFIG_OFFSET,
  ISR_OFFSET,
  type KickRegistrar,
  MSIX_TABLE_OFFSET,
  NO_VECTOR,
  NOTIFY_OFFSET,
  STATUS_ACKNOWLEDGE,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
  STATUS_FEATURES_OK,
  STATUS_NEEDS_RESET,
  VirtioPciTransport,
} from './transport.js';

class FakeDevice implements VirtioDevice {
  readonly deviceType = 4;
  readonly name = 'fake';
  readonly queueSizes = [16, 8];
  readonly deviceFeatures = 1n << 3n;
  readonly configSize = 8;
  readonly pciClass = 0xff00;
  context: VirtioDeviceContext | undefined;
  kicks: number[] = [];
  resets = 0;
  config = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
  readConfig(offset: number, data: Uint8Array): void {
    data.set(this.config.subarray(offset, offset + data.length));
  }
  writeConfig(): void {}
  activate(context: VirtioDeviceContext): void {
    this.context = context;
  }
  queueNotify(index: number): void {
    this.kicks.push(index);
  }
  reset(): void {
    this.resets++;
    this.context = undefined;
  }
  close(): void {}
}

function setup(options: { intx?: boolean; kicks?: KickRegistrar } = {}) {
  const memory = new GuestMemory([{ gpa: 0, bytes: new Uint8Array(1 << 20) }]);
  const device = new FakeDevice();
  const fired: number[] = [];
  const routes = new Map<number, MsiMessage | undefined>();
  const levels: boolean[] = [];
  const logs: string[] = [];
  const t = new VirtioPciTransport(device, {
    memory,
    msi: { route: (v, m) => routes.set(v, m), trigger: (v) => fired.push(v) },
    intx: options.intx ? { set: (level) => levels.push(level) } : undefined,
    kicks: options.kicks,
    log: (m) => logs.push(m),
  });
  const read = (offset: number, size: number) => {
    const data = new Uint8Array(size);
    t.barDevice.read(offset, data);
    return readValue(data);
  };
  const write = (offset: number, size: number, value: number) => {
    const data = new Uint8Array(size);
    fillValue(data, value);
    t.barDevice.write(offset, data);
  };
  const common = (reg: number, size: number, value?: number): number => {
    if (value === undefined) return read(COMMON_OFFSET + reg, size);
    write(COMMON_OFFSET + reg, size, value);
    return 0;
  };
  const negotiate = (high = 1, low = 1 << 29) => {
    common(Common.deviceStatus, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    common(Common.driverFeatureSelect, 4, 0);
    common(Common.driverFeature, 4, low);
    common(Common.driverFeatureSelect, 4, 1);
    common(Common.driverFeature, 4, high);
    common(Common.deviceStatus, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    return common(Common.deviceStatus, 1);
  };
  const setupQueue = (index: number, base: number, size: number) => {
    const rings = layoutRings(base, size);
    common(Common.queueSelect, 2, index);
    common(Common.queueSize, 2, size);
    common(Common.queueDesc, 4, rings.descTable);
    common(Common.queueDesc + 4, 4, 0);
    common(Common.queueDriver, 4, rings.availRing);
    common(Common.queueDevice, 4, rings.usedRing);
    common(Common.queueEnable, 2, 1);
    return rings;
  };
  return { t, device, fired, routes, levels, logs, read, write, common, negotiate, setupQueue };
}

test('queue notify addresses get kick registrations while the device is active, where its BAR is', () => {
  const events: string[] = [];
  const kicks: KickRegistrar = {
    register(address) {
      events.push(`+${address.toString(16)}`);
      return () => events.push(`-${address.toString(16)}`);
    },
  };
  const { t, common, negotiate, setupQueue } = setup({ kicks });
  const COMMAND_MEMORY = 0x2;
  t.config.setBarAddress(0, 0xc000_0000);
  t.config.configWrite(0x04, 2, COMMAND_MEMORY);
  assert.deepEqual(events, [], 'a placed BAR of an inactive device registers nothing');
  negotiate();
  setupQueue(0, 0x1000, 16);
  common(Common.deviceStatus, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
  assert.deepEqual(events, ['+c0003000', '+c0003004'], 'DRIVER_OK: one per queue');
  events.length = 0;
  t.config.setBarAddress(0, 0xc001_0000);
  assert.deepEqual(events, ['-c0003000', '-c0003004', '+c0013000', '+c0013004'], 'they follow the BAR');
  events.length = 0;
  t.config.configWrite(0x04, 2, 0);
  assert.deepEqual(events, ['-c0013000', '-c0013004'], 'memory decoding off: gone');
  t.config.configWrite(0x04, 2, COMMAND_MEMORY);
  events.length = 0;
  common(Common.deviceStatus, 1, 0);
  assert.deepEqual(events, ['-c0013000', '-c0013004'], 'a device reset removes them');
  events.length = 0;
  t.close();
  assert.deepEqual(events, [], 'nothing left to remove at close');
});

test('PCI identity and virtio capabilities', () => {
  const { t } = setup();
  assert.equal(t.config.configRead(0, 4), 0x1044_1af4);
  assert.equal(t.config.configRead(0x08, 1), 1, 'revision 1: modern device');
  const types: number[] = [];
  for (let cap = t.config.configRead(0x34, 1); cap !== 0; cap = t.config.configRead(cap + 1, 1)) {
    if (t.config.configRead(cap, 1) === 0x09) types.push(t.config.configRead(cap + 3, 1));
  }
  assert.deepEqual(types.sort(), [1, 2, 3, 4, 5]);
});

test('feature negotiation: offered bits, VERSION_1 required, unoffered bits refused', () => {
  const { common, negotiate, logs } = setup();
  common(Common.deviceFeatureSelect, 4, 1);
  assert.equal(common(Common.deviceFeature, 4), 1, 'VERSION_1');
  common(Common.deviceFeatureSelect, 4, 0);
  assert.equal(common(Common.deviceFeature, 4), (1 << 3) | (1 << 28) | (1 << 29));
  assert.equal(negotiate(0) & STATUS_FEATURES_OK, 0, 'no VERSION_1: FEATURES_OK does not stick');
  assert.match(logs.at(-1)!, /VERSION_1/);
  common(Common.deviceStatus, 1, 0);
  assert.equal(negotiate(1, 1 << 7) & STATUS_FEATURES_OK, 0, 'bit 7 was not offered');
  common(Common.deviceStatus, 1, 0);
  assert.equal(negotiate(1, (1 << 3) | (1 << 29)) & STATUS_FEATURES_OK, STATUS_FEATURES_OK);
  common(Common.driverFeatureSelect, 4, 0);
  common(Common.driverFeature, 4, 0);
  assert.equal(common(Common.driverFeature, 4), (1 << 3) | (1 << 29), 'features frozen after FEATURES_OK');
});

test('queues configure, activate at DRIVER_OK, and kick through the notify region', () => {
  const { t, device, common, negotiate, setupQueue, write, read } = setup();
  assert.equal(common(Common.numQueues, 2), 2);
  common(Common.queueSelect, 2, 1);
  assert.equal(common(Common.queueSize, 2), 8);
  assert.equal(common(Common.queueNotifyOff, 2), 1);
  negotiate();
  setupQueue(0, 0x1000, 16);
  assert.equal(common(Common.queueEnable, 2), 1);
  assert.equal(t.queues[0]!.eventIdx, true, 'EVENT_IDX negotiated reaches the queue');
  write(NOTIFY_OFFSET, 2, 0);
  assert.deepEqual(device.kicks, [], 'kicks before DRIVER_OK wait for activation');
  common(Common.deviceStatus, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
  assert.ok(device.context);
  assert.equal(device.context.features & (1n << 32n), 1n << 32n);
  write(NOTIFY_OFFSET + 4, 2, 1);
  assert.deepEqual(device.kicks, [1]);
  assert.equal(t.metrics.kicksByExit, 2);
  assert.equal(read(DEVICE_CONFIG_OFFSET + 2, 2), 0x0403);
  assert.equal(read(DEVICE_CONFIG_OFFSET + 7, 2), 0, 'past the device config');
});

test('MSI-X vectors: valid vectors stick, interrupts go to the queue vector', () => {
  const { t, device, fired, common, negotiate, setupQueue, write } = setup();
  let cap = t.config.configRead(0x34, 1);
  while (t.config.configRead(cap, 1) !== 0x11) cap = t.config.configRead(cap + 1, 1);
  t.config.configWrite(cap + 2, 2, 0x8000);
  for (let v = 0; v < 3; v++) {
    write(MSIX_TABLE_OFFSET + v * 16, 4, 0xfee0_0000);
    write(MSIX_TABLE_OFFSET + v * 16 + 8, 4, 0x40 + v);
    write(MSIX_TABLE_OFFSET + v * 16 + 12, 4, 0);
  }
  common(Common.configMsixVector, 2, 0);
  assert.equal(common(Common.configMsixVector, 2), 0);
  common(Common.configMsixVector, 2, 9);
  assert.equal(common(Common.configMsixVector, 2), NO_VECTOR, 'a vector past the table is refused');
  common(Common.configMsixVector, 2, 0);
  negotiate();
  setupQueue(0, 0x1000, 16);
  common(Common.queueMsixVector, 2, 2);
  common(Common.deviceStatus, 1, 15);
  device.context!.interruptQueue(0);
  assert.deepEqual(fired, [2]);
  device.context!.configChanged();
  assert.deepEqual(fired, [2, 0]);
  assert.equal(common(Common.configGeneration, 1), 1);
});

test('INTx: the ISR bit raises the line and reading ISR clears and lowers it', () => {
  const { device, levels, common, negotiate, setupQueue, read } = setup({ intx: true });
  negotiate();
  setupQueue(0, 0x1000, 16);
  common(Common.deviceStatus, 1, 15);
  device.context!.interruptQueue(0);
  assert.equal(levels.at(-1), true);
  assert.equal(read(ISR_OFFSET, 1), 1);
  assert.equal(levels.at(-1), false);
  assert.equal(read(ISR_OFFSET, 1), 0);
});

test('a bad queue configuration sets DEVICE_NEEDS_RESET; writing 0 resets everything', () => {
  const { t, device, common, negotiate, logs } = setup();
  negotiate();
  common(Common.queueSelect, 2, 0);
  common(Common.queueSize, 2, 16);
  common(Common.queueDesc, 4, 0x1001); // misaligned
  common(Common.queueDriver, 4, 0x2000);
  common(Common.queueDevice, 4, 0x3000);
  common(Common.queueEnable, 2, 1);
  assert.equal(common(Common.deviceStatus, 1) & STATUS_NEEDS_RESET, STATUS_NEEDS_RESET);
  assert.match(logs.at(-1)!, /needs reset: queue 0: .*aligned/);
  common(Common.deviceStatus, 1, 15);
  assert.equal(device.context, undefined, 'no activation while NEEDS_RESET');
  common(Common.deviceStatus, 1, 0);
  assert.equal(common(Common.deviceStatus, 1), 0);
  assert.equal(t.queues[0]!.descTableAddress, 0);
  assert.equal(t.metrics.resets, 1);
});

test('64-bit queue addresses through two dword halves', () => {
  const { common, t } = setup();
  common(Common.queueSelect, 2, 1);
  common(Common.queueDesc, 4, 0x2000);
  common(Common.queueDesc + 4, 4, 0x1);
  assert.equal(t.queues[1]!.descTableAddress, 0x1_0000_2000);
  assert.equal(common(Common.queueDesc + 4, 4), 1);
  common(Common.queueSelect, 2, 7);
  assert.equal(common(Common.queueSize, 2), 0, 'a queue that does not exist has size 0');
});

test('state round-trips into a fresh transport, which re-activates the device and keeps vectors', () => {
  const a = setup();
  let cap = a.t.config.configRead(0x34, 1);
  while (a.t.config.configRead(cap, 1) !== 0x11) cap = a.t.config.configRead(cap + 1, 1);
  a.t.config.configWrite(cap + 2, 2, 0x8000);
  a.write(MSIX_TABLE_OFFSET + 16, 4, 0xfee0_0000);
  a.write(MSIX_TABLE_OFFSET + 16 + 8, 4, 0x51);
  a.write(MSIX_TABLE_OFFSET + 16 + 12, 4, 0);
  a.negotiate();
  a.setupQueue(0, 0x1000, 16);
  a.common(Common.queueMsixVector, 2, 1);
  a.common(Common.deviceStatus, 1, 15);
  a.t.config.setBarAddress(0, 0xc000_0000);
  const state = JSON.parse(JSON.stringify(a.t.state()));

  const device = new FakeDevice();
  const fired: number[] = [];
  const routes = new Map<number, MsiMessage | undefined>();
  const b = new VirtioPciTransport(device, {
    memory: a.device.context!.memory,
    msi: { route: (v, m) => routes.set(v, m), trigger: (v) => fired.push(v) },
  });
  assert.equal(b.restore(state), undefined);
  assert.ok(device.context, 'DRIVER_OK state re-activates the device');
  assert.equal(b.queues[0]!.ready, true);
  assert.equal(b.config.barAddress(0), 0xc000_0000);
  assert.deepEqual(routes.get(1), { addressLo: 0xfee0_0000, addressHi: 0, data: 0x51 });
  device.context.interruptQueue(0);
  assert.deepEqual(fired, [1]);
  assert.match(b.restore({ ...state, queues: [] }) ?? '', /queues/);
});

test('the PCI configuration access window reaches BAR 0 registers through config space', () => {
  const { t } = setup();
  let cap = t.config.configRead(0x34, 1);
  while (!(t.config.configRead(cap, 1) === 0x09 && t.config.configRead(cap + 3, 1) === 5)) {
    cap = t.config.configRead(cap + 1, 1);
  }
  t.config.configWrite(cap + 4, 1, 0); // bar 0
  t.config.configWrite(cap + 8, 4, COMMON_OFFSET + Common.numQueues);
  t.config.configWrite(cap + 12, 4, 2);
  assert.equal(t.config.configRead(cap + 16, 2), 2, 'num_queues read through the window');
  t.config.configWrite(cap + 8, 4, COMMON_OFFSET + Common.deviceStatus);
  t.config.configWrite(cap + 12, 4, 1);
  t.config.configWrite(cap + 16, 1, STATUS_ACKNOWLEDGE);
  assert.equal(t.deviceStatus, STATUS_ACKNOWLEDGE, 'status written through the window');
  t.config.configWrite(cap + 12, 4, 3); // a length the window refuses
  t.config.configWrite(cap + 16, 1, 0);
  assert.equal(t.deviceStatus, STATUS_ACKNOWLEDGE);
});
