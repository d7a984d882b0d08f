import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PciConfigSpace } from './config-space.js';
import { FIRST_MSI_GSI, MsiRoutes } from './kvm-msi.js';
import { type MsiMessage, Msix } from './msix.js';

class RecordingSink {
  routes = new Map<number, MsiMessage | undefined>();
  fired: number[] = [];
  route(vector: number, message: MsiMessage | undefined): void {
    this.routes.set(vector, message);
  }
  trigger(vector: number): void {
    this.fired.push(vector);
  }
}

function setup(vectors = 3) {
  const config = new PciConfigSpace({ vendor: 1, device: 2, classCode: 0 });
  const sink = new RecordingSink();
  const msix = new Msix(config, vectors, { bar: 0, tableOffset: 0x4000, pbaOffset: 0x5000 }, sink);
  const cap = config.configRead(0x34, 1);
  const writeEntry = (v: number, lo: number, hi: number, data: number, ctrl: number) => {
    for (const [i, value] of [lo, hi, data, ctrl].entries()) {
      const bytes = new Uint8Array(4);
      new DataView(bytes.buffer).setUint32(0, value, true);
      msix.tableDevice.write(v * 16 + i * 4, bytes);
    }
  };
  const pba = () => {
    const bytes = new Uint8Array(8);
    msix.pbaDevice.read(0, bytes);
    return bytes[0]!;
  };
  return { config, sink, msix, cap, writeEntry, pba };
}

test('the capability describes table size, BIR and offsets', () => {
  const { config, cap } = setup(3);
  assert.equal(config.configRead(cap, 1), 0x11);
  assert.equal(config.configRead(cap + 2, 2), 2, 'table size - 1');
  assert.equal(config.configRead(cap + 4, 4), 0x4000);
  assert.equal(config.configRead(cap + 8, 4), 0x5000);
});

test('nothing is delivered until MSI-X is enabled and the vector unmasked; masked vectors become pending', () => {
  const { config, sink, msix, cap, writeEntry, pba } = setup();
  assert.equal(msix.notify(0), false, 'disabled: INTx is the fallback');
  config.configWrite(cap + 2, 2, 0x8000);
  assert.equal(msix.enabled, true);
  assert.equal(msix.notify(1), true);
  assert.deepEqual(sink.fired, [], 'vectors start masked');
  assert.equal(pba(), 0b10);
  writeEntry(1, 0xfee0_0000, 0, 0x41, 0);
  assert.deepEqual(sink.routes.get(1), { addressLo: 0xfee0_0000, addressHi: 0, data: 0x41 });
  assert.deepEqual(sink.fired, [1], 'pending vector delivered when unmasked');
  assert.equal(pba(), 0);
  msix.notify(1);
  assert.deepEqual(sink.fired, [1, 1]);
  config.configWrite(cap + 2, 2, 0xc000); // function mask
  msix.notify(1);
  assert.deepEqual(sink.fired, [1, 1]);
  config.configWrite(cap + 2, 2, 0x8000);
  assert.deepEqual(sink.fired, [1, 1, 1]);
  assert.equal(msix.notify(7), false, 'past the table');
  assert.equal(msix.notify(0xffff), false, 'NO_VECTOR');
});

test('the table ignores odd-sized or misaligned accesses and reads back what was written', () => {
  const { msix } = setup();
  msix.tableDevice.write(1, Uint8Array.of(1, 2, 3, 4));
  msix.tableDevice.write(0, Uint8Array.of(9, 9));
  const back = new Uint8Array(4);
  msix.tableDevice.read(0, back);
  assert.deepEqual([...back], [0, 0, 0, 0]);
  msix.tableDevice.write(8, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)); // qword: data + control
  const q = new Uint8Array(8);
  msix.tableDevice.read(8, q);
  assert.deepEqual([...q], [1, 2, 3, 4, 5, 6, 7, 8]);
  const far = new Uint8Array(4);
  msix.tableDevice.read(3 * 16, far);
  assert.deepEqual([...far], [0xff, 0xff, 0xff, 0xff]);
});

test('MsiRoutes keeps the base routes and one MSI route per GSI in every table it sets', () => {
  const tables: unknown[][] = [];
  const routes = new MsiRoutes({ setGsiRouting: (r) => tables.push([...r]) }, [
    { gsi: 4, kind: 'irqchip', irqchip: 2, pin: 4 },
  ]);
  const gsi = routes.allocateGsi();
  assert.equal(gsi, FIRST_MSI_GSI);
  routes.set(gsi, { addressLo: 0xfee0_0000, addressHi: 0, data: 0x30 });
  assert.deepEqual(tables.at(-1), [
    { gsi: 4, kind: 'irqchip', irqchip: 2, pin: 4 },
    { gsi, kind: 'msi', addressLo: 0xfee0_0000, addressHi: 0, data: 0x30 },
  ]);
  routes.set(gsi, undefined);
  assert.equal(tables.at(-1)!.length, 1);
  const count = tables.length;
  routes.set(gsi, undefined);
  assert.equal(tables.length, count, 'removing an absent route sets nothing');
});
