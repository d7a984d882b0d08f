import assert from 'node:assert/strict';
import { test } from 'node:test';
import { prng } from '../../../../tests/support/prng.js';
import { IOAPIC_PINS } from '../../x86/layout.js';
import { fillValue, readValue } from '../bus.js';
import type { MsiMessage } from '../pci/msix.js';
import { Ioapic, type IoapicOptions } from './ioapic.js';

const MASKED = 1 << 16;
const LEVEL = 1 << 15;
const REMOTE_IRR = 1 << 14;
const LOGICAL = 1 << 11;
const LOWEST_PRIORITY = 1 << 8;
const NMI = 4 << 8;
const EXTINT = 7 << 8;

function setup(options: IoapicOptions = {}) {
  const delivered: { pin: number; message: MsiMessage }[] = [];
  const routes: { pin: number; message: MsiMessage | undefined }[] = [];
  const logs: string[] = [];
  const ioapic = new Ioapic(
    {
      deliver: (message, pin) => delivered.push({ pin, message }),
      routeChanged: (pin, message) => routes.push({ pin, message }),
    },
    { log: (line) => logs.push(line), ...options },
  );
  const access = (offset: number, size: number, value?: number) => {
    const d = new Uint8Array(size);
    if (value === undefined) {
      ioapic.read(offset, d);
      return readValue(d);
    }
    fillValue(d, value);
    ioapic.write(offset, d);
    return 0;
  };
  const readRegister = (register: number) => {
    access(0x00, 4, register);
    return access(0x10, 4);
  };
  const writeRegister = (register: number, value: number) => {
    access(0x00, 4, register);
    access(0x10, 4, value);
  };
  /** Programs `pin` as Linux does: high dword first, then the low dword. */
  const program = (pin: number, low: number, destination = 0) => {
    writeRegister(0x11 + 2 * pin, destination << 24);
    writeRegister(0x10 + 2 * pin, low);
  };
  const vectors = () => delivered.map((d) => d.message.data & 0xff);
  return { ioapic, delivered, routes, logs, access, readRegister, writeRegister, program, vectors };
}

test('ID, version and arbitration registers', () => {
  const s = setup({ id: 3 });
  assert.equal(s.readRegister(0x00), 3 << 24);
  assert.equal(s.readRegister(0x01), 0x0017_0011, 'version 0x11, 24 entries');
  assert.equal(s.readRegister(0x02), 3 << 24, 'arbitration reads the ID');
  s.writeRegister(0x00, 0xfa00_0000);
  assert.equal(s.readRegister(0x00), 0x0a00_0000, 'only bits 24-27 are the ID');
  s.writeRegister(0x01, 0xffff_ffff);
  s.writeRegister(0x02, 0xffff_ffff);
  assert.equal(s.readRegister(0x01), 0x0017_0011, 'version is read-only');
  assert.equal(s.readRegister(0x02), 0x0a00_0000, 'arbitration is read-only');
  assert.throws(() => setup({ id: 16 }), RangeError);
});

test('IOREGSEL reads back its low byte; every entry resets to masked', () => {
  const s = setup();
  s.access(0x00, 4, 0x1234_5678);
  assert.equal(s.access(0x00, 4), 0x78);
  for (let pin = 0; pin < IOAPIC_PINS; pin++) {
    assert.equal(s.readRegister(0x10 + 2 * pin), MASKED);
    assert.equal(s.readRegister(0x11 + 2 * pin), 0);
  }
  assert.equal(s.readRegister(0x10 + 2 * IOAPIC_PINS), 0, 'past the table reads 0');
  assert.equal(s.readRegister(0x03), 0);
  assert.equal(s.readRegister(0xff), 0);
});

test('redirection entries keep writable bits; delivery status and remote IRR are read-only', () => {
  const s = setup();
  s.writeRegister(0x10, 0xffff_ffff);
  assert.equal(s.readRegister(0x10), 0x0001_afff, 'no delivery status, no remote IRR, no reserved bits');
  s.writeRegister(0x11, 0xffff_ffff);
  assert.equal(s.readRegister(0x11), 0xfffe_0000, 'destination and extended destination only');
  assert.equal(s.readRegister(0x12), MASKED, 'pin 1 untouched');
});

