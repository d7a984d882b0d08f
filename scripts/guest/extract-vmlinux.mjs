#!/usr/bin/env node
// Extracts the ELF vmlinux from a bzImage: the setup header says where the compressed payload
// is (payload_offset, payload_length); its magic says how it is compressed.
// Usage: extract-vmlinux.mjs BZIMAGE OUTPUT
import { spawnSync } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error('usage: extract-vmlinux.mjs BZIMAGE OUTPUT');
  process.exit(2);
}
const image = readFileSync(input);
if (image.readUInt32LE(0x202) !== 0x53726448) throw new Error(`${input}: not a bzImage (no HdrS)`);
const setupSects = image[0x1f1] || 4;
const payloadStart = (setupSects + 1) * 512 + image.readUInt32LE(0x248);
const payload = image.subarray(payloadStart, payloadStart + image.readUInt32LE(0x24c));

const decompressors = [
  { magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a], command: ['xz', '-dc'] },
  { magic: [0x28, 0xb5, 0x2f, 0xfd], command: ['zstd', '-dcq'] },
  { magic: [0x1f, 0x8b], command: ['gzip', '-dc'] },
];
const match = decompressors.find((d) => d.magic.every((byte, i) => payload[i] === byte));
if (!match)
  throw new Error(`${input}: unknown payload compression (magic ${payload.subarray(0, 4).toString('hex')})`);
const [command, ...args] = match.command;
// The kernel appends the uncompressed size after the stream, so decompressors report a short or
// trailing input; the output is whole when the ELF's section header table is inside it.
const result = spawnSync(command, args, { input: payload, maxBuffer: 512 * 1024 * 1024 });
const elf = result.stdout;
if (!elf || elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46) {
  throw new Error(`${input}: ${command} gave no ELF file: ${result.stderr}`);
}
const sectionHeadersEnd = Number(elf.readBigUInt64LE(0x28)) + elf.readUInt16LE(0x3a) * elf.readUInt16LE(0x3c);
if (sectionHeadersEnd > elf.length) throw new Error(`${input}: the decompressed ELF is truncated`);
writeFileSync(`${output}.tmp`, elf);
renameSync(`${output}.tmp`, output);
