import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe } from 'node:test';
import { kvmTest } from '../../../tests/support/tags.js';
import { Cap } from './constants.js';
import { allocateGuestRam, EventFd, Kvm } from './kvm.js';
import { native } from './native.js';
import { CLOCK_DATA_SIZE } from './structs.js';

describe('Kvm', () => {
  kvmTest('opens /dev/kvm with every capability Vireo needs and reports CPUID and MSRs', () => {
    const kvm = Kvm.open();
    try {
      assert.deepEqual(kvm.missingCapabilities(), []);
      assert.ok(kvm.capability(Cap.NR_MEMSLOTS) >= 32);
      const cpuid = kvm.supportedCpuid();
      const leaf0 = cpuid.find((e) => e.function === 0);
      assert.ok(leaf0 && leaf0.eax >= 1, 'basic leaf 0 present');
      assert.ok(
        cpuid.some((e) => e.function === 0x8000_0001 && (e.edx & (1 << 29)) !== 0),
        'long mode offered',
      );
      assert.ok(kvm.msrIndexList().includes(0xc000_0082), 'LSTAR is saved and restored');
    } finally {
      kvm.close();
    }
  });

  kvmTest('the addon structs match the TypeScript layouts', () => {
    const sizes = native().structSizes;
    assert.equal(sizes.regs, 144);
    assert.equal(sizes.sregs, 312);
    assert.equal(sizes.fpu, 416);
    assert.equal(sizes.vcpuEvents, 64);
    assert.equal(sizes.cpuidEntry2, 40);
    assert.equal(sizes.msrEntry, 16);
    assert.equal(sizes.irqRoutingEntry, 48);
    assert.equal(sizes.clock, CLOCK_DATA_SIZE);
    assert.equal(native().exitBufferSize, 4352);
  });

  kvmTest('guest RAM from a SharedArrayBuffer is page-aligned', () => {
    for (const size of [4096, 1 << 20, 3 << 20]) {
      const ram = allocateGuestRam(size);
      assert.equal(ram.length, size);
      assert.equal(native().addressOf(ram) % 4096, 0);
      assert.ok(ram.buffer instanceof SharedArrayBuffer);
    }
    assert.throws(() => allocateGuestRam(1000), RangeError);
  });

  kvmTest('guest RAM of 2 MiB or more is 2 MiB-aligned and offered transparent huge pages', (t) => {
    const ram = allocateGuestRam(6 << 20);
    const address = native().addressOf(ram);
    assert.equal(address % (2 << 20), 0);
    const thp = readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8');
    if (thp.includes('[never]')) {
      t.skip('transparent huge pages are off on this host');
      return;
    }
    // The madvised range is a mapping of its own whose VmFlags carry `hg` (VM_HUGEPAGE).
    const mapping = readFileSync('/proc/self/smaps', 'utf8')
      .split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)
      .find((entry) => {
        const [start, end] = entry
          .split(' ')[0]!
          .split('-')
          .map((hex) => Number.parseInt(hex, 16));
        return start! <= address && address < end!;
      });
    assert.ok(mapping, 'guest RAM is mapped');
    assert.match(mapping.match(/^VmFlags:(.*)$/m)?.[1] ?? '', /\bhg\b/);
  });

  kvmTest('eventfd counts writes and reads back null when empty', () => {
    const efd = new EventFd();
    try {
      assert.equal(efd.read(), null);
      efd.write(2);
      efd.write(3n);
      assert.equal(efd.read(), 5n);
      assert.equal(efd.read(), null);
    } finally {
      efd.close();
    }
    assert.throws(() => native().eventfdRead(efd.fd), { code: 'EBADF', message: /eventfd read: EBADF/ });
  });
});
