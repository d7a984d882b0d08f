// The whole device stack without KVM, the way a guest driver meets it: PCI config cycles through
// 0xCF8/0xCFC find the function and its virtio capabilities, firmware placed BAR 0 on the MMIO
// bus, the driver negotiates, sets up a queue, enables MSI-X, reads a sector through a notify
// write on the bus and gets its interrupt.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { GuestMemory } from '../../../memory/guest-memory.js';
import { Bus, fillValue, readValue } from '../../bus.js';
import { PciRoot } from '../../pci/host-bridge.js';
import type { MsiMessage } from '../../pci/msix.js';
import { Common, VirtioPciTransport } from '../pci/transport.js';
import { layoutRings, TestDriver } from '../queue/test-driver.js';
import { VirtioBlock } from './device.js';
import { BlockRequestType, BlockStatus } from './request.js';

const dir = mkdtempSync(join(tmpdir(), 'vireo-pci-stack-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a driver finds, configures and uses virtio-blk through PCI config cycles and the MMIO bus', async () => {
  const image = new Uint8Array(64 * 1024);
  for (let i = 0; i < image.length; i++) image[i] = (i * 13) & 0xff;
  const path = join(dir, 'disk.img');
  writeFileSync(path, image);

  const memory = new GuestMemory([{ gpa: 0, bytes: new Uint8Array(new SharedArrayBuffer(4 << 20)) }]);
  const pio = new Bus();
  const mmio = new Bus();
  const root = new PciRoot({ mmio, pio, log: () => {} });
  const fired: number[] = [];
  const routes = new Map<number, MsiMessage | undefined>();
  const transport = new VirtioPciTransport(new VirtioBlock({ path, name: 'vda' }), {
    memory,
    msi: { route: (v, m) => routes.set(v, m), trigger: (v) => fired.push(v) },
    log: (m) => assert.fail(m),
  });
  root.attach(3, transport.config);
  root.assignResources({ memory: { start: 0xc000_0000, end: 0xe000_0000 } });

  const cfg = (register: number, size: number, value?: number): number => {
    const address = new Uint8Array(4);
    fillValue(address, (0x8000_0000 | (3 << 11) | (register & 0xfc)) >>> 0);
    root.addressPort.write(0, address);
    const data = new Uint8Array(size);
    if (value === undefined) {
      root.dataPort.read(register & 3, data);
      return readValue(data);
    }
    fillValue(data, value);
    root.dataPort.write(register & 3, data);
    return 0;
  };
  const mem = (address: number, size: number, value?: number): number => {
    const data = new Uint8Array(size);
    if (value === undefined) {
      assert.ok(mmio.read(address, data), `nothing at 0x${address.toString(16)}`);
      return readValue(data);
    }
    fillValue(data, value);
    assert.ok(mmio.write(address, data), `nothing at 0x${address.toString(16)}`);
    return 0;
  };

  assert.equal(cfg(0, 4), 0x1042_1af4);
  const bar = ((cfg(0x10, 4) & ~0xf) >>> 0) + cfg(0x14, 4) * 2 ** 32;
  assert.ok(bar >= 0xc000_0000, 'firmware placed BAR 0');
  const caps = new Map<number, number>();
  let msixCap = 0;
  for (let cap = cfg(0x34, 1); cap !== 0; cap = cfg(cap + 1, 1)) {
    if (cfg(cap, 1) === 0x09) caps.set(cfg(cap + 3, 1), cfg(cap + 8, 4));
    if (cfg(cap, 1) === 0x11) msixCap = cap;
  }
  const common = bar + caps.get(1)!;
  const notify = bar + caps.get(2)!;
  const device = bar + caps.get(4)!;
  assert.equal(mem(device, 4), 128, 'capacity in sectors, low half');

  cfg(msixCap + 2, 2, 0x8000);
  const table = bar + ((cfg(msixCap + 4, 4) & ~7) >>> 0);
  for (let v = 0; v < 2; v++) {
    mem(table + 16 * v, 4, 0xfee0_0000);
    mem(table + 16 * v + 8, 4, 0x30 + v);
    mem(table + 16 * v + 12, 4, 0);
  }

  mem(common + Common.deviceStatus, 1, 3);
  mem(common + Common.driverFeatureSelect, 4, 1);
  mem(common + Common.driverFeature, 4, 1);
  mem(common + Common.driverFeatureSelect, 4, 0);
  mem(common + Common.driverFeature, 4, (1 << 29) | (1 << 28));
  mem(common + Common.deviceStatus, 1, 11);
  assert.equal(mem(common + Common.deviceStatus, 1), 11);
  mem(common + Common.configMsixVector, 2, 0);
  const layout = layoutRings(0x1000, 64);
  mem(common + Common.queueSelect, 2, 0);
  mem(common + Common.queueSize, 2, 64);
  mem(common + Common.queueMsixVector, 2, 1);
  mem(common + Common.queueDesc, 4, layout.descTable);
  mem(common + Common.queueDriver, 4, layout.availRing);
  mem(common + Common.queueDevice, 4, layout.usedRing);
  const notifyOff = mem(common + Common.queueNotifyOff, 2);
  mem(common + Common.queueEnable, 2, 1);
  mem(common + Common.deviceStatus, 1, 15);

  const driver = new TestDriver(memory, layout, 0x100000, 0x200000);
  const header = new Uint8Array(16);
  new DataView(header.buffer).setUint32(0, BlockRequestType.in, true);
  new DataView(header.buffer).setBigUint64(8, 4n, true);
  const added = driver.addChain([header], [512, 1], { indirect: true });
  mem(notify + 4 * notifyOff, 2, 0);
  const deadline = Date.now() + 5000;
  let used = driver.takeUsed();
  while (!used && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 2));
    used = driver.takeUsed();
  }
  assert.deepEqual(used, { id: added.head, len: 513 });
  assert.equal(memory.readU8(added.writable[1]!.addr), BlockStatus.ok);
  assert.deepEqual(memory.read(added.writable[0]!.addr, 512), image.subarray(2048, 2560));
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(fired, [1], 'the queue vector fired once');
  assert.deepEqual(routes.get(1), { addressLo: 0xfee0_0000, addressHi: 0, data: 0x31 });
  assert.equal(transport.metrics.kicksByExit, 1);

  // The guest moves BAR 0: the old addresses go dead, the new ones answer.
  cfg(0x04, 2, 0);
  cfg(0x10, 4, 0xd000_0000);
  cfg(0x04, 2, 2);
  assert.equal(mmio.read(common, new Uint8Array(1)), false);
  assert.equal(mem(0xd000_0000 + caps.get(1)! + Common.deviceStatus, 1), 15);
  transport.close();
});
