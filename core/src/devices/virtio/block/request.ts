// virtio-blk requests (virtio 1.x §5.2.6): the header, the data buffers and the status byte,
// parsed from a descriptor chain into a plain request the device executes. Pure: no I/O here.

import { type GuestMemory, GuestMemoryError } from '../../../memory/guest-memory.js';
import { ChainError, Reader, Writer } from '../descriptor-utils.js';
import type { DescriptorChain } from '../queue/index.js';

export const SECTOR_SIZE = 512;

export const BlockRequestType = {
  in: 0,
  out: 1,
  flush: 4,
  getId: 8,
  discard: 11,
  writeZeroes: 13,
} as const;

export const BlockStatus = { ok: 0, ioError: 1, unsupported: 2 } as const;

/** The ID string a GET_ID request returns: at most this many bytes, NUL-padded. */
export const BLOCK_ID_BYTES = 20;
const HEADER_BYTES = 16;
const SEGMENT_BYTES = 16;
const SEGMENT_FLAG_UNMAP = 1;

export interface BlockRange {
  readonly sector: number;
  readonly sectors: number;
  /** write-zeroes: the driver allows deallocating the range. */
  readonly unmap: boolean;
}

export type BlockRequest =
  | { kind: 'in'; sector: number; buffers: Uint8Array[]; length: number }
  | { kind: 'out'; sector: number; buffers: Uint8Array[]; length: number }
  | { kind: 'flush' }
  | { kind: 'get-id'; buffer: Uint8Array[] }
  | { kind: 'discard' | 'write-zeroes'; ranges: BlockRange[] }
  | { kind: 'unsupported'; type: number };

/** A parsed request, or why the chain cannot carry one (then only the status byte, if any, is usable). */
export interface ParsedRequest {
  /** The status byte (a live view), or undefined when the chain has no writable byte at all. */
  readonly status: Uint8Array | undefined;
  readonly request: BlockRequest | { kind: 'malformed'; reason: string };
}

export interface ParseLimits {
  /** Ranges a single discard / write-zeroes request may carry. */
  readonly maxSegments: number;
}

/**
 * Splits a chain into request and status byte. Data buffers are live guest views (zero copy);
 * the header is copied before it is looked at. Never throws for anything the guest wrote.
 */
export function parseBlockRequest(
  memory: GuestMemory,
  chain: DescriptorChain,
  limits: ParseLimits,
): ParsedRequest {
  const simple = parseSimpleRead(memory, chain);
  if (simple) return simple;
  let reader: Reader;
  let writer: Writer;
  try {
    reader = Reader.fromChain(memory, chain);
    writer = Writer.fromChain(memory, chain);
  } catch (error) {
    if (error instanceof ChainError)
      return { status: undefined, request: { kind: 'malformed', reason: error.message } };
    throw error;
  }
  if (writer.available === 0) {
    return { status: undefined, request: { kind: 'malformed', reason: 'no writable status byte' } };
  }
  const statusWriter = writer.splitAt(writer.available - 1);
  const status = statusWriter.views(1)[0]!;
  const malformed = (reason: string): ParsedRequest => ({ status, request: { kind: 'malformed', reason } });

  if (reader.remaining < HEADER_BYTES)
    return malformed(`header needs ${HEADER_BYTES} bytes, chain has ${reader.remaining}`);
  const type = reader.readU32();
  reader.readU32(); // reserved (ioprio in legacy drivers)
  const sector64 = reader.readU64();
  if (sector64 > BigInt(Number.MAX_SAFE_INTEGER)) return malformed(`sector ${sector64} is out of range`);
  const sector = Number(sector64);

  switch (type) {
    case BlockRequestType.in: {
      const length = writer.available;
      if (length % SECTOR_SIZE !== 0) return malformed(`read of ${length} bytes is not whole sectors`);
      return { status, request: { kind: 'in', sector, buffers: writer.views(), length } };
    }
    case BlockRequestType.out: {
      const length = reader.remaining;
      if (length % SECTOR_SIZE !== 0) return malformed(`write of ${length} bytes is not whole sectors`);
      return { status, request: { kind: 'out', sector, buffers: reader.views(), length } };
    }
    case BlockRequestType.flush:
      return { status, request: { kind: 'flush' } };
    case BlockRequestType.getId:
      return { status, request: { kind: 'get-id', buffer: writer.views(BLOCK_ID_BYTES) } };
    case BlockRequestType.discard:
    case BlockRequestType.writeZeroes: {
      const kind = type === BlockRequestType.discard ? 'discard' : 'write-zeroes';
      const count = reader.remaining / SEGMENT_BYTES;
      if (!Number.isInteger(count) || count === 0) {
        return malformed(`${kind}: ${reader.remaining} bytes is not a whole number of segments`);
      }
      if (count > limits.maxSegments)
        return malformed(`${kind}: ${count} segments, at most ${limits.maxSegments}`);
      const ranges: BlockRange[] = [];
      for (let i = 0; i < count; i++) {
        const start = reader.readU64();
        const sectors = reader.readU32();
        const flags = reader.readU32();
        if (start > BigInt(Number.MAX_SAFE_INTEGER))
          return malformed(`${kind}: sector ${start} is out of range`);
        if (kind === 'discard' && flags !== 0)
          return malformed(`discard: flags 0x${flags.toString(16)} are reserved`);
        if (flags & ~SEGMENT_FLAG_UNMAP) return malformed(`${kind}: unknown flags 0x${flags.toString(16)}`);
        ranges.push({ sector: Number(start), sectors, unmap: (flags & SEGMENT_FLAG_UNMAP) !== 0 });
      }
      return { status, request: { kind, ranges } };
    }
    default:
      return { status, request: { kind: 'unsupported', type } };
  }
}

