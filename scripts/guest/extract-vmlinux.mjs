#!/usr/bin/env node
// Extracts the ELF vmlinux from a bzImage, for the PVH boot path. The setup header says where
// the compressed payload is (payload_offset, payload_length); its magic says how it is
// compressed. A header without those fields falls back to scanning for a known magic. The result
// must be an ELF64 file whose notes carry XEN_ELFNOTE_PHYS32_ENTRY, or it is not written.
// Usage: extract-vmlinux.mjs BZIMAGE OUTPUT
import { spawnSync } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

const XEN_ELFNOTE_PHYS32_ENTRY = 18;
const PT_NOTE = 4;

const decompressors = [
  { name: 'xz', magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], command: ['xz', '-dcq'] },
  { name: 'zstd', magic: [0x28, 0xb5, 0x2f, 0xfd], command: ['zstd', '-dcq'] },
  { name: 'gzip', magic: [0x1f, 0x8b, 0x08], command: ['gzip', '-dcq'] },
  { name: 'lz4', magic: [0x02, 0x21, 0x4c, 0x18], command: ['lz4', '-dcq'] },
  { name: 'lzma', magic: [0x5d, 0x00, 0x00], command: ['xz', '--format=lzma', '-dcq'] },
];

function fail(message) {
  console.error(`extract-vmlinux: ${message}`);
  process.exit(1);
}

function startsWith(bytes, offset, magic) {
  return magic.every((byte, i) => bytes[offset + i] === byte);
}

/** Candidate (offset, decompressor) pairs: the header's payload first, then every magic found. */
function* payloadCandidates(image) {
  const setupSects = image[0x1f1] || 4;
  const protocol = image.readUInt16LE(0x206);
  if (protocol >= 0x208) {
    const start = (setupSects + 1) * 512 + image.readUInt32LE(0x248);
    const length = image.readUInt32LE(0x24c);
    for (const d of decompressors) {
      if (startsWith(image, start, d.magic)) yield { start, end: start + length, decompressor: d };
    }
  }
  for (let offset = 0; offset < image.length; offset++) {
    for (const d of decompressors) {
      if (startsWith(image, offset, d.magic)) yield { start: offset, end: image.length, decompressor: d };
    }
  }
}

/** Offset of the Xen PHYS32_ENTRY note's value in an ELF64 file, or undefined. */
function pvhEntry(elf) {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2) return undefined;
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (ph + 56 > elf.length || elf.readUInt32LE(ph) !== PT_NOTE) continue;
    const start = Number(elf.readBigUInt64LE(ph + 8));
    const end = Math.min(start + Number(elf.readBigUInt64LE(ph + 32)), elf.length);
    for (let note = start; note + 12 <= end; ) {
      const nameSize = elf.readUInt32LE(note);
      const descSize = elf.readUInt32LE(note + 4);
      const type = elf.readUInt32LE(note + 8);
      const name = elf.subarray(note + 12, note + 12 + nameSize).toString('latin1');
      const desc = note + 12 + ((nameSize + 3) & ~3);
      if (name === 'Xen\0' && type === XEN_ELFNOTE_PHYS32_ENTRY && desc + 4 <= end)
        return elf.readUInt32LE(desc);
      note = desc + ((descSize + 3) & ~3);
    }
  }
  return undefined;
}

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error('usage: extract-vmlinux.mjs BZIMAGE OUTPUT');
  process.exit(2);
}
const image = readFileSync(input);
if (image.length < 0x250 || image.readUInt32LE(0x202) !== 0x53726448)
  fail(`${input}: not a bzImage (no HdrS)`);

const tried = new Set();
for (const { start, end, decompressor } of payloadCandidates(image)) {
  if (tried.has(start)) continue;
  tried.add(start);
  const [command, ...args] = decompressor.command;
  // The kernel appends the uncompressed size after the stream, so decompressors complain about
  // trailing data and exit non-zero; the output is whole when the ELF's section headers fit in it.
  const result = spawnSync(command, args, {
    input: image.subarray(start, end),
    maxBuffer: 1024 * 1024 * 1024,
  });
  if (result.error) fail(`cannot run ${command}: ${result.error.message}`);
  const elf = result.stdout;
  if (!elf || elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46) continue;
  const sectionHeadersEnd =
    Number(elf.readBigUInt64LE(0x28)) + elf.readUInt16LE(0x3a) * elf.readUInt16LE(0x3c);
  if (sectionHeadersEnd > elf.length) fail(`${input}: the ${decompressor.name} payload decompressed short`);
  const entry = pvhEntry(elf);
  if (entry === undefined)
    fail(`${input}: the vmlinux has no Xen PVH entry note (kernel built without CONFIG_PVH)`);
  writeFileSync(`${output}.tmp`, elf);
  renameSync(`${output}.tmp`, output);
  console.error(
    `extract-vmlinux: ${decompressor.name} payload at 0x${start.toString(16)}, ${elf.length} bytes, PVH entry 0x${entry.toString(16)}`,
  );
  process.exit(0);
}
fail(`${input}: no compressed ELF payload found (tried ${tried.size} candidates)`);
