import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Bus, type BusDevice, fillValue, readValue } from '../bus.js';
import { PciConfigSpace } from './config-space.js';
import { type PciBarMove, PciRoot } from './host-bridge.js';

const address = (slot: number, register: number, fn = 0, bus = 0) =>
  (0x8000_0000 | (bus << 16) | (slot << 11) | (fn << 8) | register) >>> 0;

function mechanism1(root: PciRoot) {
  const select = (value: number) => {
    const data = new Uint8Array(4);
    fillValue(data, value);
    root.addressPort.write(0, data);
  };
  const read = (slot: number, register: number, size: number, fn = 0) => {
    select(address(slot, register & 0xfc, fn));
    const data = new Uint8Array(size);
    root.dataPort.read(register & 3, data);
    return readValue(data);
  };
  const write = (slot: number, register: number, size: number, value: number) => {
    select(address(slot, register & 0xfc));
    const data = new Uint8Array(size);
    fillValue(data, value);
    root.dataPort.write(register & 3, data);
  };
  return { select, read, write };
}

function ecam(root: PciRoot) {
  const offset = (slot: number, register: number, fn = 0, bus = 0) =>
    (bus << 20) | (slot << 15) | (fn << 12) | register;
  return {
    read: (slot: number, register: number, size: number, fn = 0, bus = 0) => {
      const data = new Uint8Array(size);
      root.ecam.read(offset(slot, register, fn, bus), data);
      return readValue(data);
    },
    write: (slot: number, register: number, size: number, value: number) => {
      const data = new Uint8Array(size);
      fillValue(data, value);
      root.ecam.write(offset(slot, register), data);
    },
  };
}

function barDevice(name: string): BusDevice & { name: string } {
  return { name, read: (_o, d) => d.fill(0x5a), write: () => {} };
}

function deviceWithBars() {
  const fn = new PciConfigSpace({ vendor: 0x1af4, device: 0x1042, classCode: 0x01_00_00, interruptPin: 1 });
  const notify = barDevice('bar0');
  const io = barDevice('bar2');
  const small = barDevice('bar3');
  fn.addBar({ index: 0, kind: 'mem64', size: 0x4000, prefetchable: true, device: notify });
  fn.addBar({ index: 2, kind: 'io', size: 0x20, device: io });
  fn.addBar({ index: 3, kind: 'mem32', size: 0x1000, device: small });
  return { fn, notify, io, small };
}

test('host bridge at 00:00.0 through 0xCF8/0xCFC: dword, word and byte reads at every offset', () => {
  const root = new PciRoot();
  const { read } = mechanism1(root);
  assert.equal(read(0, 0x00, 4), 0x1237_8086);
  assert.equal(read(0, 0x00, 2), 0x8086);
  assert.equal(read(0, 0x02, 2), 0x1237);
  assert.equal(read(0, 0x03, 1), 0x12);
  assert.equal(read(0, 0x01, 2), 0x3780, 'unaligned word at 0xCFD');
  assert.equal(read(0, 0x08, 4) >>> 8, 0x06_00_00, 'class: host bridge');
  assert.equal(read(0, 0x0b, 1), 0x06);
  assert.equal(read(0, 0x0e, 1) & 0x7f, 0, 'type-0 header');
});

test('the address register reads back as written (Linux type-1 probe); other widths are not it', () => {
  const root = new PciRoot();
  const { select } = mechanism1(root);
  root.addressPort.write(3, Uint8Array.of(0x01)); // outb(0x01, 0xCFB)
  select(0x8000_0000);
  const data = new Uint8Array(4);
  root.addressPort.read(0, data);
  assert.equal(readValue(data), 0x8000_0000);
  const byte = new Uint8Array(1);
  root.addressPort.read(0, byte);
  assert.equal(byte[0], 0xff, 'a byte read of 0xCF8 is not the address register');
});

