// A guest may poke any register with any size and value, in any order. Every platform device must
// answer without throwing, keep its interrupt line to booleans, and keep its own invariants.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { prng } from '../../../../tests/support/prng.js';
import { Bus } from '../bus.js';
import { PciConfigSpace } from '../pci/config-space.js';
import { PciRoot } from '../pci/host-bridge.js';
import { AcpiPm } from './acpi-pm.js';
import { I8042 } from './i8042.js';
import { CmosRtc } from './rtc.js';
import { Uart8250 } from './uart8250.js';

test('random port and MMIO accesses never throw and never leave the devices inconsistent', () => {
  const random = prng(0x5eed).int;
  const levels = new Map<string, boolean>();
  const line = (name: string) => ({
    set: (level: boolean) => {
      assert.equal(typeof level, 'boolean');
      levels.set(name, level);
    },
  });
  let now = Date.UTC(2025, 5, 1);
  const pio = new Bus();
  const mmio = new Bus();
  const uart = new Uart8250({ irq: line('com1'), onOutput: () => {}, scheduleFlush: () => {} });
  const i8042 = new I8042({ onReset: () => resets++, keyboardIrq: line('kbd') });
  const rtc = new CmosRtc({
    now: () => now,
    irq: line('rtc'),
    memoryBytes: 4 * 2 ** 30,
    timers: { setTimeout: () => 0, clearTimeout: () => {} },
  });
  const pm = new AcpiPm({ sci: line('sci'), onPowerOff: () => {}, clockNs: () => BigInt(now) * 1_000_000n });
  let barMoves = 0;
  let resets = 0;
  const pci = new PciRoot({ mmio, pio, log: () => {}, onBarMove: () => barMoves++ });
  const fn = new PciConfigSpace({ vendor: 0x1af4, device: 0x1041, classCode: 0x02_00_00, interruptPin: 1 });
  fn.addBar({
    index: 0,
    kind: 'mem64',
    size: 0x4000,
    device: { read: (_o, d) => d.fill(0), write: () => {} },
  });
  fn.addBar({ index: 2, kind: 'io', size: 0x40, device: { read: (_o, d) => d.fill(0), write: () => {} } });
  fn.addCapability(0x09, new Uint8Array(14));
  pci.attach(1, fn);
  pio.register(0x3f8, 8, uart, 'com1');
  pio.register(0x60, 1, i8042.dataPort, 'i8042-data');
  pio.register(0x64, 1, i8042.commandPort, 'i8042-command');
  pio.register(0x70, 2, rtc, 'rtc');
  pio.register(0x600, 4, pm.eventBlock, 'pm1a-evt');
  pio.register(0x604, 2, pm.controlBlock, 'pm1a-cnt');
  pio.register(0x608, 4, pm.timer, 'pm-tmr');
  pio.register(0xcf8, 4, pci.addressPort, 'pci-address');
  pio.register(0xcfc, 4, pci.dataPort, 'pci-data');
  mmio.register(0xe000_0000, 0x1000_0000, pci.ecam, 'ecam');
  const ports = [0x3f8, 0x60, 0x64, 0x70, 0x600, 0x604, 0x608, 0xcf8, 0xcfc];
  const spans = [8, 1, 1, 2, 4, 2, 4, 4, 4];
  const sizes = [1, 2, 4];
  // Command, the BARs and the capability: where PCI state lives.
  const interestingRegister = () => [0x04, 0x10, 0x14, 0x18, 0x40][random(5)]!;

  for (let i = 0; i < 60_000; i++) {
    now += random(5);
    // The host side acts in between: typed input, the power button.
    if (random(500) === 0) uart.receive(Uint8Array.from({ length: random(40) }, () => random(256)));
    if (random(2000) === 0) pm.pressPowerButton();
    const which = random(ports.length + 1);
    const data = new Uint8Array(which === ports.length ? [1, 2, 4, 8][random(4)]! : sizes[random(3)]!);
    for (let b = 0; b < data.length; b++) data[b] = random(4) === 0 ? 0xff : random(256);
    const write = random(2) === 0;
    if (which === ports.length) {
      // ECAM: mostly our bus and slots, sometimes anywhere in the window.
      const offset =
        random(4) === 0
          ? random(0x1000_0000 - 8)
          : (random(2) << 15) |
            (random(2) === 0 ? interestingRegister() : random(0x1000 / data.length) * data.length);
      if (write) mmio.write(0xe000_0000 + offset, data);
      else mmio.read(0xe000_0000 + offset, data);
      continue;
    }
    // Keep the PCI address register pointing at real functions most of the time.
    if (ports[which] === 0xcf8 && write && data.length === 4 && random(2) === 0) {
      data.set([interestingRegister(), (random(2) << 3) | (random(4) === 0 ? random(8) : 0), 0, 0x80]);
    }
    const port = ports[which]! + random(Math.max(1, spans[which]! - data.length + 1));
    if (write) pio.write(port, data);
    else pio.read(port, data);
  }

  // The random guest did reach deep state: BARs moved, the reset line was pulled, lines toggled.
  assert.ok(barMoves > 0, 'BARs were placed and moved');
  assert.ok(resets > 0);
  assert.ok(levels.has('com1') && levels.has('kbd'), [...levels.keys()].join());
  // Invariants that a hostile guest must not break.
  assert.ok(uart.pendingInput >= 0 && uart.inputSpace >= 0);
  const ecamVendor = new Uint8Array(2);
  mmio.read(0xe000_8000, ecamVendor);
  assert.deepEqual([...ecamVendor], [0xf4, 0x1a], 'the virtio function still answers with its vendor');
  for (const m of mmio.describe()) {
    if (m.name === 'ecam') continue;
    assert.ok(m.base + m.length <= 0xe000_0000 || m.base >= 0xf000_0000, `${m.name} must not sit on ECAM`);
  }
  for (const [name, level] of levels) assert.equal(typeof level, 'boolean', name);
});
