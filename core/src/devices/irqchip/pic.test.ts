import assert from 'node:assert/strict';
import { test } from 'node:test';
import { prng } from '../../../../tests/support/prng.js';
import { Bus, fillValue, readValue } from '../bus.js';
import { ELCR_MASTER_MASK, ELCR_SLAVE_MASK, Pic } from './pic.js';

/** A PIC on a port bus, mapped as the machine maps it. */
function setup() {
  const pic = new Pic();
  const pio = new Bus();
  pio.register(0x20, 2, pic.master, 'pic-master');
  pio.register(0xa0, 2, pic.slave, 'pic-slave');
  pio.register(0x4d0, 2, pic.elcr, 'elcr');
  const outb = (value: number, port: number) => assert.ok(pio.write(port, Uint8Array.of(value)));
  const inb = (port: number) => {
    const d = new Uint8Array(1);
    assert.ok(pio.read(port, d));
    return d[0]!;
  };
  const outw = (value: number, port: number) => {
    const d = new Uint8Array(2);
    fillValue(d, value);
    assert.ok(pio.write(port, d));
  };
  const inw = (port: number) => {
    const d = new Uint8Array(2);
    assert.ok(pio.read(port, d));
    return readValue(d);
  };
  return { pic, pio, outb, inb, outw, inw };
}

/** Linux's init_8259A (arch/x86/kernel/i8259.c), after probe_8259A succeeded. */
function linuxInit({ outb }: ReturnType<typeof setup>, autoEoi = false) {
  outb(0xff, 0x21); // mask all of the master
  outb(0x11, 0x20); // ICW1: edge, cascade, ICW4 follows
  outb(0x30, 0x21); // ICW2: IRQ 0-7 at vectors 0x30-0x37 (ISA_IRQ_VECTOR(0))
  outb(0x04, 0x21); // ICW3: the slave on IR2
  outb(autoEoi ? 0x03 : 0x01, 0x21); // ICW4: 8086 mode
  outb(0x11, 0xa0);
  outb(0x38, 0xa1); // IRQ 8-15 at 0x38-0x3f
  outb(0x02, 0xa1); // the slave's cascade identity
  outb(0x01, 0xa1);
  outb(0xfb, 0x21); // restore the masks: everything but the cascade masked
  outb(0xff, 0xa1);
}

test("Linux's probe reads back the master's mask", () => {
  const s = setup();
  s.outb(0xff, 0xa1);
  s.outb(0xfb, 0x21);
  assert.equal(s.inb(0x21), 0xfb);
  assert.equal(s.inb(0xa1), 0xff);
});

test("Linux's initialization sequence: vector bases, masks read back afterwards", () => {
  const s = setup();
  linuxInit(s);
  assert.deepEqual(s.pic.vectorBases, { master: 0x30, slave: 0x38 });
  assert.equal(s.inb(0x21), 0xfb);
  assert.equal(s.inb(0xa1), 0xff);
  const { master, slave } = s.pic.state();
  assert.deepEqual(
    [master.icw1, master.icw2, master.icw3, master.icw4, master.initStep],
    [0x11, 0x30, 0x04, 0x01, 'none'],
  );
  assert.deepEqual([slave.icw2, slave.icw3, slave.icw4], [0x38, 0x02, 0x01]);
  // Linux then masks single IRQs as it hands them to the IOAPIC.
  s.outb(0xff, 0x21);
  assert.equal(s.inb(0x21), 0xff);
});

test('ICW1 clears the mask and takes the next odd-port writes as ICWs, not as masks', () => {
  const s = setup();
  s.outb(0xaa, 0x21);
  s.outb(0x11, 0x20);
  assert.equal(s.inb(0x21), 0, 'ICW1 clears the IMR');
  s.outb(0x20, 0x21);
  s.outb(0x04, 0x21);
  assert.equal(s.inb(0x21), 0, 'ICW2 and ICW3 are not masks');
  s.outb(0x01, 0x21);
  s.outb(0x5a, 0x21);
  assert.equal(s.inb(0x21), 0x5a, 'after ICW4, OCW1');
});

test('ICW1 without ICW4 and single mode skip those steps; ICW1 restarts a sequence', () => {
  const s = setup();
  s.outb(0x12, 0x20); // single, no ICW4
  s.outb(0x08, 0x21); // ICW2
  s.outb(0x77, 0x21); // already OCW1
  assert.equal(s.inb(0x21), 0x77);
  assert.equal(s.pic.vectorBases.master, 0x08);
  s.outb(0x11, 0x20);
  s.outb(0x40, 0x21);
  s.outb(0x11, 0x20); // restart before ICW3
  s.outb(0x48, 0x21);
  s.outb(0x04, 0x21);
  s.outb(0x01, 0x21);
  s.outb(0x12, 0x21);
  assert.equal(s.inb(0x21), 0x12);
  assert.equal(s.pic.vectorBases.master, 0x48);
});

