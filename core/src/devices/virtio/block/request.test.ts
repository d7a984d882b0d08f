import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GuestMemory } from '../../../memory/guest-memory.js';
import type { Descriptor, DescriptorChain } from '../queue/index.js';
import { BlockRequestType, type ParsedRequest, parseBlockRequest } from './request.js';

const memory = new GuestMemory([{ gpa: 0, bytes: new Uint8Array(new SharedArrayBuffer(1 << 20)) }]);
const HEADER_AT = 0x1000;
const DATA_AT = 0x10000;
const limits = { maxSegments: 16 };

function writeHeader(type: number, sector: bigint): void {
  memory.writeU32(HEADER_AT, type);
  memory.writeU32(HEADER_AT + 4, 0);
  memory.writeU64(HEADER_AT + 8, sector);
}

/** A chain of the header (whole, or split in two readable descriptors) and writable buffers laid out from DATA_AT. */
function chain(writableLengths: number[], splitHeader: boolean): DescriptorChain {
  const descriptors: Descriptor[] = splitHeader
    ? [
        { addr: HEADER_AT, len: 8, writable: false },
        { addr: HEADER_AT + 8, len: 8, writable: false },
      ]
    : [{ addr: HEADER_AT, len: 16, writable: false }];
  let at = DATA_AT;
  for (const len of writableLengths) {
    descriptors.push({ addr: at, len, writable: true });
    at += len + 64;
  }
  const writableLength = writableLengths.reduce((a, b) => a + b, 0);
  return { headIndex: 3, descriptors, readableLength: 16, writableLength, indirect: false };
}

/** What a parse says, with views as (guest offset, length) so two parses can be compared. */
function summary(parsed: ParsedRequest): unknown {
  const where = (v: Uint8Array) => [v.byteOffset, v.length];
  const request = parsed.request as Record<string, unknown>;
  return {
    status: parsed.status && where(parsed.status),
    request: {
      ...request,
      buffers: Array.isArray(request.buffers) ? (request.buffers as Uint8Array[]).map(where) : undefined,
    },
  };
}

test('the common read shape parses as the general parser parses the same request', () => {
  const shapes = [[4096, 1], [4097], [512, 1024, 2560, 1], [1], [2048, 2049]];
  const sectors = [0n, 7n, 2n ** 32n + 5n, BigInt(Number.MAX_SAFE_INTEGER)];
  for (const shape of shapes) {
    for (const sector of sectors) {
      writeHeader(BlockRequestType.in, sector);
      const fast = parseBlockRequest(memory, chain(shape, false), limits);
      const general = parseBlockRequest(memory, chain(shape, true), limits);
      assert.equal(fast.request.kind, 'in', `${shape} at ${sector}`);
      assert.deepEqual(summary(fast), summary(general), `${shape} at ${sector}`);
      assert.equal((fast.request as { sector: number }).sector, Number(sector));
    }
  }
});

test('a read-shaped chain that is not a good read gets the general answer', () => {
  const cases: [number, bigint, number[], string][] = [
    [BlockRequestType.in, 2n ** 53n, [4096, 1], 'malformed'], // sector past 2^53
    [BlockRequestType.in, 0n, [1000, 1], 'malformed'], // not whole sectors
    [BlockRequestType.in, 0n, [4096, 0, 1], 'in'], // an empty buffer
    [BlockRequestType.flush, 0n, [1], 'flush'],
    [BlockRequestType.getId, 0n, [20, 1], 'get-id'],
    [99, 0n, [512, 1], 'unsupported'],
  ];
  for (const [type, sector, shape, kind] of cases) {
    writeHeader(type, sector);
    const fast = parseBlockRequest(memory, chain(shape, false), limits);
    const general = parseBlockRequest(memory, chain(shape, true), limits);
    assert.equal(fast.request.kind, kind, `type ${type} ${shape}`);
    assert.deepEqual(summary(fast), summary(general), `type ${type} ${shape}`);
  }
});

test('the parsed sector is a copy: the guest rewriting the header later changes nothing', () => {
  writeHeader(BlockRequestType.in, 40n);
  const parsed = parseBlockRequest(memory, chain([4096, 1], false), limits);
  writeHeader(BlockRequestType.in, 80n);
  assert.equal((parsed.request as { sector: number }).sector, 40);
});
