// The run loop every device needs when the driver kicks a queue, in one place so no device gets
// the notification handshake or the bad-chain handling wrong.

import type { DescriptorChain } from './chain.js';
import type { Queue } from './queue.js';
import { QueueError } from './queue-error.js';

export interface DrainOutcome {
  /** Chains handed to the handler. */
  readonly chains: number;
  /** Bad chains completed with length 0. */
  readonly rejected: number;
  /** Set when the queue stopped: the device should set DEVICE_NEEDS_RESET. */
  readonly fatal: QueueError | undefined;
  /** The handler declined a chain (it is back in the ring): call drainQueue again when ready. */
  readonly paused: boolean;
}

/**
 * Pops every available chain and hands each to `onChain`, which completes it now or later with
 * `queue.addUsed()`, or returns false to leave it in the ring for later (e.g. too many requests
 * in flight); the loop then stops with `paused`, kicks still off, and the device calls
 * drainQueue again once it has room. A bad chain is logged and completed with length 0 (the driver sees a failed
 * request); a fatal error stops the loop. Kicks are off while popping and back on at the end, with
 * the re-check so buffers added in between are not stranded. The caller interrupts the driver
 * when `queue.needsNotification()` says so, after this returns and after later completions.
 */
export function drainQueue(
  queue: Queue,
  onChain: (chain: DescriptorChain) => boolean | undefined,
  log: (message: string) => void,
): DrainOutcome {
  let chains = 0;
  let rejected = 0;
  do {
    queue.disableNotification();
    for (let next = queue.pop(); next !== undefined; next = queue.pop()) {
      if (next instanceof QueueError) {
        log(next.toString());
        if (next.fatal) return { chains, rejected, fatal: next, paused: false };
        queue.addUsed(next.headIndex!, 0);
        rejected++;
        continue;
      }
      if (onChain(next) === false) {
        queue.undoPop();
        return { chains, rejected, fatal: undefined, paused: true };
      }
      chains++;
    }
  } while (queue.enableNotification());
  return { chains, rejected, fatal: undefined, paused: false };
}
