// Hostile rings: random descriptor tables, huge lengths, loops, addresses past RAM, random flags
// and random avail indices. The queue, the Reader and the Writer must never touch memory outside
// guest RAM (not even an access GuestMemory would refuse), never throw anything but the
// documented ChainError (pop() returns QueueError, never throws), and only hand out views of RAM.
//
// Reproduce a failure with the seed it prints: VIREO_FUZZ_SEED=<seed> VIREO_FUZZ_CASES=1.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Prng, prng } from '../../../../../tests/support/prng.js';
import { GuestMemory } from '../../../memory/guest-memory.js';
import { ChainError, Reader, Writer } from '../descriptor-utils.js';
import type { DescriptorChain } from './chain.js';
import { Queue } from './queue.js';
import { QueueError } from './queue-error.js';
import {
  AVAIL_IDX_OFFSET,
  AVAIL_RING_OFFSET,
  availRingBytes,
  descriptorTableBytes,
  usedEventOffset,
  usedRingBytes,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
} from './ring-layout.js';

const LOW_SIZE = 0x4000;
const HIGH_BASE = 0x1_0000;
const HIGH_SIZE = 0x2000;
const MAX_INDIRECT = 32;
const CASES = Number(process.env.VIREO_FUZZ_CASES ?? 50000);
const BASE_SEED = Number(process.env.VIREO_FUZZ_SEED ?? (Date.now() ^ (process.pid << 16)) >>> 0);

type Rng = Prng;

/** GuestMemory that records every access it is asked for that lies outside RAM. */
class RecordingMemory extends GuestMemory {
  readonly violations: string[] = [];
  accesses = 0;

  private check(what: string, gpa: bigint | number, length: number): void {
    this.accesses++;
    if (!this.contains(gpa, length)) this.violations.push(`${what}(0x${gpa.toString(16)}, ${length})`);
  }
  override view(gpa: bigint | number, length: number): Uint8Array {
    this.check('view', gpa, length);
    return super.view(gpa, length);
  }
  override read(gpa: bigint | number, length: number): Uint8Array {
    this.check('read', gpa, length);
    return super.read(gpa, length);
  }
  override write(gpa: bigint | number, data: Uint8Array): void {
    this.check('write', gpa, data.length);
    super.write(gpa, data);
  }
  override fill(gpa: bigint | number, length: number, value = 0): void {
    this.check('fill', gpa, length);
    super.fill(gpa, length, value);
  }
  override readU8(gpa: bigint | number): number {
    this.check('readU8', gpa, 1);
    return super.readU8(gpa);
  }
  override readU16(gpa: bigint | number): number {
    this.check('readU16', gpa, 2);
    return super.readU16(gpa);
  }
  override readU32(gpa: bigint | number): number {
    this.check('readU32', gpa, 4);
    return super.readU32(gpa);
  }
  override readU64(gpa: bigint | number): bigint {
    this.check('readU64', gpa, 8);
    return super.readU64(gpa);
  }
  override writeU8(gpa: bigint | number, value: number): void {
    this.check('writeU8', gpa, 1);
    super.writeU8(gpa, value);
  }
  override writeU16(gpa: bigint | number, value: number): void {
    this.check('writeU16', gpa, 2);
    super.writeU16(gpa, value);
  }
  override writeU32(gpa: bigint | number, value: number): void {
    this.check('writeU32', gpa, 4);
    super.writeU32(gpa, value);
  }
  override writeU64(gpa: bigint | number, value: bigint): void {
    this.check('writeU64', gpa, 8);
    super.writeU64(gpa, value);
  }
}

const low = new Uint8Array(LOW_SIZE);
const high = new Uint8Array(HIGH_SIZE);

/** The raw bytes of RAM, written by the fuzzer as the guest (not through the recording memory). */
function raw(gpa: number): DataView | undefined {
  if (gpa >= 0 && gpa + 16 <= LOW_SIZE) return new DataView(low.buffer, gpa, 16);
  if (gpa >= HIGH_BASE && gpa + 16 <= HIGH_BASE + HIGH_SIZE)
    return new DataView(high.buffer, gpa - HIGH_BASE, 16);
  return undefined;
}