test('the message: vector, delivery mode, destination, logical mode, trigger', () => {
  const s = setup();
  s.program(5, 0x31 | LOWEST_PRIORITY | LOGICAL | LEVEL | MASKED, 0x0f);
  assert.deepEqual(s.ioapic.message(5), {
    addressLo: 0xfee0_f004,
    addressHi: 0,
    data: 0x31 | (1 << 8) | (1 << 15) | (1 << 14),
  });
  s.program(6, 0x40, 0x02);
  assert.deepEqual(
    s.ioapic.message(6),
    { addressLo: 0xfee0_2000, addressHi: 0, data: 0x40 },
    'edge: no assert bit',
  );
  s.program(7, 0x02 | NMI | LEVEL, 0x01);
  assert.equal(s.ioapic.message(7).data, 0x402, 'NMI goes as an edge whatever the trigger bit');
});

test('extended destination ID (entry bits 49-55) lands in MSI address bits 5-11', () => {
  const s = setup();
  // APIC ID 0x2345 = 0x45 in bits 0-7, 0x46 (0x2345 >> 8) in bits 8-14.
  s.writeRegister(0x11 + 2 * 9, (0x45 << 24) | (0x23 << 17));
  s.writeRegister(0x10 + 2 * 9, 0x51);
  assert.equal(s.ioapic.message(9).addressLo, (0xfee0_0000 | (0x45 << 12) | (0x23 << 5)) >>> 0);
  s.ioapic.setLevel(9, true);
  assert.equal(s.delivered[0]!.message.addressLo, 0xfee4_5460);
});

test('edge pin: one delivery per rising edge while unmasked, none while held high', () => {
  const s = setup();
  s.program(4, 0x24, 1);
  const com1 = s.ioapic.line(4);
  com1.set(true);
  com1.set(true);
  assert.equal(s.delivered.length, 1);
  assert.deepEqual(s.delivered[0], { pin: 4, message: { addressLo: 0xfee0_1000, addressHi: 0, data: 0x24 } });
  com1.set(false);
  assert.equal(s.delivered.length, 1);
  com1.set(true);
  assert.equal(s.delivered.length, 2);
  s.ioapic.endOfInterrupt(0x24);
  assert.equal(s.delivered.length, 2, 'EOI does not touch edge pins');
  assert.equal(s.readRegister(0x10 + 8) & REMOTE_IRR, 0, 'edge pins never set remote IRR');
});

test('edge pin: an edge while masked is lost, and unmasking with the line high sends nothing', () => {
  const s = setup();
  s.program(4, 0x24 | MASKED);
  s.ioapic.setLevel(4, true);
  s.program(4, 0x24);
  assert.equal(s.delivered.length, 0);
  s.ioapic.setLevel(4, false);
  s.ioapic.setLevel(4, true);
  assert.equal(s.delivered.length, 1, 'the next edge is delivered');
});

test('level pin: delivers once, remote IRR holds it until the EOI, then again while still high', () => {
  const s = setup();
  s.program(9, 0x29 | LEVEL);
  const sci = s.ioapic.line(9);
  sci.set(true);
  assert.deepEqual(s.vectors(), [0x29]);
  assert.equal(s.readRegister(0x10 + 18) & REMOTE_IRR, REMOTE_IRR);
  sci.set(true);
  assert.equal(s.delivered.length, 1, 'no re-delivery while remote IRR is set');
  s.ioapic.endOfInterrupt(0x30);
  assert.equal(s.delivered.length, 1, 'another vector does not count');
  s.ioapic.endOfInterrupt(0x29);
  assert.deepEqual(s.vectors(), [0x29, 0x29], 'line still high: delivered again');
  assert.equal(s.readRegister(0x10 + 18) & REMOTE_IRR, REMOTE_IRR);
  sci.set(false);
  assert.equal(s.readRegister(0x10 + 18) & REMOTE_IRR, REMOTE_IRR, 'lowering the line keeps remote IRR');
  s.ioapic.endOfInterrupt(0x29);
  assert.equal(s.readRegister(0x10 + 18) & REMOTE_IRR, 0);
  assert.equal(s.delivered.length, 2, 'line low: nothing more');
  sci.set(true);
  assert.equal(s.delivered.length, 3);
});