/**
 * The shape nearly every read has, [16-byte header][data ...][status] with no empty buffer,
 * parsed without the general stream readers (they cost about three times as much); undefined
 * for anything else, which the general path parses (and words any error of).
 */
function parseSimpleRead(memory: GuestMemory, chain: DescriptorChain): ParsedRequest | undefined {
  const descriptors = chain.descriptors;
  const count = descriptors.length;
  const header = descriptors[0];
  if (count < 2 || !header || header.writable || header.len !== HEADER_BYTES) return undefined;
  for (let i = 1; i < count; i++) {
    const d = descriptors[i]!;
    if (!d.writable || d.len === 0) return undefined;
  }
  const length = chain.writableLength - 1;
  if (length % SECTOR_SIZE !== 0) return undefined;
  try {
    // Copied out of guest RAM once (numbers), as the general path's reader does.
    if (memory.readU32(header.addr) !== BlockRequestType.in) return undefined;
    const sectorHigh = memory.readU32(header.addr + 12);
    if (sectorHigh > MAX_SAFE_SECTOR_HIGH) return undefined;
    const sector = sectorHigh * 0x1_0000_0000 + memory.readU32(header.addr + 8);
    const buffers: Uint8Array[] = [];
    for (let i = 1; i < count - 1; i++) buffers.push(memory.view(descriptors[i]!.addr, descriptors[i]!.len));
    const last = descriptors[count - 1]!;
    if (last.len > 1) buffers.push(memory.view(last.addr, last.len - 1));
    const status = memory.view(last.addr + last.len - 1, 1);
    return { status, request: { kind: 'in', sector, buffers, length } };
  } catch (error) {
    if (error instanceof GuestMemoryError) return undefined; // the walk checked every buffer: not reached
    throw error;
  }
}

/** The high 32 bits of the largest sector number that is a safe integer. */
const MAX_SAFE_SECTOR_HIGH = Math.floor(Number.MAX_SAFE_INTEGER / 0x1_0000_0000);

/** True when [sector, sector+bytes/512) lies inside a disk of `capacitySectors`. */
export function inDisk(sector: number, bytes: number, capacitySectors: number): boolean {
  const sectors = Math.ceil(bytes / SECTOR_SIZE);
  return sector <= capacitySectors && sectors <= capacitySectors - sector;
}
