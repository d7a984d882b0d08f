import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KernelImageError } from './bzimage.js';
import { findPvhEntry, PT_LOAD, PT_NOTE, parseElf, parseNotes } from './elf.js';
import { syntheticElf } from './synthetic-kernels.js';

test('parses program headers of an ELF64 vmlinux', () => {
  const image = syntheticElf({
    segments: [
      { paddr: 0x100_0000, data: new Uint8Array(0x100) },
      { paddr: 0x120_0000, data: new Uint8Array(0x10), memsz: 0x1000 },
    ],
    pvhEntry: 0x100_0040,
  });
  const elf = parseElf(image);
  assert.equal(elf.class, 64);
  assert.deepEqual(
    elf.segments.map((s) => [s.type, s.paddr, s.filesz, s.memsz]),
    [
      [PT_LOAD, 0x100_0000, 0x100, 0x100],
      [PT_LOAD, 0x120_0000, 0x10, 0x1000],
      [PT_NOTE, 0, elf.segments[2]!.filesz, elf.segments[2]!.filesz],
    ],
  );
});

test('finds the Xen PHYS32_ENTRY note past other notes, with 4- or 8-byte descriptors', () => {
  for (const noteDescSize of [4, 8] as const) {
    const image = syntheticElf({ pvhEntry: 0x100_1234, noteDescSize });
    assert.equal(findPvhEntry(image, parseElf(image)), 0x100_1234);
  }
  const noNote = syntheticElf();
  assert.equal(findPvhEntry(noNote, parseElf(noNote)), undefined);
});

test('note parsing stops at a truncated note instead of reading past it', () => {
  const data = new Uint8Array(16);
  new DataView(data.buffer).setUint32(4, 1000, true);
  assert.deepEqual(parseNotes(data), []);
});

test('rejects non-x86 or malformed ELF files', () => {
  assert.throws(() => parseElf(syntheticElf({ machine: 183 })), /not an x86 kernel/);
  assert.throws(() => parseElf(Uint8Array.of(1, 2, 3)), /not an ELF/);
  const image = syntheticElf();
  assert.throws(() => parseElf(image.subarray(0, 100)), KernelImageError);
  const badOffset = syntheticElf();
  new DataView(badOffset.buffer).setBigUint64(64 + 8, 0xffff_ffffn, true);
  assert.throws(() => parseElf(badOffset), /past the end/);
});