test('disabled config cycles, empty slots, other functions and other buses read all-ones', () => {
  const root = new PciRoot();
  const { select, read, write } = mechanism1(root);
  assert.equal(read(5, 0x00, 2), 0xffff, 'empty slot: vendor 0xFFFF');
  assert.equal(read(5, 0x00, 4), 0xffff_ffff);
  assert.equal(read(0, 0x00, 4, 3), 0xffff_ffff, 'function 3 of the host bridge');
  write(5, 0x04, 2, 0x0007); // nothing there: harmless
  select(address(0, 0, 0, 1));
  const data = new Uint8Array(4);
  root.dataPort.read(0, data);
  assert.equal(readValue(data), 0xffff_ffff, 'bus 1 does not exist');
  select(0x0000_0000); // enable bit clear
  root.dataPort.read(0, data);
  assert.equal(readValue(data), 0xffff_ffff);
});

test('BAR sizing through config cycles: 64-bit prefetchable memory, I/O and 32-bit memory', () => {
  const root = new PciRoot();
  root.attach(3, deviceWithBars().fn);
  const { read, write } = mechanism1(root);
  assert.equal(read(3, 0x10, 4), 0x0000_000c, 'BAR0 idle: 64-bit prefetchable, unassigned');
  write(3, 0x10, 4, 0xffff_ffff);
  write(3, 0x14, 4, 0xffff_ffff);
  assert.equal(read(3, 0x10, 4), 0xffff_c00c, '16 KiB with the type bits kept');
  assert.equal(read(3, 0x14, 4), 0xffff_ffff, 'high half fully writable');
  write(3, 0x18, 4, 0xffff_ffff);
  assert.equal(read(3, 0x18, 4) & 0xffff, 0xffe1, '32 ports, I/O space bit');
  write(3, 0x1c, 4, 0xffff_ffff);
  assert.equal(read(3, 0x1c, 4), 0xffff_f000, '4 KiB, 32-bit non-prefetchable');
  write(3, 0x20, 4, 0xffff_ffff);
  assert.equal(read(3, 0x20, 4), 0, 'an unimplemented BAR reads zero after sizing');
  assert.equal(read(3, 0x30, 4), 0, 'no expansion ROM');
});

test('programming a BAR and enabling decoding maps its device; moving and disabling follow', () => {
  const mmio = new Bus();
  const pio = new Bus();
  const moves: PciBarMove[] = [];
  const root = new PciRoot({ mmio, pio, onBarMove: (m) => moves.push(m) });
  const { notify, io, fn } = deviceWithBars();
  root.attach(3, fn);
  const { read, write } = mechanism1(root);
  write(3, 0x10, 4, 0xc000_0000);
  write(3, 0x14, 4, 0x0000_0001); // 0x1_C000_0000: above 4 GiB
  write(3, 0x18, 4, 0xc000);
  assert.deepEqual(mmio.describe(), [], 'nothing decodes before COMMAND enables it');
  write(3, 0x04, 2, 0x0003);
  assert.equal(read(3, 0x04, 2) & 0x3, 0x3);
  const probe = new Uint8Array(4);
  assert.equal(mmio.read(0x1_c000_0010, probe), true);
  assert.equal(readValue(probe), 0x5a5a_5a5a);
  assert.equal(pio.read(0xc01f, new Uint8Array(1)), true);
  assert.equal(moves.length, 2);
  assert.deepEqual(
    moves.map((m) => [m.slot, m.index, m.from?.address, m.to?.address]),
    [
      [3, 0, undefined, 0x1_c000_0000],
      [3, 2, undefined, 0xc000],
    ],
  );
  // The guest moves BAR0 below 4 GiB.
  write(3, 0x14, 4, 0);
  write(3, 0x10, 4, 0xc001_0000);
  assert.equal(mmio.read(0x1_c000_0010, probe), false, 'old place unmapped');
  assert.equal(mmio.read(0xc001_3ffc, probe), true, 'new place mapped');
  assert.deepEqual(
    mmio.describe().map((m) => m.base),
    [0xc001_0000],
  );
  assert.equal(moves.at(-1)?.to?.address, 0xc001_0000);
  assert.equal(notify.name, 'bar0');
  write(3, 0x04, 2, 0x0000);
  assert.deepEqual(mmio.describe(), [], 'memory decoding off: unmapped');
  assert.deepEqual(pio.describe(), []);
  assert.equal(io.name, 'bar2');
});