function isInsideRam(view: Uint8Array): boolean {
  return [low, high].some(
    (r) =>
      view.buffer === r.buffer &&
      view.byteOffset >= r.byteOffset &&
      view.byteOffset + view.length <= r.byteLength,
  );
}

function randomAddress(rng: Rng): number {
  switch (rng.int(9)) {
    case 0:
      return rng.int(LOW_SIZE);
    case 1:
      return HIGH_BASE + rng.int(HIGH_SIZE);
    case 2:
      return LOW_SIZE - rng.int(64);
    case 3:
      return HIGH_BASE + HIGH_SIZE - rng.int(64);
    case 4:
      return LOW_SIZE + rng.int(HIGH_BASE - LOW_SIZE);
    case 5:
      return rng.pick([2 ** 53 - 16, 2 ** 63, 2 ** 64 - 16, 0xffff_ffff, HIGH_BASE - 1]);
    case 6:
      return rng.u32() * 0x1_0000_0000 + rng.u32();
    default:
      return rng.int(LOW_SIZE / 16) * 16;
  }
}

function randomLength(rng: Rng): number {
  switch (rng.int(7)) {
    case 0:
      return 0;
    case 1:
      return rng.pick([0xffff_ffff, 0x8000_0000, LOW_SIZE, HIGH_SIZE, LOW_SIZE + 1]);
    case 2:
      return rng.u32();
    case 3:
      return 16 * rng.int(MAX_INDIRECT + 4);
    default:
      return rng.int(256);
  }
}

function randomFlags(rng: Rng): number {
  if (rng.chance(0.05)) return rng.u16();
  let flags = 0;
  if (rng.chance(0.6)) flags |= VIRTQ_DESC_F_NEXT;
  if (rng.chance(0.4)) flags |= VIRTQ_DESC_F_WRITE;
  if (rng.chance(0.12)) flags |= VIRTQ_DESC_F_INDIRECT;
  return flags;
}

function writeRandomDescriptor(rng: Rng, at: number, tableEntries: number): void {
  const d = raw(at);
  if (!d) return;
  const addr = randomAddress(rng);
  d.setUint32(0, addr % 0x1_0000_0000, true);
  d.setUint32(4, Math.floor(addr / 0x1_0000_0000) >>> 0, true);
  d.setUint32(8, randomLength(rng), true);
  d.setUint16(12, randomFlags(rng), true);
  d.setUint16(14, rng.chance(0.9) ? rng.int(Math.max(tableEntries, 1)) : rng.u16(), true);
}

function fillTable(rng: Rng, base: number, entries: number): void {
  for (let i = 0; i < entries; i++) writeRandomDescriptor(rng, base + 16 * i, entries);
}

interface Rings {
  size: number;
  desc: number;
  avail: number;
  used: number;
}

function chooseRings(rng: Rng): Rings {
  const size = rng.chance(0.05) ? rng.int(300) : 2 ** rng.int(8);
  if (rng.chance(0.15)) {
    return { size, desc: randomAddress(rng), avail: randomAddress(rng), used: randomAddress(rng) };
  }
  // A plausible layout somewhere in low RAM, sometimes nudged out of alignment or off the end.
  const desc = rng.int(8) * 0x400;
  const avail = desc + descriptorTableBytes(size) + (rng.chance(0.05) ? 1 : 0);
  const used = ((avail + availRingBytes(size) + 3) & ~3) + (rng.chance(0.05) ? 2 : 0);
  return { size, desc, avail, used };
}

function setDescriptor(at: number, addr: number, len: number, flags: number, next: number): void {
  const d = raw(at);
  if (!d) return;
  d.setUint32(0, addr % 0x1_0000_0000, true);
  d.setUint32(4, Math.floor(addr / 0x1_0000_0000) >>> 0, true);
  d.setUint32(8, len, true);
  d.setUint16(12, flags, true);
  d.setUint16(14, next, true);
}

