import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UART_FIFO_SIZE, Uart8250 } from './uart8250.js';

const RBR = 0;
const THR = 0;
const IER = 1;
const IIR = 2;
const FCR = 2;
const LCR = 3;
const MCR = 4;
const LSR = 5;
const MSR = 6;
const SCR = 7;

function setup(options: { inputCapacity?: number } = {}) {
  const levels: boolean[] = [];
  const output: number[] = [];
  const flushes: (() => void)[] = [];
  let drains = 0;
  const uart = new Uart8250({
    irq: { set: (level) => levels.push(level) },
    onOutput: (bytes) => output.push(...bytes),
    onDrain: () => drains++,
    scheduleFlush: (flush) => flushes.push(flush),
    ...options,
  });
  const rd = (offset: number) => {
    const d = new Uint8Array(1);
    uart.read(offset, d);
    return d[0]!;
  };
  const wr = (offset: number, value: number) => uart.write(offset, Uint8Array.of(value));
  const irq = () => levels.at(-1) ?? false;
  return { uart, levels, output, flushes, rd, wr, irq, drains: () => drains };
}

const text = (s: string) => new TextEncoder().encode(s);

test('transmitted bytes are batched into one output chunk per scheduled flush', () => {
  const { output, flushes, wr, rd } = setup();
  for (const c of text('hello\n')) wr(THR, c);
  assert.equal(rd(LSR) & 0x60, 0x60, 'THR and transmitter empty after each byte');
  assert.equal(output.length, 0, 'nothing sent before the flush runs');
  assert.equal(flushes.length, 1, 'one flush scheduled for the whole burst');
  flushes[0]!();
  assert.equal(String.fromCharCode(...output), 'hello\n');
});

test('Linux 8250 autoconfig sequence detects a 16550A', () => {
  const { rd, wr } = setup();
  // IER write-back test: only the low four bits exist.
  const savedIer = rd(IER);
  wr(IER, 0);
  assert.equal(rd(IER) & 0x0f, 0);
  wr(IER, 0x0f);
  assert.equal(rd(IER) & 0x0f, 0x0f);
  wr(IER, savedIer);
  // Loopback test: MCR = LOOP | OUT2 | RTS must show DCD | CTS in MSR's status bits.
  const savedMcr = rd(MCR);
  const savedLcr = rd(LCR);
  wr(MCR, 0x10 | 0x0a);
  assert.equal(rd(MSR) & 0xf0, 0x90);
  wr(MCR, savedMcr);
  // EFR probe in configuration mode B: the write lands on FCR (0), reads see IIR.
  wr(LCR, 0xbf);
  wr(2, 0);
  wr(LCR, 0);
  wr(FCR, 0x01);
  assert.equal(rd(IIR) >> 6, 3, 'FIFO bits say 16550A');
  // autoconfig_16550a: EFR tests with LCR 0x80 and 0xBF must not read 0.
  wr(LCR, 0x80);
  assert.notEqual(rd(2), 0);
  wr(LCR, 0xbf);
  assert.notEqual(rd(2), 0);
  // National SuperIO test: IIR read through LCR 0xE0 must not follow MCR's loop bit.
  wr(LCR, 0);
  const status1 = rd(MCR);
  wr(LCR, 0xe0);
  const status2 = rd(2);
  assert.equal((status1 ^ status2) & 0x10, 0);
  wr(LCR, 0);
  wr(MCR, status1 ^ 0x10);
  wr(LCR, 0xe0);
  assert.equal((rd(2) ^ status1) & 0x10, 0, 'not a National SuperIO');
  wr(LCR, 0);
  wr(MCR, status1);
  // 16750 test: IIR bit 5 never follows FCR's 64-byte bit.
  wr(FCR, 0x21);
  assert.equal(rd(IIR) >> 5, 6);
  wr(FCR, 0x01);
  wr(LCR, 0x80);
  wr(FCR, 0x21);
  assert.equal(rd(IIR) >> 5, 6, 'not a 16750');
  wr(FCR, 0x01);
  wr(LCR, 0);
  // XScale test: IER bit 6 does not stick.
  wr(IER, 0x40);
  assert.equal(rd(IER) & 0x40, 0);
  wr(IER, 0);
  wr(LCR, savedLcr);
  // Scratch register.
  wr(SCR, 0xa5);
  assert.equal(rd(SCR), 0xa5);
  wr(SCR, 0x5a);
  assert.equal(rd(SCR), 0x5a);
});

