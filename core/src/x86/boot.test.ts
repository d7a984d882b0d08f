import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { GuestMemory } from '../memory/guest-memory.js';
import { detectKernelFormat, prepareLinuxBoot } from './boot.js';
import { BOOT_PARAMS, HDR, KernelImageError } from './bzimage.js';
import { E820_RAM } from './e820.js';
import {
  BOOT_GDT,
  CMDLINE,
  EBDA_START,
  KERNEL_LOAD,
  PVH_START_INFO,
  ramRegions,
  ZERO_PAGE,
} from './layout.js';
import { HVM_START_MAGIC } from './pvh.js';
import { syntheticBzImage, syntheticElf } from './synthetic-kernels.js';

function machine(memorySize: number): GuestMemory {
  return new GuestMemory(ramRegions(memorySize).map((r) => ({ gpa: r.gpa, bytes: new Uint8Array(r.size) })));
}

const MiB = 1 << 20;

test('bzImage: payload at 1 MiB, zero page filled, 64-bit entry with RSI = zero page', () => {
  const mem = machine(128 * MiB);
  const kernel = syntheticBzImage({ initSize: 0x100_0000 });
  const initrd = Uint8Array.from({ length: 0x3456 }, (_, i) => i & 0xff);
  const boot = prepareLinuxBoot(mem, {
    kernel,
    initrd,
    cmdline: 'console=ttyS0',
    cpus: 2,
    memorySize: 128 * MiB,
  });
  assert.equal(boot.format, 'bzImage');
  assert.equal(boot.entry.mode, 'long64');
  assert.equal(boot.entry.regs.rip, KERNEL_LOAD + 0x200);
  assert.equal(boot.entry.regs.rsi, ZERO_PAGE);
  assert.equal(boot.entry.regs.rflags & 0x200, 0, 'interrupts off');
  const payloadOffset = 5 * 512;
  assert.deepEqual(mem.read(KERNEL_LOAD, 64), kernel.subarray(payloadOffset, payloadOffset + 64));
  assert.equal(mem.readU32(ZERO_PAGE + HDR.header), 0x5372_6448);
  assert.equal(mem.readU8(ZERO_PAGE + HDR.typeOfLoader), 0xff);
  assert.equal(mem.readU32(ZERO_PAGE + HDR.cmdLinePtr), CMDLINE);
  assert.equal(new TextDecoder().decode(mem.read(CMDLINE, 13)), 'console=ttyS0');
  const initrdAddr = mem.readU32(ZERO_PAGE + HDR.ramdiskImage);
  assert.equal(initrdAddr, boot.initrd!.addr);
  assert.equal(mem.readU32(ZERO_PAGE + HDR.ramdiskSize), initrd.length);
  assert.deepEqual(mem.read(initrdAddr, initrd.length), initrd);
  assert.ok(initrdAddr >= boot.kernel.end, 'initrd above the decompression buffer');
  assert.ok(initrdAddr + initrd.length <= 128 * MiB);
  const entries = mem.readU8(ZERO_PAGE + BOOT_PARAMS.e820Entries);
  assert.equal(entries, boot.e820.length);
  assert.equal(mem.readU16(ZERO_PAGE + HDR.jump + 0), kernel[HDR.jump]! | (kernel[HDR.jump + 1]! << 8));
  assert.equal(String.fromCharCode(...mem.read(EBDA_START, 4)), '_MP_');
  assert.equal(Number(mem.readU64(ZERO_PAGE + BOOT_PARAMS.acpiRsdpAddr)), boot.rsdpAddr);
  assert.equal(String.fromCharCode(...mem.read(boot.rsdpAddr, 8)), 'RSD PTR ');
});

test('bzImage: extra command-line arguments are appended', () => {
  const mem = machine(64 * MiB);
  const boot = prepareLinuxBoot(mem, {
    kernel: syntheticBzImage(),
    cmdline: ' console=ttyS0 ',
    extraCmdline: ['clearcpuid=smap'],
    cpus: 1,
    memorySize: 64 * MiB,
  });
  assert.equal(boot.cmdline, 'console=ttyS0 clearcpuid=smap');
  assert.equal(new TextDecoder().decode(mem.read(CMDLINE, boot.cmdline.length + 1)), `${boot.cmdline}\0`);
});