/** A chain a real driver could have written, then (usually) one field of it spoiled, published. */
function plausibleChain(rng: Rng, rings: Rings): void {
  if (rings.size === 0) return;
  const smallBuffer = () =>
    rng.chance(0.5) ? rng.int(LOW_SIZE - 512) : HIGH_BASE + rng.int(HIGH_SIZE - 512);
  const write = (tableBase: number, entries: number, count: number, viaIndex: (i: number) => number) => {
    const firstWritable = rng.int(count + 1);
    for (let i = 0; i < count; i++) {
      const last = i === count - 1;
      const flags = (i >= firstWritable ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT);
      setDescriptor(
        tableBase + 16 * viaIndex(i),
        smallBuffer(),
        rng.int(512),
        flags,
        last ? 0 : viaIndex(i + 1),
      );
    }
    if (rng.chance(0.7)) {
      const victim = tableBase + 16 * viaIndex(rng.int(count));
      const d = raw(victim);
      if (d) {
        const field = rng.pick([0, 4, 8, 12, 14]);
        if (field >= 12)
          d.setUint16(field, rng.chance(0.5) ? rng.u16() : rng.int(Math.max(entries, 1)), true);
        else d.setUint32(field, rng.chance(0.5) ? rng.u32() : rng.int(LOW_SIZE), true);
      }
    }
  };
  const order = Array.from({ length: rings.size }, (_, i) => i).sort(() => rng.int(3) - 1);
  const direct = 1 + rng.int(Math.min(rings.size, 6));
  if (rng.chance(0.4)) {
    const entries = 1 + rng.int(MAX_INDIRECT);
    const table = rng.int((LOW_SIZE - 16 * MAX_INDIRECT) / 16) * 16;
    write(table, entries, entries, (i) => i);
    write(rings.desc, rings.size, direct, (i) => order[i]!);
    setDescriptor(rings.desc + 16 * order[direct - 1]!, table, 16 * entries, VIRTQ_DESC_F_INDIRECT, 0);
  } else {
    write(rings.desc, rings.size, direct, (i) => order[i]!);
  }
  const idx = raw(rings.avail + AVAIL_IDX_OFFSET);
  if (!idx) return;
  const availIdx = idx.getUint16(0, true);
  raw(rings.avail + AVAIL_RING_OFFSET + 2 * (availIdx % rings.size))?.setUint16(0, order[0]!, true);
  idx.setUint16(0, (availIdx + 1) & 0xffff, true);
}

function guestScribble(rng: Rng, rings: Rings): void {
  switch (rng.int(8)) {
    case 6:
    case 7:
      plausibleChain(rng, rings);
      break;
    case 0:
      fillTable(rng, rings.desc, rings.size);
      break;
    case 1: {
      const entries = 1 + rng.int(MAX_INDIRECT + 2);
      fillTable(
        rng,
        rng.pick([rng.int(LOW_SIZE / 16) * 16, HIGH_BASE + rng.int(HIGH_SIZE / 16) * 16]),
        entries,
      );
      break;
    }
    case 2: {
      // Indirect descriptors pointing at random descriptor-looking memory.
      const d = raw(rings.desc + 16 * rng.int(Math.max(rings.size, 1)));
      if (d) {
        d.setUint32(0, rng.int(LOW_SIZE / 16) * 16, true);
        d.setUint32(4, 0, true);
        d.setUint32(8, 16 * rng.int(MAX_INDIRECT + 2), true);
        d.setUint16(12, VIRTQ_DESC_F_INDIRECT | (rng.chance(0.1) ? VIRTQ_DESC_F_NEXT : 0), true);
      }
      break;
    }
    case 3: {
      const d = raw(rings.avail + AVAIL_RING_OFFSET + 2 * rng.int(Math.max(rings.size, 1)));
      d?.setUint16(0, rng.chance(0.9) ? rng.int(Math.max(rings.size, 1)) : rng.u16(), true);
      break;
    }
    case 4: {
      const d = raw(rings.avail + usedEventOffset(rings.size));
      d?.setUint16(0, rng.u16(), true);
      break;
    }
    default: {
      const d = raw(rings.avail + AVAIL_IDX_OFFSET);
      if (!d) break;
      const idx = d.getUint16(0, true);
      d.setUint16(0, rng.chance(0.85) ? (idx + rng.int(rings.size + 1)) & 0xffff : rng.u16(), true);
    }
  }
}

