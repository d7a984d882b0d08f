// The split virtqueue: what devices and the virtio-pci transport import.
export type { Descriptor, DescriptorChain } from './chain.js';
export { type DrainOutcome, drainQueue } from './drain.js';
export { DEFAULT_MAX_INDIRECT_DESCRIPTORS, Queue, type QueueOptions } from './queue.js';
export { QueueError, type QueueErrorKind } from './queue-error.js';
export {
  MAX_QUEUE_SIZE,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
} from './ring-layout.js';
export { checkQueueState, QueueMetrics, type QueueState } from './state.js';
