// The Linux x86 boot protocol's setup header (Documentation/arch/x86/boot.rst): parsing and
// validating a bzImage, and the boot_params ("zero page") a 64-bit entry hands the kernel.
import { hex } from './bytes.js';
import type { E820Entry } from './e820.js';

export class KernelImageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KernelImageError';
  }
}

/** Offsets of setup-header fields, from the start of the image (= of boot_params). */
export const HDR = {
  setupSects: 0x1f1,
  rootFlags: 0x1f2,
  syssize: 0x1f4,
  vidMode: 0x1fa,
  bootFlag: 0x1fe,
  jump: 0x200,
  header: 0x202,
  version: 0x206,
  typeOfLoader: 0x210,
  loadflags: 0x211,
  code32Start: 0x214,
  ramdiskImage: 0x218,
  ramdiskSize: 0x21c,
  heapEndPtr: 0x224,
  cmdLinePtr: 0x228,
  initrdAddrMax: 0x22c,
  kernelAlignment: 0x230,
  relocatableKernel: 0x234,
  xloadflags: 0x236,
  cmdlineSize: 0x238,
  prefAddress: 0x258,
  initSize: 0x260,
} as const;

/** Other boot_params fields (struct boot_params in arch/x86/include/uapi/asm/bootparam.h). */
export const BOOT_PARAMS = {
  size: 0x1000,
  acpiRsdpAddr: 0x070,
  extRamdiskImage: 0x0c0,
  extRamdiskSize: 0x0c4,
  extCmdLinePtr: 0x0c8,
  e820Entries: 0x1e8,
  e820Table: 0x2d0,
  e820MaxEntries: 128,
} as const;

export const HDRS_MAGIC = 0x5372_6448; // "HdrS"
export const LOADFLAG_LOADED_HIGH = 0x01;
export const LOADFLAG_CAN_USE_HEAP = 0x80;
export const XLF_KERNEL_64 = 0x01;
export const XLF_CAN_BE_LOADED_ABOVE_4G = 0x02;
/** Oldest protocol with xloadflags, pref_address and init_size, which a 64-bit entry needs. */
export const MIN_BOOT_PROTOCOL = 0x020c;

export interface SetupHeader {
  setupSects: number;
  version: number;
  loadflags: number;
  xloadflags: number;
  code32Start: number;
  initrdAddrMax: number;
  kernelAlignment: number;
  relocatable: boolean;
  cmdlineSize: number;
  prefAddress: bigint;
  initSize: number;
  /** Offset of the protected-mode payload in the file. */
  payloadOffset: number;
  payloadSize: number;
  /** One past the last setup-header byte (from 0x1f1), to copy into boot_params. */
  headerEnd: number;
}

export function formatProtocolVersion(version: number): string {
  return `${version >> 8}.${(version & 0xff).toString().padStart(2, '0')}`;
}

/** True when the image carries the boot-protocol header magic (a quick format sniff). */
export function looksLikeBzImage(image: Uint8Array): boolean {
  if (image.length < HDR.header + 4) return false;
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  return dv.getUint32(HDR.header, true) === HDRS_MAGIC;
}

/** Parses and validates a bzImage's setup header for a 64-bit boot; throws KernelImageError naming the problem. */
export function parseBzImage(image: Uint8Array): SetupHeader {
  if (image.length < 0x400) {
    throw new KernelImageError(`not a Linux bzImage: ${image.length} bytes is too short for a setup header`);
  }
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  if (dv.getUint32(HDR.header, true) !== HDRS_MAGIC) {
    throw new KernelImageError('not a Linux bzImage: no HdrS magic at 0x202');
  }
  const version = dv.getUint16(HDR.version, true);
  if (version < MIN_BOOT_PROTOCOL) {
    throw new KernelImageError(
      `boot protocol ${formatProtocolVersion(version)} too old: 64-bit entry needs ${formatProtocolVersion(MIN_BOOT_PROTOCOL)} or later`,
    );
  }
  const loadflags = dv.getUint8(HDR.loadflags);
  if (!(loadflags & LOADFLAG_LOADED_HIGH)) {
    throw new KernelImageError('not a bzImage: a zImage (payload loaded at 0x10000) is not supported');
  }
  const xloadflags = dv.getUint16(HDR.xloadflags, true);
  if (!(xloadflags & XLF_KERNEL_64)) {
    throw new KernelImageError(
      'kernel does not support 64-bit entry (XLF_KERNEL_64 clear): a 32-bit kernel?',
    );
  }
  // A setup_sects of 0 means 4, for compatibility with ancient images.
  const setupSects = dv.getUint8(HDR.setupSects) || 4;
  const payloadOffset = (setupSects + 1) * 512;
  if (payloadOffset >= image.length) {
    throw new KernelImageError(
      `truncated bzImage: setup is ${payloadOffset} bytes but the file has only ${image.length}`,
    );
  }
  const syssize = dv.getUint32(HDR.syssize, true);
  const payloadSize = image.length - payloadOffset;
  if (syssize !== 0 && syssize * 16 > payloadSize + 15) {
    throw new KernelImageError(
      `truncated bzImage: header says the payload is ${syssize * 16} bytes, file has ${payloadSize}`,
    );
  }
  const headerEnd = HDR.header + dv.getUint8(HDR.jump + 1);
  if (headerEnd < HDR.initSize + 4 || headerEnd > payloadOffset) {
    throw new KernelImageError(`malformed bzImage: setup header ends at ${hex(headerEnd)}`);
  }
  const kernelAlignment = dv.getUint32(HDR.kernelAlignment, true);
  const initSize = dv.getUint32(HDR.initSize, true);
  if (initSize === 0) throw new KernelImageError('malformed bzImage: init_size is 0');
  return {
    setupSects,
    version,
    loadflags,
    xloadflags,
    code32Start: dv.getUint32(HDR.code32Start, true),
    initrdAddrMax: dv.getUint32(HDR.initrdAddrMax, true),
    kernelAlignment,
    relocatable: dv.getUint8(HDR.relocatableKernel) !== 0,
    cmdlineSize: dv.getUint32(HDR.cmdlineSize, true),
    prefAddress: dv.getBigUint64(HDR.prefAddress, true),
    initSize,
    payloadOffset,
    payloadSize,
    headerEnd,
  };
}

