// A tiny ACPI Machine Language encoder (ACPI 6.5 chapter 20): just the terms Vireo's DSDT uses.
// Every function returns the encoded bytes; they compose by concatenation.

export type Aml = Uint8Array;

const ZERO_OP = 0x00;
const ONE_OP = 0x01;
const ONES_OP = 0xff;
const BYTE_PREFIX = 0x0a;
const WORD_PREFIX = 0x0b;
const DWORD_PREFIX = 0x0c;
const STRING_PREFIX = 0x0d;
const QWORD_PREFIX = 0x0e;
const NAME_OP = 0x08;
const SCOPE_OP = 0x10;
const BUFFER_OP = 0x11;
const PACKAGE_OP = 0x12;
const EXT_OP_PREFIX = 0x5b;
const DEVICE_OP = 0x82;
const ROOT_CHAR = 0x5c;
const PARENT_PREFIX = 0x5e;
const DUAL_NAME_PREFIX = 0x2e;
const MULTI_NAME_PREFIX = 0x2f;

export function concat(...parts: (Aml | readonly number[])[]): Aml {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * PkgLength for a term whose body (after the PkgLength) is `bodyLength` bytes: the encoded value
 * counts the PkgLength bytes themselves. One byte holds up to 63; longer forms put the byte
 * count in bits 7:6 of the lead byte, its low nibble in bits 3:0, then 8 bits per byte.
 */
export function pkgLength(bodyLength: number): Aml {
  if (!Number.isInteger(bodyLength) || bodyLength < 0) throw new RangeError(`bad AML length ${bodyLength}`);
  if (bodyLength + 1 <= 0x3f) return Uint8Array.of(bodyLength + 1);
  for (let extra = 1; extra <= 3; extra++) {
    const total = bodyLength + 1 + extra;
    if (total < 2 ** (4 + 8 * extra)) {
      const out = new Uint8Array(1 + extra);
      out[0] = (extra << 6) | (total & 0xf);
      for (let i = 1; i <= extra; i++) out[i] = Math.floor(total / 2 ** (4 + 8 * (i - 1))) & 0xff;
      return out;
    }
  }
  throw new RangeError(`AML package of ${bodyLength} bytes is too long`);
}

/** A 4-character NameSeg: upper-case letters, digits and '_', padded with '_'. */
export function nameSeg(seg: string): Aml {
  if (seg.length === 0 || seg.length > 4 || !/^[A-Z_][A-Z0-9_]*$/.test(seg)) {
    throw new Error(`invalid AML name segment '${seg}'`);
  }
  const padded = seg.padEnd(4, '_');
  return Uint8Array.from(padded, (c) => c.charCodeAt(0));
}

/** A NameString such as `_S5_`, `\_SB`, `^PCI0` or `\_SB.PCI0`. */
export function nameString(path: string): Aml {
  let rest = path;
  const prefix: number[] = [];
  if (rest.startsWith('\\')) {
    prefix.push(ROOT_CHAR);
    rest = rest.slice(1);
  }
  while (rest.startsWith('^')) {
    prefix.push(PARENT_PREFIX);
    rest = rest.slice(1);
  }
  if (rest === '') return concat(prefix, [0x00]);
  const segs = rest.split('.').map(nameSeg);
  if (segs.length === 1) return concat(prefix, segs[0]!);
  if (segs.length === 2) return concat(prefix, [DUAL_NAME_PREFIX], segs[0]!, segs[1]!);
  if (segs.length > 255) throw new Error(`AML name '${path}' has too many segments`);
  return concat(prefix, [MULTI_NAME_PREFIX, segs.length], ...segs);
}

/** The shortest integer encoding: ZeroOp, OneOp, OnesOp or a Byte/Word/DWord/QWord constant. */
export function integer(value: number | bigint): Aml {
  // Numbers below 2^32 (every integer of Vireo's DSDT but none of its 64-bit ones) skip BigInt:
  // the _PRT alone encodes ~500 of them on every VM's start-up.
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff) {
    if (value === 0) return Uint8Array.of(ZERO_OP);
    if (value === 1) return Uint8Array.of(ONE_OP);
    if (value <= 0xff) return Uint8Array.of(BYTE_PREFIX, value);
    if (value <= 0xffff) return Uint8Array.of(WORD_PREFIX, value & 0xff, value >>> 8);
    return Uint8Array.of(
      DWORD_PREFIX,
      value & 0xff,
      (value >>> 8) & 0xff,
      (value >>> 16) & 0xff,
      value >>> 24,
    );
  }
  const v = BigInt(value);
  if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new RangeError(`AML integer ${value} out of range`);
  if (v === 0n) return Uint8Array.of(ZERO_OP);
  if (v === 1n) return Uint8Array.of(ONE_OP);
  if (v === 0xffff_ffff_ffff_ffffn) return Uint8Array.of(ONES_OP);
  const le = (bytes: number) => Array.from({ length: bytes }, (_, i) => Number((v >> BigInt(8 * i)) & 0xffn));
  if (v <= 0xffn) return concat([BYTE_PREFIX], le(1));
  if (v <= 0xffffn) return concat([WORD_PREFIX], le(2));
  if (v <= 0xffff_ffffn) return concat([DWORD_PREFIX], le(4));
  return concat([QWORD_PREFIX], le(8));
}