function checkChain(chain: DescriptorChain, queue: Queue, memory: RecordingMemory): void {
  let seenWritable = false;
  let readable = 0;
  let writable = 0;
  assert.ok(chain.headIndex >= 0 && chain.headIndex < queue.size, 'head inside the table');
  assert.ok(chain.descriptors.length <= queue.size + MAX_INDIRECT, 'chain length capped');
  for (const d of chain.descriptors) {
    assert.ok(memory.contains(d.addr, d.len), `descriptor 0x${d.addr.toString(16)}+${d.len} inside RAM`);
    if (d.writable) seenWritable = true;
    else assert.ok(!seenWritable, 'readable before writable');
    if (d.writable) writable += d.len;
    else readable += d.len;
  }
  assert.equal(chain.readableLength, readable);
  assert.equal(chain.writableLength, writable);
  assert.ok(readable + writable <= 0xffff_ffff, 'total length fits a u32');
}

/** Random reads and writes; only ChainError may come out. */
function exerciseStreams(rng: Rng, chain: DescriptorChain, memory: RecordingMemory): number {
  const reader = Reader.fromChain(memory, chain);
  let writer = Writer.fromChain(memory, chain);
  for (const v of [...reader.views(), ...writer.views()]) assert.ok(isInsideRam(v), 'view inside RAM');
  const steps = rng.int(8);
  for (let i = 0; i < steps; i++) {
    try {
      switch (rng.int(13)) {
        case 10:
          reader.readU16();
          break;
        case 11:
          writer.writeU8(rng.int(256));
          writer.writeU16(rng.u16());
          break;
        case 12:
          writer.writeU64(BigInt(rng.u32()));
          break;
        case 0:
          reader.readU8();
          break;
        case 1:
          reader.readU32();
          break;
        case 2:
          reader.readU64();
          break;
        case 3:
          reader.readBytes(rng.chance(0.5) ? rng.int(64) : rng.int(reader.remaining + 8));
          break;
        case 4:
          reader.skip(rng.int(reader.remaining + 4));
          break;
        case 5:
          writer.writeU32(rng.u32());
          break;
        case 6:
          writer.write(new Uint8Array(rng.int(Math.min(writer.available + 8, 4096))));
          break;
        case 7: {
          const views = writer.views(rng.int(writer.available + 1));
          for (const v of views) assert.ok(isInsideRam(v), 'view inside RAM');
          writer.consume(views.reduce((n, v) => n + v.length, 0));
          break;
        }
        case 8: {
          const tail = writer.splitAt(rng.int(writer.available + 2));
          writer = rng.chance(0.5) ? tail : writer;
          break;
        }
        default:
          reader.readInto(new Uint8Array(rng.int(32)));
      }
    } catch (e) {
      if (!(e instanceof ChainError)) throw e;
    }
  }
  return writer.bytesWritten;
}

/** What the fuzzer reached, so a change that makes it toothless shows. */
const seen = new Map<string, number>();
function saw(what: string): void {
  seen.set(what, (seen.get(what) ?? 0) + 1);
}

