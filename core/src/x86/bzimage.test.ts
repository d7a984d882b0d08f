import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  BOOT_PARAMS,
  buildBootParams,
  HDR,
  KernelImageError,
  kernelFootprint,
  LOADFLAG_CAN_USE_HEAP,
  parseBzImage,
} from './bzimage.js';
import { syntheticBzImage } from './synthetic-kernels.js';

test('parses the fields a 64-bit loader needs', () => {
  const image = syntheticBzImage({ setupSects: 27, initSize: 0x123_4000, prefAddress: 0x100_0000 });
  const h = parseBzImage(image);
  assert.equal(h.setupSects, 27);
  assert.equal(h.version, 0x020f);
  assert.equal(h.payloadOffset, 28 * 512);
  assert.equal(h.payloadSize, image.length - 28 * 512);
  assert.equal(h.initSize, 0x123_4000);
  assert.equal(h.prefAddress, 0x100_0000n);
  assert.equal(h.kernelAlignment, 0x20_0000);
  assert.equal(h.initrdAddrMax, 0x7fff_ffff);
  assert.equal(h.cmdlineSize, 2047);
  assert.equal(h.headerEnd, 0x202 + 0x6a);
  assert.ok(h.relocatable);
});

test('setup_sects 0 means 4', () => {
  const image = syntheticBzImage({ setupSects: 4 });
  image[HDR.setupSects] = 0;
  assert.equal(parseBzImage(image).payloadOffset, 5 * 512);
});

test('rejects images that are not 64-bit bzImages, naming why', () => {
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array(100), /too short/],
    [syntheticBzImage({ magic: 0x1234_5678 }), /no HdrS magic at 0x202/],
    [syntheticBzImage({ version: 0x0209 }), /boot protocol 2\.09 too old/],
    [syntheticBzImage({ xloadflags: 0 }), /does not support 64-bit entry/],
    [syntheticBzImage({ loadflags: 0 }), /zImage/],
    [syntheticBzImage({ initSize: 0 }), /init_size/],
  ];
  for (const [image, message] of cases) {
    assert.throws(
      () => parseBzImage(image),
      (e: Error) => e instanceof KernelImageError && message.test(e.message),
    );
  }
});

test('rejects a truncated payload', () => {
  const image = syntheticBzImage({ payload: new Uint8Array(0x10000) });
  assert.throws(() => parseBzImage(image.subarray(0, image.length - 0x1000)), /truncated/);
  assert.throws(() => parseBzImage(image.subarray(0, 5 * 512)), /truncated/);
});

test('footprint covers the decompression buffer above pref_address', () => {
  const h = parseBzImage(syntheticBzImage({ prefAddress: 0x100_0000, initSize: 0x200_0000 }));
  assert.deepEqual(kernelFootprint(h, 0x10_0000), { start: 0x10_0000, end: 0x300_0000 });
  // Loaded above pref_address, a relocatable kernel decompresses at its aligned load address.
  assert.deepEqual(kernelFootprint(h, 0x210_0000), { start: 0x210_0000, end: 0x220_0000 + 0x200_0000 });
  const fixed = parseBzImage(
    syntheticBzImage({ relocatable: false, prefAddress: 0x100_0000, initSize: 0x10_0000 }),
  );
  assert.equal(kernelFootprint(fixed, 0x210_0000).start, 0x100_0000);
});

test('boot_params: header copied, loader fields set, e820 table filled', () => {
  const image = syntheticBzImage();
  const h = parseBzImage(image);
  const e820 = [
    { addr: 0, size: 0x9_fc00, type: 1 },
    { addr: 0x10_0000, size: 0x1_0000_0000, type: 1 },
  ];
  const params = buildBootParams(image, h, {
    cmdlineAddr: 0x2_0000,
    cmdlineLength: 10,
    initrd: { addr: 0x1_2345_6000, size: 0x8000 },
    e820,
    rsdpAddr: 0xe_0000,
  });
  const dv = new DataView(params.buffer);
  assert.equal(params.length, 4096);
  assert.equal(dv.getUint32(HDR.header, true), 0x5372_6448);
  assert.equal(params[HDR.typeOfLoader], 0xff);
  assert.ok(params[HDR.loadflags]! & LOADFLAG_CAN_USE_HEAP);
  assert.ok(params[HDR.loadflags]! & 1, 'LOADED_HIGH kept');
  assert.equal(dv.getUint32(HDR.cmdLinePtr, true), 0x2_0000);
  assert.equal(dv.getUint32(HDR.ramdiskImage, true), 0x2345_6000);
  assert.equal(dv.getUint32(BOOT_PARAMS.extRamdiskImage, true), 1);
  assert.equal(dv.getUint32(HDR.ramdiskSize, true), 0x8000);
  assert.equal(dv.getBigUint64(BOOT_PARAMS.acpiRsdpAddr, true), 0xe_0000n);
  assert.equal(params[BOOT_PARAMS.e820Entries], 2);
  assert.equal(dv.getBigUint64(BOOT_PARAMS.e820Table + 20 + 8, true), 0x1_0000_0000n);
  assert.equal(dv.getUint32(BOOT_PARAMS.e820Table + 20 + 16, true), 1);
  // Nothing beyond the header is copied from the image.
  assert.equal(params[h.headerEnd], 0);
});

test('boot_params refuses a command line longer than cmdline_size', () => {
  const image = syntheticBzImage({ cmdlineSize: 255 });
  const h = parseBzImage(image);
  assert.throws(
    () => buildBootParams(image, h, { cmdlineAddr: 0x2_0000, cmdlineLength: 256, e820: [] }),
    /at most 255/,
  );
});