test('startup THRE checks: enabling THRI with THR empty interrupts every time', () => {
  const { rd, wr, irq } = setup();
  rd(LSR);
  rd(RBR);
  rd(IIR);
  rd(MSR);
  assert.notEqual(rd(LSR), 0xff);
  wr(IER, 0x02);
  assert.equal(irq(), true);
  assert.equal(rd(IIR) & 0x0f, 0x02, 'first enable: THRE');
  assert.equal(irq(), false, 'the IIR read acknowledged it');
  wr(IER, 0);
  wr(IER, 0x02);
  assert.equal(rd(IIR) & 0x0f, 0x02, 're-enabling re-asserts THRE (no UART_BUG_THRE)');
  wr(IER, 0);
  // The TXEN test: IER = THRI, then LSR and IIR.
  wr(IER, 0x02);
  const lsr = rd(LSR);
  const iir = rd(IIR);
  wr(IER, 0);
  assert.equal(lsr & 0x40, 0x40);
  assert.equal(iir & 0x01, 0, 'an interrupt is pending (no UART_BUG_TXEN)');
});

test('THR write re-arms the THRE interrupt until IIR acknowledges it', () => {
  const { rd, wr, irq } = setup();
  wr(IER, 0x02);
  rd(IIR);
  assert.equal(irq(), false);
  wr(THR, 0x41);
  assert.equal(irq(), true, 'the byte left at once: THR empty again');
  assert.equal(rd(IIR) & 0x0f, 0x02);
  assert.equal(rd(IIR) & 0x0f, 0x01, 'acknowledged: nothing pending');
  assert.equal(irq(), false);
});

test('interrupt identification follows 16550A priority: line status, data, THRE, modem', () => {
  const { uart, rd, wr, irq } = setup();
  wr(MCR, 0x10); // loopback, all modem outputs off, to produce an overrun
  for (let i = 0; i < UART_FIFO_SIZE + 1; i++) wr(THR, i); // FIFO disabled: overrun at the second
  wr(IER, 0x0f);
  rd(MSR); // clear modem deltas from entering loopback
  assert.equal(irq(), false, 'loopback cuts the line off');
  assert.equal(rd(IIR) & 0x0f, 0x06, 'overrun: line status first');
  rd(LSR);
  assert.equal(rd(IIR) & 0x0f, 0x04, 'then received data');
  rd(RBR);
  assert.equal(rd(IIR) & 0x0f, 0x02, 'then THR empty (acknowledged by this read)');
  wr(MCR, 0x0b); // leave loopback: CTS, DSR and DCD come up
  assert.equal(rd(IIR) & 0x0f, 0x00, 'then modem status');
  assert.equal(irq(), true);
  assert.equal(rd(MSR) & 0x0f, 0x0b, 'deltas for CTS, DSR and DCD');
  assert.equal(rd(IIR) & 0x0f, 0x01);
  assert.equal(irq(), false);
  uart.receive(text('x'));
  assert.equal(irq(), true);
});

test('received data: trigger level reports data available, fewer bytes a character timeout', () => {
  const { uart, rd, wr, irq } = setup();
  wr(FCR, 0x81); // FIFO on, trigger at 8
  wr(IER, 0x01);
  uart.receive(text('abc'));
  assert.equal(irq(), true);
  assert.equal(rd(IIR) & 0x0f, 0x0c, 'below the trigger level: timeout');
  uart.receive(text('defghijk'));
  assert.equal(rd(IIR) & 0x0f, 0x04, 'at the trigger level: data available');
  let received = '';
  while (rd(LSR) & 0x01) received += String.fromCharCode(rd(RBR));
  assert.equal(received, 'abcdefghijk');
  assert.equal(irq(), false);
  assert.equal(rd(IIR), 0xc1);
});

test('host input waits behind the FIFO: nothing is lost and back-pressure is visible', () => {
  const { uart, rd, drains } = setup({ inputCapacity: 64 });
  const pasted = new Uint8Array(100).map((_, i) => 0x20 + (i % 90));
  const taken = uart.receive(pasted);
  assert.equal(taken, 64 + 1, 'the input buffer plus the one-byte holding register (FIFO off)');
  assert.equal(uart.inputSpace, 0);
  assert.equal(rd(LSR) & 0x02, 0, 'refused host bytes are not an overrun: the host keeps them');
  const received: number[] = [];
  while (rd(LSR) & 0x01) received.push(rd(RBR));
  assert.equal(drains(), 1, 'onDrain once the guest has read everything');
  assert.equal(uart.bytesConsumed, taken);
  assert.equal(uart.receive(pasted.subarray(taken)), 100 - taken);
  while (rd(LSR) & 0x01) received.push(rd(RBR));
  assert.deepEqual(received, [...pasted]);
  assert.equal(uart.pendingInput, 0);
});