test('level pin: masked while high delivers on unmask; a masked pin with remote IRR waits for EOI', () => {
  const s = setup();
  s.program(10, 0x3a | LEVEL | MASKED);
  s.ioapic.setLevel(10, true);
  assert.equal(s.delivered.length, 0);
  assert.equal(s.readRegister(0x10 + 20) & REMOTE_IRR, 0);
  s.writeRegister(0x10 + 20, 0x3a | LEVEL);
  assert.deepEqual(s.vectors(), [0x3a], 'unmasking a high level line delivers');
  s.writeRegister(0x10 + 20, 0x3a | LEVEL | MASKED);
  s.ioapic.endOfInterrupt(0x3a);
  assert.equal(s.readRegister(0x10 + 20) & REMOTE_IRR, 0, 'the EOI clears remote IRR while masked');
  assert.equal(s.delivered.length, 1, 'but a masked pin does not send');
  s.writeRegister(0x10 + 20, 0x3a | LEVEL);
  assert.equal(s.delivered.length, 2);
});

test('switching a pin to edge clears remote IRR (Linux EOIs version 0x11 IOAPICs that way)', () => {
  const s = setup();
  s.program(11, 0x3b | LEVEL);
  s.ioapic.setLevel(11, true);
  assert.equal(s.delivered.length, 1);
  s.writeRegister(0x10 + 22, 0x3b | LEVEL | MASKED);
  s.writeRegister(0x10 + 22, 0x3b | MASKED);
  s.writeRegister(0x10 + 22, 0x3b | LEVEL | MASKED);
  assert.equal(s.readRegister(0x10 + 22) & REMOTE_IRR, 0);
  s.writeRegister(0x10 + 22, 0x3b | LEVEL);
  assert.equal(s.delivered.length, 2, 'still high: delivered after the simulated EOI');
  s.writeRegister(0x10 + 22, 0x3b | LEVEL | REMOTE_IRR | MASKED);
  assert.equal(s.readRegister(0x10 + 22) & REMOTE_IRR, REMOTE_IRR, 'the guest cannot clear remote IRR');
});

test('ExtINT and reserved delivery modes are never sent and are logged once', () => {
  const s = setup();
  s.program(0, 0x30 | EXTINT);
  s.ioapic.setLevel(0, true);
  s.ioapic.setLevel(0, false);
  s.ioapic.setLevel(0, true);
  s.program(1, 0x31 | (3 << 8) | LEVEL);
  s.ioapic.setLevel(1, true);
  assert.equal(s.delivered.length, 0);
  assert.equal(s.readRegister(0x12) & REMOTE_IRR, 0, 'nothing sent, no EOI awaited');
  assert.equal(s.logs.length, 2);
  assert.match(s.logs[0]!, /ExtINT/);
  assert.deepEqual(
    s.routes.filter((r) => r.pin <= 1),
    [],
    'no route for an undeliverable pin (none was there to remove)',
  );
});

test('NMI pins act on edges even when marked level-triggered', () => {
  const s = setup();
  s.program(2, 0x02 | NMI | LEVEL);
  s.ioapic.setLevel(2, true);
  s.ioapic.setLevel(2, true);
  assert.equal(s.delivered.length, 1);
  assert.equal(s.delivered[0]!.message.data, 0x402);
  assert.equal(s.readRegister(0x14) & REMOTE_IRR, 0);
});

test('polarity is stored but lines stay active-high', () => {
  const s = setup();
  s.program(12, 0x3c | (1 << 13));
  assert.equal(s.readRegister(0x10 + 24), 0x3c | (1 << 13));
  s.ioapic.setLevel(12, true);
  assert.deepEqual(s.vectors(), [0x3c]);
});

