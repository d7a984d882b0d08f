import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  EXIT_ADDRESS,
  EXIT_COUNT,
  EXIT_DATA,
  EXIT_DIRECTION,
  EXIT_PORT,
  EXIT_SIZE,
  ExitBuffer,
} from './exit.js';
import { dispatchIo, dispatchMmio } from './exit-bus.js';
import { HandlerBus } from './test-vm.js';

function ioExit(port: number, size: number, count: number, write: boolean, data: number[] = []): ExitBuffer {
  const exit = new ExitBuffer();
  exit.view.setUint32(0, 2, true);
  exit.view.setUint32(EXIT_DIRECTION, write ? 1 : 0, true);
  exit.view.setUint32(EXIT_SIZE, size, true);
  exit.view.setUint32(EXIT_PORT, port, true);
  exit.view.setUint32(EXIT_COUNT, count, true);
  exit.bytes.fill(0xff, EXIT_DATA, EXIT_DATA + size * count);
  exit.bytes.set(data, EXIT_DATA);
  return exit;
}

describe('exit dispatch', () => {
  test('a string out delivers every element in order', () => {
    const seen: number[][] = [];
    const bus = new HandlerBus().on(0x3f8, { write: (d) => seen.push([...d]) });
    assert.equal(dispatchIo(bus, ioExit(0x3f8, 2, 3, true, [1, 2, 3, 4, 5, 6])), true);
    assert.deepEqual(seen, [
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
  });

  test('an in fills the exit data for the guest; unclaimed ports touch nothing', () => {
    let n = 0;
    const bus = new HandlerBus().on(0x60, { read: (d) => d.fill(++n) });
    const exit = ioExit(0x60, 1, 2, false);
    assert.equal(dispatchIo(bus, exit), true);
    assert.deepEqual([...exit.bytes.subarray(EXIT_DATA, EXIT_DATA + 2)], [1, 2]);
    const other = ioExit(0x61, 4, 1, false);
    assert.equal(dispatchIo(bus, other), false);
    assert.deepEqual([...other.data()], [0xff, 0xff, 0xff, 0xff]);
  });

  test('MMIO goes by guest-physical address with the access length', () => {
    const exit = new ExitBuffer();
    exit.view.setUint32(EXIT_DIRECTION, 0, true);
    exit.view.setUint32(EXIT_SIZE, 4, true);
    exit.view.setBigUint64(EXIT_ADDRESS, 0xfebf_f000n, true);
    const bus = new HandlerBus().on(0xfebf_f000, { read: (d) => d.set([0xef, 0xbe, 0xad, 0xde]) });
    assert.equal(dispatchMmio(bus, exit), true);
    assert.equal(exit.view.getUint32(EXIT_DATA, true), 0xdead_beef);
    exit.view.setBigUint64(EXIT_ADDRESS, 0xfebf_f004n, true);
    assert.equal(dispatchMmio(bus, exit), false);
  });
});
