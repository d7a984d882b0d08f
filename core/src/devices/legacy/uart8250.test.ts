import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UART_INPUT_CAPACITY, Uart8250 } from './uart8250.js';

function setup() {
  const levels: boolean[] = [];
  const output: number[] = [];
  const uart = new Uart8250({ irq: { set: (l) => levels.push(l) }, onOutput: (b) => output.push(...b) });
  const rd = (offset: number) => {
    const d = new Uint8Array(1);
    uart.read(offset, d);
    return d[0]!;
  };
  const wr = (offset: number, value: number) => uart.write(offset, Uint8Array.of(value));
  return { uart, levels, output, rd, wr };
}

test('transmits written bytes in batches', () => {
  const { uart, output, wr, rd } = setup();
  for (const c of 'hi\n') wr(0, c.charCodeAt(0));
  assert.equal(rd(5) & 0x60, 0x60, 'THR and transmitter empty after each byte');
  uart.flush();
  assert.equal(String.fromCharCode(...output), 'hi\n');
});

test('passes the checks of the Linux 8250 autoconfig: scratch, FIFO, loopback', () => {
  const { rd, wr } = setup();
  wr(7, 0xa5);
  assert.equal(rd(7), 0xa5);
  wr(2, 0x01); // enable FIFO
  assert.equal(rd(2) & 0xc0, 0xc0, '16550A reports its FIFO');
  wr(4, 0x1a); // loopback, RTS, OUT2
  assert.equal(rd(6) & 0xf0, 0x90, 'CTS and DCD follow RTS and OUT2');
  wr(0, 0x42);
  assert.equal(rd(5) & 1, 1);
  assert.equal(rd(0), 0x42, 'looped-back byte is received');
  wr(4, 0x08);
  assert.equal(rd(6) & 0xf0, 0xb0, 'modem lines say connected outside loopback');
});

test('divisor latch is reached with DLAB and does not disturb IER', () => {
  const { rd, wr } = setup();
  wr(1, 0x05);
  wr(3, 0x80);
  wr(0, 0x01);
  wr(1, 0x00);
  assert.equal(rd(0), 0x01);
  wr(3, 0x03);
  assert.equal(rd(1), 0x05);
});

test('received data raises the interrupt until read, in priority over THR empty', () => {
  const { uart, rd, wr, levels } = setup();
  wr(1, 0x03); // RDI + THRI
  assert.equal(levels.at(-1), true, 'enabling THRI with THR empty interrupts at once');
  assert.equal(rd(2) & 0x0f, 0x02, 'IIR says THR empty');
  assert.equal(levels.at(-1), false, 'reading IIR acknowledged it');
  uart.receive(new TextEncoder().encode('ab'));
  assert.equal(levels.at(-1), true);
  assert.equal(rd(2) & 0x0f, 0x04, 'IIR says data available');
  assert.equal(rd(0), 0x61);
  assert.equal(levels.at(-1), true, 'still data');
  assert.equal(rd(0), 0x62);
  assert.equal(levels.at(-1), false);
  assert.equal(rd(2) & 0x0f, 0x01, 'nothing pending');
});

test('input beyond capacity is refused and flagged as overrun', () => {
  const { uart, rd } = setup();
  const accepted = uart.receive(new Uint8Array(UART_INPUT_CAPACITY + 10));
  assert.equal(accepted, UART_INPUT_CAPACITY);
  const lsr = rd(5);
  assert.equal(lsr & 0x02, 0x02, 'overrun error');
  assert.equal(rd(5) & 0x02, 0, 'cleared by reading LSR');
  assert.equal(uart.pendingInput, UART_INPUT_CAPACITY);
});
