// Checks that guest material is what it claims to be: a bzImage with a setup header, an ELF64
// vmlinux with the Xen PVH entry note, a newc cpio archive. Small pure readers over bytes;
// every offset is checked against the buffer, so a truncated or foreign file gives an error,
// never a read past its end.

export class MaterialFormatError extends Error {
  override name = 'MaterialFormatError';
}

const HDRS_MAGIC = 0x5372_6448; // "HdrS" at 0x202
const BOOT_FLAG = 0xaa55; // at 0x1fe
const XEN_ELFNOTE_PHYS32_ENTRY = 18;
const PT_NOTE = 4;

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export type PayloadCompression = 'gzip' | 'bzip2' | 'lzma' | 'xz' | 'lzo' | 'lz4' | 'zstd' | 'unknown';

const PAYLOAD_MAGICS: [PayloadCompression, number[]][] = [
  ['gzip', [0x1f, 0x8b]],
  ['bzip2', [0x42, 0x5a, 0x68]],
  ['lzma', [0x5d, 0x00, 0x00]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['lzo', [0x89, 0x4c, 0x5a, 0x4f]],
  ['lz4', [0x02, 0x21, 0x4c, 0x18]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
];

export interface BzImageInfo {
  /** Boot protocol version, e.g. 0x20f. */
  protocol: number;
  setupSectors: number;
  payloadOffset: number;
  payloadLength: number;
  payloadCompression: PayloadCompression;
}

/** Reads a bzImage's setup header (Linux boot protocol 2.08 or later, for the payload fields). */
export function inspectBzImage(image: Uint8Array): BzImageInfo {
  if (image.length < 0x250) throw new MaterialFormatError(`too short for a bzImage (${image.length} bytes)`);
  const v = view(image);
  if (v.getUint16(0x1fe, true) !== BOOT_FLAG) throw new MaterialFormatError('no boot flag 0xAA55 at 0x1fe');
  if (v.getUint32(0x202, true) !== HDRS_MAGIC) throw new MaterialFormatError("no 'HdrS' at 0x202");
  const protocol = v.getUint16(0x206, true);
  if (protocol < 0x208)
    throw new MaterialFormatError(`boot protocol ${protocol.toString(16)} has no payload fields`);
  const setupSectors = image[0x1f1] || 4;
  const payloadOffset = (setupSectors + 1) * 512 + v.getUint32(0x248, true);
  const payloadLength = v.getUint32(0x24c, true);
  if (payloadOffset + payloadLength > image.length) {
    throw new MaterialFormatError(
      `payload ${payloadOffset}+${payloadLength} runs past the file (${image.length})`,
    );
  }
  const payloadCompression =
    PAYLOAD_MAGICS.find(([, magic]) => magic.every((byte, i) => image[payloadOffset + i] === byte))?.[0] ??
    'unknown';
  return { protocol, setupSectors, payloadOffset, payloadLength, payloadCompression };
}

export interface ElfNoteEntry {
  name: string;
  type: number;
  desc: Uint8Array;
}

/** The notes of an ELF64 little-endian x86-64 file, from its PT_NOTE program headers. */
export function elf64Notes(image: Uint8Array): ElfNoteEntry[] {
  if (image.length < 64 || image[0] !== 0x7f || image[1] !== 0x45 || image[2] !== 0x4c || image[3] !== 0x46) {
    throw new MaterialFormatError('not an ELF file');
  }
  if (image[4] !== 2 || image[5] !== 1) throw new MaterialFormatError('not a little-endian ELF64 file');
  const v = view(image);
  if (v.getUint16(0x12, true) !== 62) throw new MaterialFormatError('not an x86-64 ELF file');
  const phoff = Number(v.getBigUint64(0x20, true));
  const phentsize = v.getUint16(0x36, true);
  const phnum = v.getUint16(0x38, true);
  if (phentsize < 56 || phoff + phnum * phentsize > image.length) {
    throw new MaterialFormatError('program header table outside the file');
  }
  const notes: ElfNoteEntry[] = [];
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (v.getUint32(ph, true) !== PT_NOTE) continue;
    const start = Number(v.getBigUint64(ph + 8, true));
    const size = Number(v.getBigUint64(ph + 32, true));
    if (start + size > image.length) throw new MaterialFormatError(`PT_NOTE ${i} outside the file`);
    notes.push(...parseNoteSegment(image.subarray(start, start + size)));
  }
  return notes;
}

function parseNoteSegment(segment: Uint8Array): ElfNoteEntry[] {
  const v = view(segment);
  const notes: ElfNoteEntry[] = [];
  let at = 0;
  while (at + 12 <= segment.length) {
    const nameSize = v.getUint32(at, true);
    const descSize = v.getUint32(at + 4, true);
    const type = v.getUint32(at + 8, true);
    const nameStart = at + 12;
    const descStart = nameStart + align4(nameSize);
    const next = descStart + align4(descSize);
    if (next > segment.length) throw new MaterialFormatError('ELF note runs past its segment');
    const name = new TextDecoder('latin1').decode(segment.subarray(nameStart, nameStart + nameSize));
    notes.push({
      name: name.replace(/\0+$/, ''),
      type,
      desc: segment.subarray(descStart, descStart + descSize),
    });
    at = next;
  }
  return notes;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

/** The 32-bit PVH entry address from the Xen PHYS32_ENTRY note, or undefined without one. */
export function pvhEntryPoint(image: Uint8Array): number | undefined {
  const note = elf64Notes(image).find((n) => n.name === 'Xen' && n.type === XEN_ELFNOTE_PHYS32_ENTRY);
  if (!note || note.desc.length < 4) return undefined;
  return view(note.desc).getUint32(0, true);
}

export interface CpioEntry {
  /** Path as stored, without a leading "./". */
  name: string;
  mode: number;
  size: number;
  /** Where the entry's contents start in the archive. */
  dataOffset: number;
}

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;

/** Lists a newc ("070701") cpio archive up to its TRAILER!!! entry. */
export function listNewcCpio(archive: Uint8Array): CpioEntry[] {
  const ascii = new TextDecoder('latin1');
  const entries: CpioEntry[] = [];
  let at = 0;
  for (;;) {
    if (at + 110 > archive.length)
      throw new MaterialFormatError(`cpio header at ${at} runs past the archive`);
    const header = ascii.decode(archive.subarray(at, at + 110));
    if (!header.startsWith('070701')) throw new MaterialFormatError(`no newc magic at ${at}`);
    const field = (index: number) => {
      const text = header.slice(6 + index * 8, 14 + index * 8);
      if (!/^[0-9a-fA-F]{8}$/.test(text)) throw new MaterialFormatError(`bad cpio header field at ${at}`);
      return Number.parseInt(text, 16);
    };
    const mode = field(1);
    const size = field(6);
    const nameSize = field(11);
    const nameStart = at + 110;
    if (nameSize < 1 || nameStart + nameSize > archive.length) {
      throw new MaterialFormatError(`cpio name at ${at} runs past the archive`);
    }
    const name = ascii.decode(archive.subarray(nameStart, nameStart + nameSize - 1));
    const dataStart = align4(nameStart + nameSize);
    if (name === 'TRAILER!!!') return entries;
    if (dataStart + size > archive.length)
      throw new MaterialFormatError(`cpio data of ${name} runs past the archive`);
    entries.push({ name: name.replace(/^\.\//, ''), mode, size, dataOffset: dataStart });
    at = align4(dataStart + size);
  }
}