test('bzImage: too little memory for the decompressed kernel is a clear error', () => {
  const mem = machine(32 * MiB);
  assert.throws(
    () =>
      prepareLinuxBoot(mem, {
        kernel: syntheticBzImage({ initSize: 0x300_0000 }),
        cmdline: '',
        cpus: 1,
        memorySize: 32 * MiB,
      }),
    /guest memory too small for this kernel/,
  );
});

test('bzImage: a command line longer than the kernel accepts is refused', () => {
  const mem = machine(64 * MiB);
  assert.throws(
    () =>
      prepareLinuxBoot(mem, {
        kernel: syntheticBzImage({ cmdlineSize: 16 }),
        cmdline: 'x'.repeat(17),
        cpus: 1,
        memorySize: 64 * MiB,
      }),
    /at most 16/,
  );
});

test('PVH: segments loaded at p_paddr with bss zeroed, start info filled, 32-bit entry with EBX', () => {
  const mem = machine(64 * MiB);
  mem.fill(0x120_0000, 0x1000, 0xcc);
  const text = Uint8Array.from({ length: 0x800 }, (_, i) => (i * 3) & 0xff);
  const kernel = syntheticElf({
    segments: [
      { paddr: 0x100_0000, data: text },
      { paddr: 0x120_0000, data: Uint8Array.of(9, 9), memsz: 0x1000 },
    ],
    pvhEntry: 0x100_0100,
  });
  const initrd = new Uint8Array(0x5000).fill(7);
  const boot = prepareLinuxBoot(mem, { kernel, initrd, cmdline: 'quiet', cpus: 3, memorySize: 64 * MiB });
  assert.equal(boot.format, 'pvh');
  assert.equal(boot.entry.mode, 'protected32');
  assert.equal(boot.entry.regs.rip, 0x100_0100);
  assert.equal(boot.entry.regs.rbx, PVH_START_INFO);
  assert.deepEqual(mem.read(0x100_0000, text.length), text);
  assert.deepEqual([...mem.read(0x120_0000, 4)], [9, 9, 0, 0]);
  assert.equal(mem.readU8(0x120_0fff), 0);
  assert.equal(mem.readU32(PVH_START_INFO), HVM_START_MAGIC);
  assert.equal(mem.readU32(PVH_START_INFO + 4), 1);
  assert.equal(mem.readU32(PVH_START_INFO + 12), 1, 'one module');
  const modlist = Number(mem.readU64(PVH_START_INFO + 0x10));
  assert.equal(Number(mem.readU64(modlist)), boot.initrd!.addr);
  assert.equal(Number(mem.readU64(modlist + 8)), initrd.length);
  assert.equal(Number(mem.readU64(PVH_START_INFO + 0x18)), CMDLINE);
  assert.equal(Number(mem.readU64(PVH_START_INFO + 0x20)), boot.rsdpAddr);
  const memmap = Number(mem.readU64(PVH_START_INFO + 0x28));
  assert.equal(mem.readU32(PVH_START_INFO + 0x30), boot.e820.length);
  boot.e820.forEach((e, i) => {
    assert.equal(Number(mem.readU64(memmap + 24 * i)), e.addr);
    assert.equal(Number(mem.readU64(memmap + 24 * i + 8)), e.size);
    assert.equal(mem.readU32(memmap + 24 * i + 16), e.type);
  });
  const sregs = boot.entry.sregs!;
  assert.equal(sregs.cr0 & 1, 1);
  assert.equal(sregs.cr0 & 0x8000_0000, 0, 'no paging');
  assert.equal(sregs.cs.selector, 0x08);
  assert.equal(sregs.cs.db, 1);
  assert.equal(sregs.cs.l, 0);
  assert.equal(sregs.cs.limit, 0xffff_ffff);
  assert.equal(sregs.tr.type, 0xb);
  assert.equal(sregs.gdt.base, BOOT_GDT);
  // GDT entry 1 is a flat 32-bit code segment.
  assert.equal(mem.readU64(BOOT_GDT + 8), 0x00cf_9b00_0000_ffffn);
  assert.equal(mem.readU64(BOOT_GDT + 16), 0x00cf_9300_0000_ffffn);
});

test('PVH: an ELF without the PVH note, or loading below 1 MiB, is refused', () => {
  const mem = machine(64 * MiB);
  assert.throws(
    () => prepareLinuxBoot(mem, { kernel: syntheticElf(), cmdline: '', cpus: 1, memorySize: 64 * MiB }),
    /no PVH entry/,
  );
  const low = syntheticElf({ segments: [{ paddr: 0x8000, data: new Uint8Array(16) }], pvhEntry: 0x8000 });
  assert.throws(
    () => prepareLinuxBoot(mem, { kernel: low, cmdline: '', cpus: 1, memorySize: 64 * MiB }),
    /boot area/,
  );
});