test('a BREAK arrives as a NUL with LSR.BI and a line-status interrupt, behind earlier input', () => {
  const { uart, rd, wr, irq } = setup();
  wr(FCR, 0x01);
  wr(IER, 0x05); // received data and line status
  uart.receive(text('a'));
  assert.equal(uart.receiveBreak(), false, 'waits until the byte before it is read');
  assert.equal(rd(RBR), 0x61);
  assert.equal(uart.receiveBreak(), true);
  assert.equal(irq(), true);
  assert.equal(rd(IIR) & 0x0f, 0x06, 'line status first');
  assert.equal(rd(LSR) & 0x11, 0x11, 'BI with data ready');
  assert.equal(rd(LSR) & 0x10, 0, 'BI clears when LSR is read');
  assert.equal(rd(RBR), 0, 'the break character is a NUL');
  uart.receive(text('h'));
  assert.equal(rd(RBR), 0x68, 'the SysRq key after it');
  wr(MCR, 0x18);
  assert.equal(uart.receiveBreak(), false, 'not in loopback: the host is disconnected');
});

test('loopback: bytes come back, the FIFO overruns at 16, host input is held meanwhile', () => {
  const { uart, rd, wr, output, flushes } = setup();
  uart.receive(text('typed'));
  wr(FCR, 0x07); // FIFO on and cleared
  wr(MCR, 0x10);
  assert.equal(rd(LSR) & 0x01, 0, 'host bytes do not reach the receiver in loopback');
  for (let i = 0; i < UART_FIFO_SIZE + 2; i++) wr(THR, 0x30 + i);
  assert.equal(rd(LSR) & 0x03, 0x03, 'data ready and overrun');
  assert.equal(rd(LSR) & 0x02, 0, 'overrun clears on read');
  const looped: number[] = [];
  while (rd(LSR) & 0x01) looped.push(rd(RBR));
  assert.deepEqual(
    looped,
    Array.from({ length: UART_FIFO_SIZE }, (_, i) => 0x30 + i),
  );
  assert.equal(flushes.length, 0);
  assert.equal(output.length, 0, 'nothing transmitted to the host in loopback');
  wr(MCR, 0x0b);
  let received = '';
  while (rd(LSR) & 0x01) received += String.fromCharCode(rd(RBR));
  assert.equal(received, 'typed', 'host input delivered after loopback ends');
});

test('the divisor latch is reached with DLAB and does not disturb IER or THR', () => {
  const { rd, wr, flushes } = setup();
  wr(IER, 0x05);
  wr(LCR, 0x83);
  wr(0, 0x01);
  wr(1, 0x02);
  assert.equal(rd(0), 0x01);
  assert.equal(rd(1), 0x02);
  wr(LCR, 0x03);
  assert.equal(rd(IER), 0x05);
  assert.equal(flushes.length, 0, 'divisor writes are not transmitted');
});

test('snapshot: registers, FIFO and waiting host input survive a JSON round trip', () => {
  const a = setup({ inputCapacity: 64 });
  a.wr(LCR, 0x83);
  a.wr(0, 0x01); // 115200 baud
  a.wr(LCR, 0x03);
  a.wr(FCR, 0xc1);
  a.wr(IER, 0x01);
  a.wr(SCR, 0x77);
  a.uart.receive(text('0123456789abcdefghijklmnop'));
  assert.equal(a.rd(RBR), 0x30);
  const state = JSON.parse(JSON.stringify(a.uart.state()));
  const b = setup({ inputCapacity: 64 });
  assert.equal(b.uart.restore(state), undefined);
  assert.equal(b.irq(), true, 'the line is driven to match the restored state');
  assert.equal(b.rd(SCR), 0x77);
  assert.equal(b.rd(IIR), 0xc4, 'FIFO on, refilled to 16: at or above the trigger level of 14');
  let rest = '';
  while (b.rd(LSR) & 0x01) rest += String.fromCharCode(b.rd(RBR));
  assert.equal(rest, '123456789abcdefghijklmnop');
  b.wr(LCR, 0x83);
  assert.equal(b.rd(0), 0x01, 'divisor');
  assert.match(b.uart.restore({ ...state, fifo: new Array(17).fill(0) }) ?? '', /FIFO/);
  assert.match(b.uart.restore({ ...state, ier: 300 }) ?? '', /out of range/);
});
