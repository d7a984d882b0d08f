// ELF vmlinux images for the PVH boot path: program headers, PT_LOAD segments and the Xen
// PHYS32_ENTRY note that marks a kernel as PVH-bootable.
import { hex } from './bytes.js';
import { KernelImageError } from './bzimage.js';

export const PT_LOAD = 1;
export const PT_NOTE = 4;
export const XEN_ELFNOTE_PHYS32_ENTRY = 18;
const EM_386 = 3;
const EM_X86_64 = 62;

export interface ElfSegment {
  type: number;
  offset: number;
  paddr: number;
  vaddr: bigint;
  filesz: number;
  memsz: number;
}

export interface ElfImage {
  class: 32 | 64;
  machine: number;
  entry: bigint;
  segments: ElfSegment[];
}

export function looksLikeElf(image: Uint8Array): boolean {
  return (
    image.length >= 4 && image[0] === 0x7f && image[1] === 0x45 && image[2] === 0x4c && image[3] === 0x46
  );
}

function safe(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER))
    throw new KernelImageError(`malformed ELF: ${what} ${hex(value)}`);
  return Number(value);
}

/** Parses an x86 ELF32/ELF64 executable's header and program headers; every offset is checked against the file. */
export function parseElf(image: Uint8Array): ElfImage {
  if (!looksLikeElf(image)) throw new KernelImageError('not an ELF file: no \\x7fELF magic');
  if (image.length < 52) throw new KernelImageError('malformed ELF: file too short for an ELF header');
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const elfClass = image[4];
  if (elfClass !== 1 && elfClass !== 2)
    throw new KernelImageError(`malformed ELF: unknown class ${elfClass}`);
  if (image[5] !== 1) throw new KernelImageError('not an x86 kernel: ELF is big-endian');
  const is64 = elfClass === 2;
  if (is64 && image.length < 64)
    throw new KernelImageError('malformed ELF: file too short for an ELF64 header');
  const machine = dv.getUint16(18, true);
  if (machine !== EM_X86_64 && machine !== EM_386) {
    throw new KernelImageError(`not an x86 kernel: ELF machine type ${machine}`);
  }
  const entry = is64 ? dv.getBigUint64(24, true) : BigInt(dv.getUint32(24, true));
  const phoff = is64 ? safe(dv.getBigUint64(32, true), 'program header offset') : dv.getUint32(28, true);
  const phentsize = dv.getUint16(is64 ? 54 : 42, true);
  const phnum = dv.getUint16(is64 ? 56 : 44, true);
  const minEntSize = is64 ? 56 : 32;
  if (phnum === 0) throw new KernelImageError('malformed ELF: no program headers');
  if (phentsize < minEntSize) throw new KernelImageError(`malformed ELF: program header size ${phentsize}`);
  if (phoff + phnum * phentsize > image.length) {
    throw new KernelImageError('malformed ELF: program headers extend past the end of the file');
  }
  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    const seg: ElfSegment = is64
      ? {
          type: dv.getUint32(at, true),
          offset: safe(dv.getBigUint64(at + 8, true), 'segment offset'),
          vaddr: dv.getBigUint64(at + 16, true),
          paddr: safe(dv.getBigUint64(at + 24, true), 'segment physical address'),
          filesz: safe(dv.getBigUint64(at + 32, true), 'segment file size'),
          memsz: safe(dv.getBigUint64(at + 40, true), 'segment memory size'),
        }
      : {
          type: dv.getUint32(at, true),
          offset: dv.getUint32(at + 4, true),
          vaddr: BigInt(dv.getUint32(at + 8, true)),
          paddr: dv.getUint32(at + 12, true),
          filesz: dv.getUint32(at + 16, true),
          memsz: dv.getUint32(at + 20, true),
        };
    if (seg.type === PT_LOAD || seg.type === PT_NOTE) {
      if (seg.offset + seg.filesz > image.length) {
        throw new KernelImageError(`malformed ELF: segment ${i} extends past the end of the file`);
      }
      if (seg.filesz > seg.memsz && seg.type === PT_LOAD) {
        throw new KernelImageError(`malformed ELF: segment ${i} has file size above memory size`);
      }
    }
    segments.push(seg);
  }
  return { class: is64 ? 64 : 32, machine, entry, segments };
}

export interface ElfNote {
  name: string;
  type: number;
  desc: Uint8Array;
}

/** The notes in one PT_NOTE segment; stops at the first malformed note. */
export function parseNotes(data: Uint8Array): ElfNote[] {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const notes: ElfNote[] = [];
  const align4 = (n: number) => (n + 3) & ~3;
  let at = 0;
  while (at + 12 <= data.length) {
    const namesz = dv.getUint32(at, true);
    const descsz = dv.getUint32(at + 4, true);
    const type = dv.getUint32(at + 8, true);
    const nameAt = at + 12;
    const descAt = nameAt + align4(namesz);
    const next = descAt + align4(descsz);
    if (namesz > data.length || descsz > data.length || descAt + descsz > data.length) break;
    let name = '';
    for (let i = 0; i < namesz && data[nameAt + i] !== 0; i++) name += String.fromCharCode(data[nameAt + i]!);
    notes.push({ name, type, desc: data.slice(descAt, descAt + descsz) });
    at = next;
  }
  return notes;
}

/** The 32-bit physical PVH entry point from the Xen PHYS32_ENTRY note, or undefined. */
export function findPvhEntry(image: Uint8Array, elf: ElfImage): number | undefined {
  for (const seg of elf.segments) {
    if (seg.type !== PT_NOTE) continue;
    for (const note of parseNotes(image.subarray(seg.offset, seg.offset + seg.filesz))) {
      if (note.name !== 'Xen' || note.type !== XEN_ELFNOTE_PHYS32_ENTRY) continue;
      const dv = new DataView(note.desc.buffer, note.desc.byteOffset, note.desc.byteLength);
      // The kernel emits the entry as .long on current versions and as a pointer-sized value on older ones.
      if (note.desc.length >= 8) return Number(dv.getBigUint64(0, true) & 0xffff_ffffn);
      if (note.desc.length >= 4) return dv.getUint32(0, true);
    }
  }
  return undefined;
}