test('files that are not kernels get an error naming why', () => {
  assert.throws(
    () => detectKernelFormat(new TextEncoder().encode('#!/bin/sh\necho hi\n'.repeat(100))),
    (e: Error) => {
      return e instanceof KernelImageError && /not a Linux kernel/.test(e.message);
    },
  );
  assert.throws(() => detectKernelFormat(Uint8Array.of(0x1f, 0x8b, 8, 0)), /gzip/);
  const mem = machine(64 * MiB);
  assert.throws(
    () => prepareLinuxBoot(mem, { kernel: new Uint8Array(0), cmdline: '', cpus: 1, memorySize: 64 * MiB }),
    /empty/,
  );
  assert.throws(
    () => prepareLinuxBoot(mem, { kernel: syntheticBzImage(), cmdline: '', cpus: 0, memorySize: 64 * MiB }),
    /cpus/,
  );
  assert.throws(
    () => prepareLinuxBoot(mem, { kernel: syntheticBzImage(), cmdline: '', cpus: 1, memorySize: 128 * MiB }),
    /does not cover/,
  );
});

test('above the MMIO hole the e820 map has RAM at 4 GiB and the ECAM reserved when enabled', () => {
  const size = 0xc000_0000 + 64 * MiB;
  const mem = new GuestMemory(ramRegions(size).map((r) => ({ gpa: r.gpa, bytes: new Uint8Array(r.size) })));
  const boot = prepareLinuxBoot(mem, {
    kernel: syntheticBzImage(),
    cmdline: '',
    cpus: 1,
    memorySize: size,
    pcieEcam: true,
  });
  assert.ok(boot.e820.some((e) => e.addr === 0x1_0000_0000 && e.size === 64 * MiB && e.type === E820_RAM));
  assert.ok(boot.e820.some((e) => e.addr === 0xe000_0000 && e.type === 2));
});

/** Real kernels on this host: /boot/vmlinuz-* and those listed by the guest-material manifest. */
function realKernels(): string[] {
  const found: string[] = [];
  if (existsSync('/boot')) {
    for (const f of readdirSync('/boot')) if (f.startsWith('vmlinuz-')) found.push(join('/boot', f));
  }
  const manifest = join(homedir(), '.cache/vireo/guest/manifest.json');
  if (existsSync(manifest)) {
    const visit = (v: unknown): void => {
      if (typeof v === 'string') {
        if (/vmlinu[xz]|bzImage/.test(v) && existsSync(v) && statSync(v).isFile()) found.push(v);
      } else if (v && typeof v === 'object') {
        for (const x of Object.values(v)) visit(x);
      }
    };
    try {
      visit(JSON.parse(readFileSync(manifest, 'utf8')));
    } catch {
      // An unreadable manifest is the guest-material build's problem; its own tests report it.
    }
  }
  return [...new Set(found)];
}

const kernels = realKernels();
test('real kernels on this host parse and load', {
  skip:
    kernels.length === 0 ? 'no /boot/vmlinuz-* and no kernel in ~/.cache/vireo/guest/manifest.json' : false,
}, (t) => {
  for (const path of kernels) {
    let image: Uint8Array;
    try {
      image = readFileSync(path);
    } catch (e) {
      t.diagnostic(`${path}: unreadable (${(e as Error).message}), skipped`);
      continue;
    }
    const mem = machine(512 * MiB);
    const boot = prepareLinuxBoot(mem, {
      kernel: image,
      initrd: new Uint8Array(0x10000),
      cmdline: 'console=ttyS0',
      cpus: 2,
      memorySize: 512 * MiB,
    });
    t.diagnostic(
      `${path}: ${boot.format}${boot.protocolVersion ? ` protocol ${boot.protocolVersion.toString(16)}` : ''}, kernel ${boot.kernel.start.toString(16)}-${boot.kernel.end.toString(16)}, entry ${boot.entry.regs.rip.toString(16)}`,
    );
    assert.ok(
      boot.initrd!.addr >= boot.kernel.end || boot.initrd!.addr + boot.initrd!.size <= boot.kernel.start,
    );
  }
});