function runCase(seed: number, memory: RecordingMemory): void {
  const rng = prng(seed);
  low.fill(0);
  high.fill(0);
  const queue = new Queue(memory, { maxSize: 256, maxIndirectDescriptors: MAX_INDIRECT });
  const rings = chooseRings(rng);
  queue.size = rings.size;
  queue.descTableAddress = rings.desc;
  queue.availRingAddress = rings.avail;
  queue.usedRingAddress = rings.used;
  queue.eventIdx = rng.chance(0.5);
  queue.indirectDescriptors = rng.chance(0.7);
  fillTable(rng, rings.desc, rings.size);
  for (let i = 0; i < 3; i++) guestScribble(rng, rings);

  const problem = queue.enable();
  if (problem !== undefined) {
    saw('enable refused');
    assert.equal(queue.pop(), undefined, 'a queue that failed to enable pops nothing');
    return;
  }
  assert.equal(typeof queue.validate(), 'undefined');
  assert.ok(memory.contains(rings.used, usedRingBytes(rings.size)));
  // Publish a random number of random heads.
  const published = rng.int(rings.size + 2);
  for (let i = 0; i < published; i++) {
    const d = raw(rings.avail + AVAIL_RING_OFFSET + 2 * (i % rings.size));
    d?.setUint16(0, rng.chance(0.95) ? rng.int(rings.size) : rng.u16(), true);
  }
  raw(rings.avail + AVAIL_IDX_OFFSET)?.setUint16(0, rng.chance(0.9) ? published : rng.u16(), true);

  let fatal: QueueError | undefined;
  const steps = 4 + rng.int(24);
  for (let step = 0; step < steps; step++) {
    const action = rng.int(10);
    if (action < 6) {
      const result = queue.pop();
      if (result === undefined) continue;
      if (result instanceof QueueError) {
        if (fatal) assert.equal(result, fatal, 'a stopped queue keeps its error');
        else saw(result.kind);
        if (result.fatal) fatal = result;
        else {
          assert.ok(result.headIndex !== undefined && result.headIndex < rings.size);
          queue.addUsed(result.headIndex, 0);
        }
        continue;
      }
      assert.equal(fatal, undefined, 'no chain after a fatal error');
      saw(result.indirect ? 'indirect chain' : 'direct chain');
      if (result.descriptors.length > 3) saw('chain of 4+');
      checkChain(result, queue, memory);
      const written = exerciseStreams(rng, result, memory);
      queue.addUsed(result.headIndex, rng.chance(0.9) ? written : rng.u32());
    } else if (action === 6) {
      queue.needsNotification();
    } else if (action === 7) {
      if (rng.chance(0.5)) queue.enableNotification();
      else queue.disableNotification();
    } else if (action === 8) {
      guestScribble(rng, rings);
    } else {
      const restored = new Queue(memory, { maxSize: 256, maxIndirectDescriptors: MAX_INDIRECT });
      const saved = JSON.parse(JSON.stringify(queue.state()));
      if (rng.chance(0.5)) {
        assert.equal(restored.restore(saved), undefined);
      } else {
        // A damaged snapshot: refused or accepted, never thrown, never a ready queue off RAM.
        const key = rng.pick(Object.keys(saved));
        saved[key] = rng.pick([
          -1,
          0.5,
          2 ** 64,
          rng.u32(),
          rng.u16(),
          'x',
          null,
          true,
          {},
          randomAddress(rng),
        ]);
        const problem = restored.restore(saved);
        if (problem === undefined && restored.ready) assert.equal(restored.validate(), undefined);
        if (problem !== undefined) assert.equal(restored.ready, false);
        restored.pop();
      }
    }
  }
}

test(`virtqueue fuzz: ${CASES} hostile rings (base seed ${BASE_SEED})`, (t) => {
  const memory = new RecordingMemory([
    { gpa: 0, bytes: low },
    { gpa: HIGH_BASE, bytes: high },
  ]);
  let accesses = 0;
  for (let i = 0; i < CASES; i++) {
    const seed = (BASE_SEED + i) >>> 0;
    try {
      runCase(seed, memory);
      assert.deepEqual(memory.violations, [], 'accesses outside guest RAM');
    } catch (e) {
      const reason = e instanceof Error ? (e.stack ?? e.message) : String(e);
      assert.fail(`case seed ${seed} (rerun: VIREO_FUZZ_SEED=${seed} VIREO_FUZZ_CASES=1): ${reason}`);
    }
    accesses += memory.accesses;
    memory.accesses = 0;
  }
  assert.ok(accesses > CASES, 'the fuzzer reached guest memory');
  t.diagnostic(`reached: ${[...seen].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  if (CASES >= 10000) {
    for (const kind of [
      'enable refused',
      'direct chain',
      'indirect chain',
      'chain of 4+',
      'avail-index-jump',
      'head-out-of-range',
      'next-out-of-range',
      'chain-too-long',
      'buffer-outside-ram',
      'readable-after-writable',
      'indirect-not-negotiated',
      'nested-indirect',
      'indirect-with-next',
      'indirect-bad-length',
      'indirect-too-long',
      'indirect-outside-ram',
    ]) {
      assert.ok(seen.has(kind), `the fuzzer never reached ${kind}`);
    }
  }
});
