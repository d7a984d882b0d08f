#!/usr/bin/env node
// Extracts the ELF vmlinux from a bzImage: the setup header says where the compressed payload
// is (payload_offset, payload_length); its magic says how it is compressed.
// Usage: extract-vmlinux.mjs BZIMAGE OUTPUT
import { execFileSync } from 'node:child_process';
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
// zstd payloads carry the uncompressed size as a trailing word; the decompressor ignores it.
const elf = execFileSync(command, args, { input: payload, maxBuffer: 512 * 1024 * 1024 });
if (elf.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${input}: payload is not an ELF file`);
writeFileSync(`${output}.tmp`, elf);
renameSync(`${output}.tmp`, output);