test('routes follow unmasked entries; a masked pin keeps its route; no call without a change', () => {
  const s = setup();
  s.writeRegister(0x11 + 2 * 9, 0x0100_0000);
  s.writeRegister(0x10 + 2 * 9, 0x29 | LEVEL | MASKED);
  assert.deepEqual(s.routes, [], 'masked from the start: no route yet');
  s.writeRegister(0x10 + 2 * 9, 0x29 | LEVEL);
  const route = { addressLo: 0xfee0_1000, addressHi: 0, data: 0xc029 };
  assert.deepEqual(s.routes, [{ pin: 9, message: route }]);
  for (let i = 0; i < 5; i++) {
    s.writeRegister(0x10 + 2 * 9, 0x29 | LEVEL | MASKED);
    s.writeRegister(0x10 + 2 * 9, 0x29 | LEVEL);
  }
  assert.equal(s.routes.length, 1, 'mask toggles cost no routing update');
  s.writeRegister(0x10 + 2 * 9, 0x29 | LEVEL | (1 << 13));
  assert.equal(s.routes.length, 1, 'polarity is not part of the message');
  s.writeRegister(0x10 + 2 * 9, 0x41 | LEVEL | MASKED);
  assert.equal(s.routes.length, 1, 'reprogrammed while masked: the old route stays for a pending EOI');
  s.writeRegister(0x10 + 2 * 9, 0x41 | LEVEL);
  assert.deepEqual(s.routes[1], { pin: 9, message: { ...route, data: 0xc041 } });
  s.writeRegister(0x11 + 2 * 9, 0x0200_0000);
  assert.deepEqual(s.routes[2], { pin: 9, message: { ...route, addressLo: 0xfee0_2000, data: 0xc041 } });
  s.writeRegister(0x10 + 2 * 9, 0x41 | (7 << 8));
  assert.deepEqual(s.routes[3], { pin: 9, message: undefined }, 'ExtINT: route removed');
  s.ioapic.reset();
  assert.equal(s.routes.length, 4, 'reset: nothing left to remove');
  s.program(3, 0x33);
  s.ioapic.reset();
  assert.deepEqual(s.routes.slice(4), [
    { pin: 3, message: { addressLo: 0xfee0_0000, addressHi: 0, data: 0x33 } },
    { pin: 3, message: undefined },
  ]);
});

test('reset masks every pin and keeps the devices line levels', () => {
  const s = setup({ id: 2 });
  s.writeRegister(0x00, 0x0700_0000);
  s.program(9, 0x29 | LEVEL);
  s.ioapic.setLevel(9, true);
  s.ioapic.reset();
  assert.equal(s.readRegister(0x00), 0x0200_0000);
  assert.equal(s.readRegister(0x10 + 18), MASKED);
  s.program(9, 0x29 | LEVEL);
  assert.equal(s.delivered.length, 2, 'the line was still high');
});

test('state round trip, with routes re-announced for unmasked pins and pending EOIs', () => {
  const a = setup({ id: 1 });
  a.program(4, 0x24, 1);
  a.program(9, 0x29 | LEVEL, 2);
  a.ioapic.setLevel(9, true);
  a.writeRegister(0x10 + 18, 0x29 | LEVEL | MASKED);
  a.program(12, 0x3c | MASKED);
  a.access(0, 4, 0x13);
  const state = JSON.parse(JSON.stringify(a.ioapic.state()));

  const b = setup();
  assert.equal(b.ioapic.restore(state), undefined);
  assert.deepEqual(b.ioapic.state(), state);
  assert.equal(b.delivered.length, 0, 'restore sends nothing');
  assert.deepEqual(
    b.routes.map((r) => r.pin),
    [4, 9],
    'pin 4 is unmasked, pin 9 awaits an EOI, pin 12 is masked',
  );
  assert.equal(b.access(0, 4), 0x13);
  b.ioapic.endOfInterrupt(0x29);
  assert.equal(b.delivered.length, 0, 'masked');
  b.writeRegister(0x10 + 18, 0x29 | LEVEL);
  assert.deepEqual(b.vectors(), [0x29], 'the restored line level is still high');
});

