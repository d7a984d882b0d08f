// virtio-console (virtio 1.x §5.3) with a single port, no MULTIPORT: the guest's hvc0. Output
// (transmitq) goes to `onOutput` like the UART's; input from the terminal is held until the
// driver offers receive buffers (receiveq), up to a cap beyond which the oldest bytes go.

import { ChainError, Reader, Writer } from '../descriptor-utils.js';
import { VIRTIO_ID_CONSOLE, type VirtioDevice, type VirtioDeviceContext } from '../pci/device.js';
import { drainQueue } from '../queue/index.js';

const RECEIVE_QUEUE = 0;
const TRANSMIT_QUEUE = 1;
const QUEUE_SIZE = 64;
/** Config: cols u16, rows u16, max_nr_ports u32, emerg_wr u32. */
const CONFIG_SIZE = 12;
/** Input kept while the guest offers no buffers. */
const MAX_PENDING_INPUT = 64 * 1024;

export class ConsoleMetrics {
  bytesOut = 0;
  bytesIn = 0;
  inputDropped = 0;
}

export interface ConsoleOptions {
  onOutput(bytes: Uint8Array): void;
}

export class VirtioConsole implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_CONSOLE;
  readonly name = 'virtio-console';
  readonly queueSizes = [QUEUE_SIZE, QUEUE_SIZE];
  readonly deviceFeatures = 0n;
  readonly configSize = CONFIG_SIZE;
  readonly pciClass = 0x07_80_00; // simple communication controller, other
  readonly metrics = new ConsoleMetrics();
  private context: VirtioDeviceContext | undefined;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;

  constructor(private readonly options: ConsoleOptions) {}

  readConfig(offset: number, data: Uint8Array): void {
    const config = new Uint8Array(CONFIG_SIZE);
    new DataView(config.buffer).setUint32(4, 1, true); // max_nr_ports (meaningful only with MULTIPORT)
    data.set(config.subarray(offset, offset + data.length));
  }

  writeConfig(): void {}

  activate(context: VirtioDeviceContext): void {
    this.context = context;
    this.transmit();
    this.deliverInput();
  }

  queueNotify(index: number): void {
    if (index === TRANSMIT_QUEUE) this.transmit();
    else if (index === RECEIVE_QUEUE) this.deliverInput();
  }

  /** Bytes typed on the terminal for hvc0. */
  receive(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.pending.push(bytes.slice());
    this.pendingBytes += bytes.length;
    while (this.pendingBytes > MAX_PENDING_INPUT) {
      const dropped = this.pending.shift()!;
      this.pendingBytes -= dropped.length;
      this.metrics.inputDropped += dropped.length;
    }
    this.deliverInput();
  }

  reset(): void {
    this.context = undefined;
  }

  close(): void {
    this.reset();
  }

  private transmit(): void {
    const context = this.context;
    const queue = context?.queues[TRANSMIT_QUEUE];
    if (!context || !queue?.ready) return;
    const outcome = drainQueue(
      queue,
      (chain) => {
        try {
          const reader = Reader.fromChain(context.memory, chain);
          const bytes = reader.readBytes(reader.remaining);
          this.metrics.bytesOut += bytes.length;
          if (bytes.length > 0) this.options.onOutput(bytes);
        } catch (error) {
          if (!(error instanceof ChainError)) throw error;
          context.log(`transmit: ${error.message}`);
        }
        queue.addUsed(chain.headIndex, 0);
        return true;
      },
      (message) => context.log(message),
    );
    if (outcome.fatal) context.needsReset(outcome.fatal.message);
    else if (queue.needsNotification()) context.interruptQueue(TRANSMIT_QUEUE);
  }

  private deliverInput(): void {
    const context = this.context;
    const queue = context?.queues[RECEIVE_QUEUE];
    if (!context || !queue?.ready || this.pendingBytes === 0) return;
    const outcome = drainQueue(
      queue,
      (chain) => {
        if (this.pendingBytes === 0) return false;
        let written = 0;
        try {
          const writer = Writer.fromChain(context.memory, chain);
          while (this.pendingBytes > 0 && writer.available > 0) {
            const head = this.pending[0]!;
            const n = Math.min(head.length, writer.available);
            writer.write(head.subarray(0, n));
            written += n;
            this.pendingBytes -= n;
            if (n === head.length) this.pending.shift();
            else this.pending[0] = head.subarray(n);
          }
        } catch (error) {
          if (!(error instanceof ChainError)) throw error;
          context.log(`receive: ${error.message}`);
        }
        this.metrics.bytesIn += written;
        queue.addUsed(chain.headIndex, written);
        return true;
      },
      (message) => context.log(message),
    );
    if (outcome.fatal) context.needsReset(outcome.fatal.message);
    else if (queue.needsNotification()) context.interruptQueue(RECEIVE_QUEUE);
  }
}
