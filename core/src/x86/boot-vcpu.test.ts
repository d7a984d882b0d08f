import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeSregs, encodeSregs, SREGS_SIZE } from '../kvm/structs.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { prepareLinuxBoot } from './boot.js';
import { bootRegs, bootSregs } from './boot-vcpu.js';
import { ramRegions, ZERO_PAGE } from './layout.js';
import { syntheticBzImage, syntheticElf } from './synthetic-kernels.js';

const MiB = 1 << 20;
const machine = (size: number) =>
  new GuestMemory(ramRegions(size).map((r) => ({ gpa: r.gpa, bytes: new Uint8Array(r.size) })));
const resetSregs = () => decodeSregs(new Uint8Array(SREGS_SIZE));

test('PVH state becomes flat 32-bit protected-mode sregs and EBX = start info', () => {
  const mem = machine(64 * MiB);
  const boot = prepareLinuxBoot(mem, {
    kernel: syntheticElf({ pvhEntry: 0x100_0010 }),
    cmdline: '',
    cpus: 1,
    memorySize: 64 * MiB,
  });
  const base = resetSregs();
  base.apicBase = 0xfee0_0900n;
  const sregs = bootSregs(base, boot.entry);
  assert.equal(sregs.apicBase, 0xfee0_0900n, 'unrelated fields kept');
  assert.equal(sregs.cs.base, 0n);
  assert.equal(sregs.cs.db, 1);
  assert.equal(sregs.cr0 & 0x8000_0001n, 1n);
  assert.equal(sregs.efer, 0n);
  // Round-trips through the kvm_sregs encoding.
  assert.deepEqual(decodeSregs(encodeSregs(sregs)).cs, sregs.cs);
  const regs = bootRegs(boot.entry);
  assert.equal(regs.rip, 0x100_0010n);
  assert.equal(regs.rbx, BigInt(boot.entry.regs.rbx));
  assert.equal(regs.rflags, 2n);
});

test('bzImage state becomes long-mode sregs with RSI = zero page', () => {
  const mem = machine(64 * MiB);
  const boot = prepareLinuxBoot(mem, {
    kernel: syntheticBzImage(),
    cmdline: '',
    cpus: 1,
    memorySize: 64 * MiB,
  });
  const sregs = bootSregs(resetSregs(), boot.entry);
  assert.equal(sregs.cs.l, 1);
  assert.equal(sregs.cs.selector, 0x10);
  assert.equal(sregs.ds.selector, 0x18);
  assert.ok(sregs.efer & 0x400n, 'LMA');
  assert.equal(bootRegs(boot.entry).rsi, BigInt(ZERO_PAGE));
  // The identity map is in guest memory: PML4[0] points at a present PDPT.
  assert.equal(Number(mem.readU64(Number(sregs.cr3)) & 1n), 1);
});