test('restore rejects malformed state and leaves the IOAPIC unchanged', () => {
  const s = setup();
  s.program(4, 0x24);
  const good = s.ioapic.state();
  const bad: unknown[] = [
    null,
    { ...good, id: 16 },
    { ...good, selectedRegister: 256 },
    { ...good, redirectionLow: good.redirectionLow.slice(1) },
    { ...good, redirectionHigh: [...good.redirectionHigh.slice(1), -1] },
    { ...good, redirectionLow: [...good.redirectionLow.slice(1), 2 ** 32] },
    { ...good, redirectionLow: [...good.redirectionLow.slice(1), 1.5] },
    { ...good, lineLevels: good.lineLevels.map(() => 1) },
    { ...good, lineLevels: undefined },
  ];
  for (const state of bad) {
    assert.equal(typeof s.ioapic.restore(state as never), 'string', JSON.stringify(state));
  }
  assert.deepEqual(s.ioapic.state(), good);
});

test('pins outside 0..23 are a programming error on the host side', () => {
  const s = setup();
  assert.throws(() => s.ioapic.line(24), RangeError);
  assert.throws(() => s.ioapic.setLevel(-1, true), RangeError);
  assert.throws(() => s.ioapic.setLevel(1.5, true), RangeError);
});

test('odd sizes and offsets: reads are 0, writes are ignored', () => {
  const s = setup();
  s.writeRegister(0x10, 0x20);
  s.access(0x00, 4, 0x10);
  assert.equal(s.access(0x10, 2), 0);
  assert.equal(s.access(0x10, 1), 0);
  assert.equal(s.access(0x10, 8), 0);
  assert.equal(s.access(0x14, 4), 0);
  assert.equal(s.access(0x40, 4), 0);
  s.access(0x10, 2, 0x21);
  s.access(0x10, 8, 0x22);
  s.access(0x11, 4, 0x23);
  s.access(0x20, 4, 0x24);
  s.access(0x00, 8, 0x01);
  assert.equal(s.readRegister(0x10), 0x20);
  s.access(0x00, 1, 0x01);
  assert.equal(s.access(0x10, 4), 0x0017_0011, 'a byte write selects a register');
});

test('a hostile guest never makes the IOAPIC throw or send an undeliverable message', () => {
  const random = prng(0x10a91c).int;
  const s = setup();
  const sizes = [1, 2, 4, 8];
  const offsets = [0x00, 0x10, 0x00, 0x10, 0x04, 0x11, 0x40, 0xff, 0xffc];
  const registers = [0x00, 0x01, 0x02, 0x03, 0x10, 0x11, 0x3e, 0x3f, 0x40, 0x41, 0xff];
  for (let i = 0; i < 20_000; i++) {
    const choice = random(10);
    if (choice < 4) {
      s.access(0x00, 4, registers[random(registers.length)]! + (random(4) === 0 ? random(0x100) : 0));
      s.access(0x10, 4, random(2 ** 32));
    } else if (choice < 6) {
      const data = new Uint8Array(sizes[random(4)]!).map(() => random(256));
      const offset = offsets[random(offsets.length)]!;
      if (random(2)) s.ioapic.write(offset, data);
      else s.ioapic.read(offset, data);
    } else if (choice < 9) {
      s.ioapic.setLevel(random(IOAPIC_PINS), random(2) === 1);
    } else {
      s.ioapic.endOfInterrupt(random(256));
    }
  }
  assert.ok(s.delivered.length > 100, `only ${s.delivered.length} deliveries`);
  for (const { message } of [...s.delivered, ...s.routes.flatMap((r) => (r.message ? [r] : []))].map((d) => ({
    message: d.message!,
  }))) {
    assert.equal(message.addressLo >>> 20, 0xfee, 'address in the interrupt window');
    assert.equal(message.addressLo & 0b10011, 0, 'no reserved or remappable-format address bits');
    assert.equal(message.addressHi, 0);
    assert.ok(Number.isInteger(message.data) && message.data >= 0 && message.data <= 0xffff);
    const mode = (message.data >> 8) & 7;
    assert.ok([0, 1, 2, 4, 5].includes(mode), `delivery mode ${mode}`);
  }
  assert.ok(s.logs.length <= 3, 'each undeliverable mode is logged once');
  const state = s.ioapic.state();
  assert.equal(setup().ioapic.restore(state), undefined, 'the state stays restorable');
});
