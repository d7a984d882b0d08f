// Minimal kernel images built in memory for tests: a bzImage with a valid setup header and an
// ELF64 vmlinux with a PVH note. Not bootable code, just the structures loaders read.
import {
  HDR,
  HDRS_MAGIC,
  LOADFLAG_LOADED_HIGH,
  XLF_CAN_BE_LOADED_ABOVE_4G,
  XLF_KERNEL_64,
} from './bzimage.js';

export interface SyntheticBzImageOptions {
  setupSects?: number;
  version?: number;
  loadflags?: number;
  xloadflags?: number;
  payload?: Uint8Array;
  prefAddress?: number;
  initSize?: number;
  kernelAlignment?: number;
  relocatable?: boolean;
  initrdAddrMax?: number;
  cmdlineSize?: number;
  magic?: number;
}

export function syntheticBzImage(o: SyntheticBzImageOptions = {}): Uint8Array {
  const setupSects = o.setupSects ?? 4;
  const payload = o.payload ?? Uint8Array.from({ length: 0x3000 }, (_, i) => (i * 7 + 3) & 0xff);
  const image = new Uint8Array((setupSects + 1) * 512 + payload.length);
  const dv = new DataView(image.buffer);
  dv.setUint8(HDR.setupSects, setupSects);
  dv.setUint32(HDR.syssize, Math.ceil(payload.length / 16), true);
  dv.setUint16(HDR.bootFlag, 0xaa55, true);
  // A short jump over the header: its displacement defines where the header ends (0x202 + disp).
  dv.setUint8(HDR.jump, 0xeb);
  dv.setUint8(HDR.jump + 1, 0x6a);
  dv.setUint32(HDR.header, o.magic ?? HDRS_MAGIC, true);
  dv.setUint16(HDR.version, o.version ?? 0x020f, true);
  dv.setUint8(HDR.loadflags, o.loadflags ?? LOADFLAG_LOADED_HIGH);
  dv.setUint32(HDR.code32Start, 0x10_0000, true);
  dv.setUint32(HDR.initrdAddrMax, o.initrdAddrMax ?? 0x7fff_ffff, true);
  dv.setUint32(HDR.kernelAlignment, o.kernelAlignment ?? 0x20_0000, true);
  dv.setUint8(HDR.relocatableKernel, (o.relocatable ?? true) ? 1 : 0);
  dv.setUint16(HDR.xloadflags, o.xloadflags ?? XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G, true);
  dv.setUint32(HDR.cmdlineSize, o.cmdlineSize ?? 2047, true);
  dv.setBigUint64(HDR.prefAddress, BigInt(o.prefAddress ?? 0x100_0000), true);
  dv.setUint32(HDR.initSize, o.initSize ?? 0x80_0000, true);
  image.set(payload, (setupSects + 1) * 512);
  return image;
}

export interface SyntheticSegment {
  paddr: number;
  data: Uint8Array;
  memsz?: number;
}

export interface SyntheticElfOptions {
  segments?: SyntheticSegment[];
  /** PVH entry written in the Xen note; undefined leaves the note out. */
  pvhEntry?: number;
  /** Size of the note's descriptor (4 as current kernels emit, 8 as older ones did). */
  noteDescSize?: 4 | 8;
  machine?: number;
}

/** An ELF64 executable: program headers for each PT_LOAD segment plus one PT_NOTE segment. */
export function syntheticElf(o: SyntheticElfOptions = {}): Uint8Array {
  const segments = o.segments ?? [
    { paddr: 0x100_0000, data: Uint8Array.from({ length: 0x2000 }, (_, i) => i & 0xff) },
  ];
  const notes: number[] = [];
  const push32 = (v: number) => notes.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
  // An unrelated note first, so the search has to walk past it.
  push32(4);
  push32(4);
  push32(1);
  notes.push(0x47, 0x4e, 0x55, 0, 1, 2, 3, 4);
  if (o.pvhEntry !== undefined) {
    const descSize = o.noteDescSize ?? 4;
    push32(4);
    push32(descSize);
    push32(18);
    notes.push(0x58, 0x65, 0x6e, 0); // "Xen\0"
    push32(o.pvhEntry);
    if (descSize === 8) push32(0);
  }
  const phnum = segments.length + 1;
  const headersEnd = 64 + phnum * 56;
  let offset = headersEnd + notes.length;
  const offsets = segments.map((s) => {
    const at = offset;
    offset += s.data.length;
    return at;
  });
  const image = new Uint8Array(offset);
  const dv = new DataView(image.buffer);
  image.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  dv.setUint16(16, 2, true); // ET_EXEC
  dv.setUint16(18, o.machine ?? 62, true);
  dv.setUint32(20, 1, true);
  dv.setBigUint64(24, 0xffff_ffff_8100_0000n, true);
  dv.setBigUint64(32, 64n, true);
  dv.setUint16(52, 64, true);
  dv.setUint16(54, 56, true);
  dv.setUint16(56, phnum, true);
  const ph = (i: number, type: number, off: number, paddr: number, filesz: number, memsz: number) => {
    const at = 64 + i * 56;
    dv.setUint32(at, type, true);
    dv.setBigUint64(at + 8, BigInt(off), true);
    dv.setBigUint64(at + 16, 0xffff_ffff_8000_0000n + BigInt(paddr), true);
    dv.setBigUint64(at + 24, BigInt(paddr), true);
    dv.setBigUint64(at + 32, BigInt(filesz), true);
    dv.setBigUint64(at + 40, BigInt(memsz), true);
  };
  segments.forEach((s, i) => {
    ph(i, 1, offsets[i]!, s.paddr, s.data.length, s.memsz ?? s.data.length);
    image.set(s.data, offsets[i]!);
  });
  ph(segments.length, 4, headersEnd, 0, notes.length, notes.length);
  image.set(notes, headersEnd);
  return image;
}
