// virtio-rng (virtio 1.x §5.4): fills each writable buffer the driver offers from the host's
// CSPRNG (Web Crypto's getRandomValues, i.e. getrandom), straight into guest RAM. The global is
// loaded at first use, so node:crypto is not on a VM's start-up path.

import { Writer } from '../descriptor-utils.js';
import { VIRTIO_ID_RNG, type VirtioDevice, type VirtioDeviceContext } from '../pci/device.js';
import { drainQueue } from '../queue/index.js';

const QUEUE_SIZE = 64;
/**
 * Per request: Linux asks for at most a page or two; a cap keeps one request from stalling the
 * loop. Also the most getRandomValues fills in one call.
 */
const MAX_BYTES_PER_REQUEST = 64 * 1024;

export class RngMetrics {
  requests = 0;
  bytes = 0;
}

export class VirtioRng implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_RNG;
  readonly name = 'virtio-rng';
  readonly queueSizes = [QUEUE_SIZE];
  readonly deviceFeatures = 0n;
  readonly configSize = 0;
  readonly pciClass = 0x00_ff_00;
  readonly metrics = new RngMetrics();
  private context: VirtioDeviceContext | undefined;

  readConfig(_offset: number, data: Uint8Array): void {
    data.fill(0);
  }

  writeConfig(): void {}

  activate(context: VirtioDeviceContext): void {
    this.context = context;
    this.queueNotify(0);
  }

  queueNotify(_index: number): void {
    const context = this.context;
    const queue = context?.queues[0];
    if (!context || !queue?.ready) return;
    const outcome = drainQueue(
      queue,
      (chain) => {
        const writer = Writer.fromChain(context.memory, chain);
        let filled = 0;
        for (const view of writer.views(MAX_BYTES_PER_REQUEST)) {
          crypto.getRandomValues(view);
          filled += view.length;
        }
        this.metrics.requests++;
        this.metrics.bytes += filled;
        queue.addUsed(chain.headIndex, filled);
        return true;
      },
      (message) => context.log(message),
    );
    if (outcome.fatal) context.needsReset(outcome.fatal.message);
    else if (queue.needsNotification()) context.interruptQueue(0);
  }

  reset(): void {
    this.context = undefined;
  }

  close(): void {
    this.reset();
  }
}
