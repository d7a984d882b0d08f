import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  elf64Notes,
  inspectBzImage,
  listNewcCpio,
  MaterialFormatError,
  pvhEntryPoint,
  S_IFREG,
} from './inspect.js';

function syntheticBzImage(payload: number[]): Uint8Array {
  const setupSectors = 4;
  const image = new Uint8Array((setupSectors + 1) * 512 + 0x100 + payload.length);
  const v = new DataView(image.buffer);
  image[0x1f1] = setupSectors;
  v.setUint16(0x1fe, 0xaa55, true);
  v.setUint32(0x202, 0x5372_6448, true);
  v.setUint16(0x206, 0x20f, true);
  v.setUint32(0x248, 0x100, true);
  v.setUint32(0x24c, payload.length, true);
  image.set(payload, (setupSectors + 1) * 512 + 0x100);
  return image;
}

test('a bzImage setup header gives the protocol and where the compressed payload is', () => {
  const info = inspectBzImage(syntheticBzImage([0x02, 0x21, 0x4c, 0x18, 1, 2, 3]));
  assert.equal(info.protocol, 0x20f);
  assert.equal(info.payloadOffset, 5 * 512 + 0x100);
  assert.equal(info.payloadLength, 7);
  assert.equal(info.payloadCompression, 'lz4');
  assert.equal(inspectBzImage(syntheticBzImage([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0])).payloadCompression, 'xz');
  assert.equal(inspectBzImage(syntheticBzImage([9, 9, 9, 9])).payloadCompression, 'unknown');
});

test('a file without HdrS, or whose payload runs past its end, is not a bzImage', () => {
  const image = syntheticBzImage([1, 2, 3]);
  image[0x202] = 0;
  assert.throws(() => inspectBzImage(image), /HdrS/);
  const truncated = syntheticBzImage([1, 2, 3]).subarray(0, 5 * 512 + 0x101);
  assert.throws(() => inspectBzImage(truncated), /runs past the file/);
  assert.throws(() => inspectBzImage(new Uint8Array(16)), MaterialFormatError);
});

/** An ELF64 x86-64 header, one PT_NOTE program header and its notes. */
function syntheticElf(notes: { name: string; type: number; desc: number[] }[]): Uint8Array {
  const noteBytes: number[] = [];
  const pad = () => {
    while (noteBytes.length % 4) noteBytes.push(0);
  };
  const u32 = (n: number) => noteBytes.push(n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff);
  for (const note of notes) {
    u32(note.name.length + 1);
    u32(note.desc.length);
    u32(note.type);
    noteBytes.push(...[...note.name].map((c) => c.charCodeAt(0)), 0);
    pad();
    noteBytes.push(...note.desc);
    pad();
  }
  const image = new Uint8Array(64 + 56 + noteBytes.length);
  const v = new DataView(image.buffer);
  image.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  v.setUint16(0x12, 62, true);
  v.setBigUint64(0x20, 64n, true);
  v.setUint16(0x36, 56, true);
  v.setUint16(0x38, 1, true);
  v.setUint32(64, 4, true); // PT_NOTE
  v.setBigUint64(64 + 8, 120n, true);
  v.setBigUint64(64 + 32, BigInt(noteBytes.length), true);
  image.set(noteBytes, 120);
  return image;
}

test('the PVH entry comes from the Xen PHYS32_ENTRY note (type 18), past other notes', () => {
  const elf = syntheticElf([
    { name: 'GNU', type: 3, desc: [1, 2, 3, 4, 5] },
    { name: 'Xen', type: 6, desc: [0x6c, 0x69, 0x6e, 0x75, 0x78, 0] },
    { name: 'Xen', type: 18, desc: [0x50, 0x08, 0x00, 0x01] },
  ]);
  assert.equal(elf64Notes(elf).length, 3);
  assert.equal(pvhEntryPoint(elf), 0x0100_0850);
});

test('an ELF without the note has no PVH entry; a note that overruns its segment is an error', () => {
  assert.equal(pvhEntryPoint(syntheticElf([{ name: 'Xen', type: 6, desc: [0] }])), undefined);
  const broken = syntheticElf([{ name: 'Xen', type: 18, desc: [0, 0, 0, 1] }]);
  new DataView(broken.buffer).setUint32(124, 0x1000, true); // descsz far past the segment
  assert.throws(() => pvhEntryPoint(broken), /runs past/);
  const elf32 = syntheticElf([]);
  elf32[4] = 1;
  assert.throws(() => pvhEntryPoint(elf32), /ELF64/);
  assert.throws(() => pvhEntryPoint(new Uint8Array(100)), /not an ELF/);
});

function newcEntry(name: string, mode: number, data: string): string {
  const field = (n: number) => n.toString(16).padStart(8, '0');
  const header = `070701${field(1)}${field(mode)}${field(0)}${field(0)}${field(1)}${field(0)}${field(data.length)}${field(0)}${field(0)}${field(0)}${field(0)}${field(name.length + 1)}${field(0)}`;
  let entry = `${header}${name}\0`;
  while (entry.length % 4) entry += '\0';
  entry += data;
  while (entry.length % 4) entry += '\0';
  return entry;
}

test('a newc cpio archive lists its entries with mode and size up to the trailer', () => {
  const archive = new TextEncoder().encode(
    newcEntry('.', 0o040755, '') +
      newcEntry('./init', 0o100755, '#!/bin/sh\n') +
      newcEntry('bin/busybox', 0o100755, 'elf') +
      newcEntry('TRAILER!!!', 0, '') +
      '\0'.repeat(512),
  );
  const entries = listNewcCpio(archive);
  assert.deepEqual(
    entries.map((e) => e.name),
    ['.', 'init', 'bin/busybox'],
  );
  assert.equal(entries[1]?.size, 10);
  assert.equal((entries[1]?.mode ?? 0) & 0o170000, S_IFREG);
});

test('a truncated or foreign cpio archive is an error, not a short list', () => {
  const whole = new TextEncoder().encode(
    newcEntry('init', 0o100755, 'x'.repeat(100)) + newcEntry('TRAILER!!!', 0, ''),
  );
  assert.throws(() => listNewcCpio(whole.subarray(0, 150)), /runs past/);
  assert.throws(() => listNewcCpio(whole.subarray(0, 200)), MaterialFormatError, 'no trailer');
  assert.throws(() => listNewcCpio(new TextEncoder().encode('070707'.padEnd(200, '0'))), /newc magic/);
});