test('OCW3 selects IRR or ISR (both empty); poll answers "no interrupt" once', () => {
  const s = setup();
  linuxInit(s);
  s.outb(0x0b, 0x20); // read ISR (Linux's i8259A_irq_real / spurious check)
  assert.equal(s.inb(0x20), 0);
  assert.equal(s.pic.state().master.readIsr, true);
  s.outb(0x0a, 0x20); // back to IRR
  assert.equal(s.inb(0x20), 0);
  assert.equal(s.pic.state().master.readIsr, false);
  s.outb(0x0c, 0xa0); // poll
  assert.equal(s.pic.state().slave.pollPending, true);
  assert.equal(s.inb(0xa1), 0, 'the poll answer, even on the data port');
  assert.equal(s.inb(0xa1), 0xff, 'then the mask again');
  s.outb(0x68, 0x20); // set special mask mode
  assert.equal(s.pic.state().master.specialMask, true);
  s.outb(0x48, 0x20);
  assert.equal(s.pic.state().master.specialMask, false);
});

test('OCW2 EOIs are accepted and change nothing', () => {
  const s = setup();
  linuxInit(s);
  const before = s.pic.state();
  for (const command of [0x20, 0x60, 0x62, 0xa0, 0xc7, 0xe0]) {
    s.outb(command, 0x20);
    s.outb(command, 0xa0);
  }
  assert.deepEqual(s.pic.state(), before);
});

test('ELCR keeps only the bits real chipsets have', () => {
  const s = setup();
  s.outb(0xff, 0x4d0);
  s.outb(0xff, 0x4d1);
  assert.equal(s.inb(0x4d0), ELCR_MASTER_MASK);
  assert.equal(s.inb(0x4d1), ELCR_SLAVE_MASK);
  assert.equal(ELCR_MASTER_MASK, 0xf8);
  assert.equal(ELCR_SLAVE_MASK, 0xde);
  s.outw(0x0e20, 0x4d0); // IRQ 5 and IRQs 9-11 level, as ACPI's SCI setup does
  assert.equal(s.inw(0x4d0), 0x0e20);
  assert.equal(s.inb(0x4d1), 0x0e);
});

test('16-bit accesses are split into the two byte ports', () => {
  const s = setup();
  s.outw(0x3c_00, 0x20); // OCW2 0x00 at 0x20, then mask 0x3c at 0x21
  assert.equal(s.inb(0x21), 0x3c);
  assert.equal(s.inw(0x20), 0x3c_00);
});

test('reset: masks clear, initialization forgotten, ELCR edge', () => {
  const s = setup();
  linuxInit(s);
  s.outb(0x20, 0x4d0);
  s.outb(0x11, 0xa0); // left mid-sequence
  s.pic.reset();
  assert.equal(s.inb(0x21), 0);
  assert.equal(s.inb(0x4d0), 0);
  s.outb(0x42, 0xa1);
  assert.equal(s.inb(0xa1), 0x42, 'the slave no longer expects ICW2');
  assert.deepEqual(s.pic.vectorBases, { master: 0, slave: 0 });
});

test('state round trip, including a sequence left halfway', () => {
  const a = setup();
  linuxInit(a);
  a.outb(0x28, 0x4d0);
  a.outb(0x0b, 0x20);
  a.outb(0x11, 0xa0);
  a.outb(0x70, 0xa1); // the slave now awaits ICW3
  const state = JSON.parse(JSON.stringify(a.pic.state()));
  const b = setup();
  assert.equal(b.pic.restore(state), undefined);
  assert.deepEqual(b.pic.state(), state);
  b.outb(0x02, 0xa1);
  b.outb(0x01, 0xa1);
  b.outb(0x99, 0xa1);
  assert.equal(b.inb(0xa1), 0x99);
  assert.equal(b.pic.vectorBases.slave, 0x70);
  assert.equal(b.inb(0x4d0), 0x28);
});

test('restore rejects malformed state and leaves the PICs unchanged', () => {
  const s = setup();
  linuxInit(s);
  const good = s.pic.state();
  const bad: unknown[] = [
    null,
    { master: good.master },
    { ...good, master: { ...good.master, imr: 256 } },
    { ...good, slave: { ...good.slave, icw2: -1 } },
    { ...good, master: { ...good.master, elcr: 0x01 } },
    { ...good, slave: { ...good.slave, elcr: 0x01 } },
    { ...good, master: { ...good.master, initStep: 'icw5' } },
    { ...good, slave: { ...good.slave, pollPending: 'yes' } },
  ];
  for (const state of bad)
    assert.equal(typeof s.pic.restore(state as never), 'string', JSON.stringify(state));
  assert.deepEqual(s.pic.state(), good);
});

test('a hostile guest never makes the PICs throw or corrupt their state', () => {
  const random = prng(0x8259).int;
  const pic = new Pic();
  const devices = [pic.master, pic.slave, pic.elcr];
  for (let i = 0; i < 20_000; i++) {
    const device = devices[random(3)]!;
    const data = new Uint8Array([1, 2, 4, 8][random(4)]!).map(() => random(256));
    const offset = random(5) - 1; // includes offsets a bus would never pass
    if (random(2)) device.write(offset, data);
    else device.read(offset, data);
    for (const byte of data) assert.ok(Number.isInteger(byte) && byte <= 0xff);
  }
  const state = pic.state();
  assert.equal(new Pic().restore(state), undefined, 'the state stays valid');
  assert.equal(state.master.elcr & ~ELCR_MASTER_MASK, 0);
  assert.equal(state.slave.elcr & ~ELCR_SLAVE_MASK, 0);
});