/**
 * Guest-physical range the kernel uses while it decompresses when its payload is loaded at
 * `loadAddress`: the startup code moves to max(load address rounded up to kernel_alignment,
 * pref_address) and needs init_size bytes from there (arch/x86/boot/compressed/head_64.S).
 */
export function kernelFootprint(header: SetupHeader, loadAddress: number): { start: number; end: number } {
  const pref = Number(header.prefAddress);
  let target = pref;
  if (header.relocatable && header.kernelAlignment > 0) {
    const aligned = Math.ceil(loadAddress / header.kernelAlignment) * header.kernelAlignment;
    target = Math.max(aligned, pref);
  }
  const end = Math.max(loadAddress + header.payloadSize, target + header.initSize);
  return { start: Math.min(loadAddress, target), end };
}

export interface BootParamsOptions {
  cmdlineAddr: number;
  /** Length of the command line in bytes, without the terminating NUL. */
  cmdlineLength: number;
  initrd?: { addr: number; size: number };
  e820: readonly E820Entry[];
  rsdpAddr?: number;
}

/** boot_params for a 64-bit entry: the image's setup header plus what the loader fills in. */
export function buildBootParams(image: Uint8Array, header: SetupHeader, opts: BootParamsOptions): Uint8Array {
  const params = new Uint8Array(BOOT_PARAMS.size);
  params.set(image.subarray(HDR.setupSects, header.headerEnd), HDR.setupSects);
  const dv = new DataView(params.buffer);
  if (header.cmdlineSize > 0 && opts.cmdlineLength > header.cmdlineSize) {
    throw new KernelImageError(
      `kernel command line is ${opts.cmdlineLength} bytes; this kernel accepts at most ${header.cmdlineSize}`,
    );
  }
  dv.setUint8(HDR.typeOfLoader, 0xff);
  dv.setUint8(HDR.loadflags, header.loadflags | LOADFLAG_CAN_USE_HEAP);
  // The heap ends where the real-mode setup stack would start; unused by a 64-bit entry but
  // the protocol asks for a sane value whenever CAN_USE_HEAP is set.
  dv.setUint16(HDR.heapEndPtr, 0xfe00 - 0x200, true);
  dv.setUint16(HDR.vidMode, 0xffff, true);
  setSplit32(dv, HDR.cmdLinePtr, BOOT_PARAMS.extCmdLinePtr, opts.cmdlineAddr);
  if (opts.initrd) {
    setSplit32(dv, HDR.ramdiskImage, BOOT_PARAMS.extRamdiskImage, opts.initrd.addr);
    setSplit32(dv, HDR.ramdiskSize, BOOT_PARAMS.extRamdiskSize, opts.initrd.size);
  }
  if (opts.rsdpAddr !== undefined) dv.setBigUint64(BOOT_PARAMS.acpiRsdpAddr, BigInt(opts.rsdpAddr), true);
  if (opts.e820.length > BOOT_PARAMS.e820MaxEntries) {
    throw new Error(
      `e820 map has ${opts.e820.length} entries; boot_params holds ${BOOT_PARAMS.e820MaxEntries}`,
    );
  }
  dv.setUint8(BOOT_PARAMS.e820Entries, opts.e820.length);
  opts.e820.forEach((entry, i) => {
    const at = BOOT_PARAMS.e820Table + i * 20;
    dv.setBigUint64(at, BigInt(entry.addr), true);
    dv.setBigUint64(at + 8, BigInt(entry.size), true);
    dv.setUint32(at + 16, entry.type, true);
  });
  return params;
}

/** A 64-bit value split into a 32-bit header field and its ext_ high half. */
function setSplit32(dv: DataView, lowOffset: number, highOffset: number, value: number): void {
  dv.setUint32(lowOffset, value >>> 0, true);
  dv.setUint32(highOffset, Math.floor(value / 0x1_0000_0000), true);
}