test('a BAR placed over another mapping is left unmapped with a log line, not a throw', () => {
  const mmio = new Bus();
  mmio.register(0xc000_0000, 0x1000, barDevice('other'), 'other');
  const logs: string[] = [];
  const root = new PciRoot({ mmio, log: (m) => logs.push(m) });
  root.attach(4, deviceWithBars().fn);
  const { write } = mechanism1(root);
  write(4, 0x1c, 4, 0xc000_0000);
  write(4, 0x04, 2, 0x0002);
  assert.equal(mmio.describe().length, 1);
  assert.match(logs.join('\n'), /overlaps other/);
});

test('ECAM reaches the same functions as 0xCF8/0xCFC, in both directions', () => {
  const root = new PciRoot();
  root.attach(3, deviceWithBars().fn);
  const m1 = mechanism1(root);
  const e = ecam(root);
  for (const [slot, register, size] of [
    [0, 0x00, 4],
    [0, 0x08, 4],
    [3, 0x00, 4],
    [3, 0x02, 2],
    [3, 0x3d, 1],
    [3, 0x10, 4],
    [7, 0x00, 4],
  ] as const) {
    assert.equal(e.read(slot, register, size), m1.read(slot, register, size), `${slot}:${register}/${size}`);
  }
  e.write(3, 0x3c, 1, 0x0b);
  assert.equal(m1.read(3, 0x3c, 1), 0x0b, 'interrupt line written through ECAM, read through CF8');
  m1.write(3, 0x1c, 4, 0xc000_2000);
  assert.equal(e.read(3, 0x1c, 4), 0xc000_2000);
  assert.equal(e.read(3, 0x100, 4), 0, 'no extended capabilities on a conventional function');
  assert.equal(e.read(3, 0x00, 4, 0, 1), 0xffff_ffff, 'bus 1 is empty');
  assert.equal(e.read(9, 0x00, 2), 0xffff, 'empty slot');
});

test('assignResources places every BAR aligned in its window and enables decoding', () => {
  const mmio = new Bus();
  const pio = new Bus();
  const root = new PciRoot({ mmio, pio });
  root.attach(1, deviceWithBars().fn);
  root.attach(2, deviceWithBars().fn);
  const assigned = root.assignResources({
    memory: { start: 0xc000_0000, end: 0xe000_0000 },
    io: { start: 0xc000, end: 0x1_0000 },
  });
  assert.equal(assigned.length, 6);
  for (const bar of assigned) assert.equal(bar.address % bar.size, 0, 'aligned to its size');
  for (const space of ['memory', 'io']) {
    const bars = assigned.filter((b) => b.space === space).sort((a, b) => a.address - b.address);
    for (let i = 1; i < bars.length; i++) {
      assert.ok(bars[i - 1]!.address + bars[i - 1]!.size <= bars[i]!.address, `${space} BARs overlap`);
    }
  }
  assert.equal(mmio.describe().length, 4);
  assert.equal(pio.describe().length, 2);
  const { read } = mechanism1(root);
  const bar0 = assigned.find((b) => b.slot === 1 && b.index === 0)!;
  assert.equal((read(1, 0x10, 4) & ~0xf) >>> 0, bar0.address, 'the guest reads the assigned address');
  assert.equal(read(1, 0x04, 2) & 0x3, 0x3, 'memory and I/O decoding on');
});

test('0xCF9 reset control: setting the CPU reset bit resets the machine', () => {
  let resets = 0;
  const root = new PciRoot({ onReset: () => resets++ });
  root.addressPort.write(1, Uint8Array.of(0x02));
  assert.equal(resets, 0);
  root.addressPort.write(1, Uint8Array.of(0x06));
  assert.equal(resets, 1);
});