/** A DWordConst regardless of value (what EisaId() compiles to). */
export function dwordConst(value: number): Aml {
  const v = value >>> 0;
  return Uint8Array.of(DWORD_PREFIX, v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
}

export function string(text: string): Aml {
  if ([...text].some((c) => c.charCodeAt(0) === 0 || c.charCodeAt(0) > 0x7f))
    throw new Error('AML strings are 7-bit ASCII without NUL');
  return concat(
    [STRING_PREFIX],
    Uint8Array.from(text, (c) => c.charCodeAt(0)),
    [0],
  );
}

/** The compressed EISA ID of a PNP ID such as "PNP0A03" (three letters, four hex digits). */
export function eisaId(id: string): number {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new Error(`invalid EISA ID '${id}'`);
  const letters =
    ((id.charCodeAt(0) - 0x40) << 10) | ((id.charCodeAt(1) - 0x40) << 5) | (id.charCodeAt(2) - 0x40);
  const product = Number.parseInt(id.slice(3), 16);
  // Stored big-endian: the letters' 16 bits, then the product's two bytes.
  const bytes = [letters >> 8, letters & 0xff, product >> 8, product & 0xff];
  return (bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16) | (bytes[3]! << 24)) >>> 0;
}

/** Name(path, value). */
export function name(path: string, value: Aml): Aml {
  return concat([NAME_OP], nameString(path), value);
}

/** Package(){elements}: each element an encoded data object. */
export function pkg(elements: Aml[]): Aml {
  if (elements.length > 255) throw new Error('AML Package holds at most 255 elements');
  const body = concat([elements.length], ...elements);
  return concat([PACKAGE_OP], pkgLength(body.length), body);
}

export function scope(path: string, terms: Aml[]): Aml {
  const body = concat(nameString(path), ...terms);
  return concat([SCOPE_OP], pkgLength(body.length), body);
}

export function device(path: string, terms: Aml[]): Aml {
  const body = concat(nameString(path), ...terms);
  return concat([EXT_OP_PREFIX, DEVICE_OP], pkgLength(body.length), body);
}

/** Buffer(){bytes} with its size as an integer term. */
export function buffer(bytes: Aml | readonly number[]): Aml {
  const body = concat(integer(bytes.length), bytes);
  return concat([BUFFER_OP], pkgLength(body.length), body);
}

// Resource descriptors (ACPI 6.5 section 6.4) for _CRS.

/** General flags of an address-space descriptor for a bridge window: producer, min and max fixed, positive decode. */
const PRODUCER_FIXED_WINDOW = 0x0c;
const RESOURCE_MEMORY = 0;
const RESOURCE_IO = 1;
const RESOURCE_BUS = 2;

function u16le(v: number): number[] {
  return [v & 0xff, (v >> 8) & 0xff];
}
function u32le(v: number): number[] {
  const x = v >>> 0;
  return [x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, x >>> 24];
}

function wordAddressSpace(resourceType: number, typeFlags: number, min: number, max: number): Aml {
  if (min > max || max > 0xffff) throw new RangeError(`bad word address range ${min}..${max}`);
  return Uint8Array.from([
    0x88,
    ...u16le(13),
    resourceType,
    PRODUCER_FIXED_WINDOW,
    typeFlags,
    ...u16le(0), // granularity
    ...u16le(min),
    ...u16le(max),
    ...u16le(0), // translation offset
    ...u16le(max - min + 1),
  ]);
}

/** WordBusNumber(ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, len). */
export function wordBusNumber(min: number, max: number): Aml {
  return wordAddressSpace(RESOURCE_BUS, 0, min, max);
}

/** WordIO(ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, min, max, 0, len). */
export function wordIo(min: number, max: number): Aml {
  return wordAddressSpace(RESOURCE_IO, 0x03, min, max);
}

/** DWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite, 0, min, max, 0, len). */
export function dwordMemory(min: number, max: number): Aml {
  if (min > max || max > 0xffff_ffff) throw new RangeError(`bad dword memory range ${min}..${max}`);
  return Uint8Array.from([
    0x87,
    ...u16le(23),
    RESOURCE_MEMORY,
    PRODUCER_FIXED_WINDOW,
    0x01, // read-write, non-cacheable
    ...u32le(0),
    ...u32le(min),
    ...u32le(max),
    ...u32le(0),
    ...u32le(max - min + 1),
  ]);
}

/** IO(Decode16, base, base, 1, length): a fixed I/O port range. */
export function ioPorts(base: number, length: number): Aml {
  return Uint8Array.from([0x47, 0x01, ...u16le(base), ...u16le(base), 0x01, length]);
}

/** Memory32Fixed(ReadWrite, base, length). */
export function memory32Fixed(base: number, length: number): Aml {
  return Uint8Array.from([0x86, ...u16le(9), 0x01, ...u32le(base), ...u32le(length)]);
}

/** ResourceTemplate(){descriptors}: the descriptors, an end tag, as a Buffer. */
export function resourceTemplate(descriptors: Aml[]): Aml {
  return buffer(concat(...descriptors, [0x79, 0x00]));
}
