// Walking one descriptor chain. The walk is eager: every descriptor is read from guest memory
// once, checked, and copied into the returned chain, so the guest rewriting its descriptor table
// afterwards cannot change what the device acts on.

import type { GuestMemory } from '../../../memory/guest-memory.js';
import { QueueError, type QueueErrorKind } from './queue-error.js';
import {
  DESCRIPTOR_SIZE,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
} from './ring-layout.js';

/** One buffer of a chain, already checked to lie wholly inside one region of guest RAM. */
export interface Descriptor {
  readonly addr: number;
  readonly len: number;
  /** Device-writable (VIRTQ_DESC_F_WRITE); otherwise device-readable. */
  readonly writable: boolean;
}

export interface DescriptorChain {
  /** The descriptor index to hand back in the used ring. */
  readonly headIndex: number;
  /** Readable descriptors first, then writable ones (the walk enforces that order). */
  readonly descriptors: readonly Descriptor[];
  readonly readableLength: number;
  readonly writableLength: number;
  /** True when the chain went through an indirect table. */
  readonly indirect: boolean;
}

export interface ChainWalkOptions {
  /** VIRTIO_F_INDIRECT_DESC was negotiated. */
  readonly indirectAllowed: boolean;
  /** Largest indirect table accepted, in descriptors. */
  readonly maxIndirectDescriptors: number;
}

const TWO_TO_32 = 0x1_0000_0000;
const U32_MAX = 0xffff_ffff;

/**
 * Walks the chain starting at `headIndex` of the descriptor table `table` (a view over
 * `queueSize` descriptors in guest RAM). Returns the chain, or a non-fatal QueueError naming
 * the head. Never throws for anything the guest wrote; every address is checked with
 * `memory.contains` before it is viewed.
 */
export function walkChain(
  memory: GuestMemory,
  table: DataView,
  queueSize: number,
  headIndex: number,
  options: ChainWalkOptions,
): DescriptorChain | QueueError {
  const fail = (kind: QueueErrorKind, message: string) => new QueueError(kind, message, false, headIndex);

  const descriptors: Descriptor[] = [];
  let currentTable = table;
  let tableEntries = queueSize;
  // Each table can be walked at most once per entry; a longer walk is a loop. For the
  // descriptor table this is also the spec's "no chain longer than the queue size".
  let budget = queueSize;
  let inIndirect = false;
  let index = headIndex;
  let seenWritable = false;
  let readableLength = 0;
  let writableLength = 0;

  for (;;) {
    if (budget === 0) {
      return fail(
        'chain-too-long',
        `more than ${tableEntries} descriptors in ${inIndirect ? 'an indirect table' : 'the chain'} (loop?)`,
      );
    }
    budget--;
    const offset = index * DESCRIPTOR_SIZE;
    const addr = currentTable.getUint32(offset + 4, true) * TWO_TO_32 + currentTable.getUint32(offset, true);
    const len = currentTable.getUint32(offset + 8, true);
    const flags = currentTable.getUint16(offset + 12, true);
    const next = currentTable.getUint16(offset + 14, true);

    if (flags & VIRTQ_DESC_F_INDIRECT) {
      if (!options.indirectAllowed) {
        return fail(
          'indirect-not-negotiated',
          `descriptor ${index} is indirect without VIRTIO_F_INDIRECT_DESC`,
        );
      }
      if (inIndirect) return fail('nested-indirect', `indirect descriptor ${index} inside an indirect table`);
      if (flags & VIRTQ_DESC_F_NEXT) {
        return fail('indirect-with-next', `descriptor ${index} has both INDIRECT and NEXT`);
      }
      if (len === 0 || len % DESCRIPTOR_SIZE !== 0) {
        return fail('indirect-bad-length', `indirect table length ${len} is not a non-zero multiple of 16`);
      }
      const entries = len / DESCRIPTOR_SIZE;
      if (entries > options.maxIndirectDescriptors) {
        return fail(
          'indirect-too-long',
          `indirect table of ${entries} descriptors (cap ${options.maxIndirectDescriptors})`,
        );
      }
      if (!memory.contains(addr, len)) {
        return fail(
          'indirect-outside-ram',
          `indirect table 0x${addr.toString(16)}+${len} is outside guest RAM`,
        );
      }
      const bytes = memory.view(addr, len);
      currentTable = new DataView(bytes.buffer, bytes.byteOffset, len);
      tableEntries = entries;
      budget = entries;
      inIndirect = true;
      index = 0;
      continue;
    }

    const writable = (flags & VIRTQ_DESC_F_WRITE) !== 0;
    if (writable) {
      seenWritable = true;
    } else if (seenWritable) {
      return fail('readable-after-writable', `readable descriptor ${index} follows a writable one`);
    }
    if (!memory.contains(addr, len)) {
      return fail(
        'buffer-outside-ram',
        `descriptor ${index} buffer 0x${addr.toString(16)}+${len} is outside guest RAM`,
      );
    }
    if (writable) writableLength += len;
    else readableLength += len;
    if (readableLength + writableLength > U32_MAX) {
      return fail('chain-too-large', 'descriptor lengths add up past 2^32 - 1 bytes');
    }
    descriptors.push({ addr, len, writable });

    if (!(flags & VIRTQ_DESC_F_NEXT)) break;
    if (next >= tableEntries) {
      return fail('next-out-of-range', `descriptor ${index} points at ${next}, table has ${tableEntries}`);
    }
    index = next;
  }

  return { headIndex, descriptors, readableLength, writableLength, indirect: inIndirect };
}