test('assignResources never lets a half-programmed BAR decode', () => {
  const placed: (number | undefined)[] = [];
  const { fn } = deviceWithBars();
  fn.onBarChange = (index, _before, after) => {
    if (index === 0) placed.push(after?.address);
  };
  const root = new PciRoot({ mmio: new Bus(), pio: new Bus() });
  root.attach(1, fn);
  const [bar0] = root
    .assignResources({
      memory: { start: 0xc000_0000, end: 0xe000_0000 },
      memory64: { start: 0x1_0000_0000, end: 0x2_0000_0000 },
    })
    .filter((b) => b.index === 0);
  assert.deepEqual(placed, [bar0!.address], 'BAR0 decodes once, at its final address above 4 GiB');
});

test('refreshBars maps BARs the VMM placed directly in a config space', () => {
  const mmio = new Bus();
  const root = new PciRoot({ mmio });
  const { fn } = deviceWithBars();
  root.attach(2, fn);
  fn.setBarAddress(3, 0xd000_0000);
  fn.configWrite(0x04, 2, 0x0002);
  assert.deepEqual(mmio.describe(), []);
  root.refreshBars();
  assert.deepEqual(
    mmio.describe().map((m) => m.base),
    [0xd000_0000],
  );
});

test('assignResources keeps 32-bit BARs below 4 GiB', () => {
  const logs: string[] = [];
  const root = new PciRoot({ log: (m) => logs.push(m) });
  root.attach(1, deviceWithBars().fn);
  // The 16 KiB 64-bit BAR goes first and lands at 4 GiB; the 32-bit BAR after it cannot follow.
  const assigned = root.assignResources({ memory: { start: 0xffff_f000, end: 0x1_0001_0000 } });
  assert.deepEqual(
    assigned.map((b) => [b.index, b.address]),
    [[0, 0x1_0000_0000]],
  );
  assert.match(logs.join('\n'), /BAR 3 \(4096 bytes\) does not fit/);
});

test('snapshot: the address register survives and restored functions get their BARs mapped', () => {
  const mmio = new Bus();
  const a = new PciRoot({ mmio });
  const { fn } = deviceWithBars();
  a.attach(1, fn);
  const m1 = mechanism1(a);
  m1.write(1, 0x1c, 4, 0xc000_0000);
  m1.write(1, 0x04, 2, 0x0002);
  m1.select(address(1, 0x3c));
  const rootState = JSON.parse(JSON.stringify(a.state()));
  const restoredBus = new Bus();
  const b = new PciRoot({ mmio: restoredBus });
  const copy = deviceWithBars().fn;
  b.attach(1, copy);
  copy.restore(fn.state());
  assert.equal(b.restore(rootState), undefined);
  assert.deepEqual(
    restoredBus.describe().map((m) => m.base),
    [0xc000_0000],
  );
  const data = new Uint8Array(4);
  b.dataPort.read(0, data);
  assert.equal(readValue(data) & 0xffff, 0x0100, 'the selected register is still 1:0x3c (pin INTA#, line 0)');
  assert.equal(b.functionAt(1), copy);
});

test('a 64-bit BAR programmed beyond 2^53 stays unmapped with a log line instead of throwing', () => {
  const mmio = new Bus();
  const logs: string[] = [];
  const root = new PciRoot({ mmio, log: (m) => logs.push(m) });
  root.attach(1, deviceWithBars().fn);
  const { write } = mechanism1(root);
  write(1, 0x10, 4, 0x1234_0000);
  write(1, 0x14, 4, 0xffff_ffff);
  write(1, 0x04, 2, 0x0002);
  assert.deepEqual(mmio.describe(), []);
  assert.match(logs.join('\n'), /beyond guest-physical space/);
  write(1, 0x14, 4, 0x0000_0007);
  assert.deepEqual(
    mmio.describe().map((m) => m.base),
    [0x7_1234_0000],
    'mapped once the guest fixes the high half',
  );
});
