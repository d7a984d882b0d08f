import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeSregs, emptyRegs, type Regs, type Sregs } from '../kvm/structs.js';
import { type CpuMode, cpuMode, decodeTwoByteModRm, linearAddress } from './instruction-decode.js';

const RIP = 0xffff_ffff_8104_0b5en;

function regs(values: Partial<Regs> = {}): Regs {
  return { ...emptyRegs(), rip: RIP, ...values };
}

function sregs(bases: Partial<Record<'ds' | 'ss' | 'fs' | 'gs', bigint>> = {}): Sregs {
  const s = decodeSregs(new Uint8Array(312));
  for (const [name, base] of Object.entries(bases)) s[name as 'ds'].base = base;
  return s;
}

/** Decodes `bytes` and returns its length and the linear address of its memory operand. */
function operand(bytes: number[], r: Regs, s: Sregs = sregs(), mode: CpuMode = 64) {
  const decoded = decodeTwoByteModRm(Uint8Array.from(bytes), mode);
  assert.ok(decoded, `decodes ${bytes}`);
  assert.ok(decoded.modrm?.memory, 'has a memory operand');
  const memory = decoded.modrm.memory;
  return {
    decoded,
    memory,
    linear: linearAddress(memory, r, s, mode, r.rip + BigInt(decoded.length)),
  };
}

describe('ModRM/SIB decoder', () => {
  test("the kernel's ldmxcsr 0x4(%rsp): SIB with rsp base, disp8, SS default segment", () => {
    const { decoded, memory, linear } = operand(
      [0x0f, 0xae, 0x54, 0x24, 0x04],
      regs({ rsp: 0xffffc900_00013e80n }),
    );
    assert.equal(decoded.length, 5);
    assert.deepEqual(decoded.opcode, [0x0f, 0xae]);
    assert.equal(decoded.modrm?.reg, 2);
    assert.equal(memory.base, 4);
    assert.equal(memory.index, undefined);
    assert.equal(memory.segment, 'ss');
    assert.equal(linear, 0xffffc900_00013e84n);
  });

  test('RIP-relative (mod 00, rm 101) counts from the end of the instruction, with or without REX.B', () => {
    const plain = operand([0x0f, 0xae, 0x15, 0x10, 0x00, 0x00, 0x00], regs());
    assert.equal(plain.decoded.length, 7);
    assert.equal(plain.memory.base, 'rip');
    assert.equal(plain.linear, RIP + 7n + 0x10n);
    const rexB = operand([0x41, 0x0f, 0xae, 0x15, 0xf0, 0xff, 0xff, 0xff], regs({ r13: 0x5000n }));
    assert.equal(rexB.memory.base, 'rip');
    assert.equal(rexB.linear, RIP + 8n - 0x10n);
  });

  test('REX.X and REX.B extend SIB index and base; scale and disp32 apply', () => {
    const { decoded, memory, linear } = operand(
      [0x43, 0x0f, 0xae, 0x94, 0x88, 0x00, 0x01, 0x00, 0x00],
      regs({ r8: 0x10_0000n, r9: 3n, rax: 0xdeadn, rcx: 0xbeefn }),
    );
    assert.equal(decoded.length, 9);
    assert.equal(memory.base, 8);
    assert.equal(memory.index, 9);
    assert.equal(memory.scale, 4);
    assert.equal(linear, 0x10_0000n + 12n + 0x100n);
  });

  test('REX.B with rm 101 and mod 01 is r13 plus disp8 (negative)', () => {
    const { decoded, memory, linear } = operand([0x41, 0x0f, 0xae, 0x5d, 0xf8], regs({ r13: 0x2000n }));
    assert.equal(decoded.length, 5);
    assert.equal(decoded.modrm?.reg, 3);
    assert.equal(memory.base, 13);
    assert.equal(memory.segment, 'ds', 'r13 is not rbp: no SS default');
    assert.equal(linear, 0x1ff8n);
  });

  test('SIB base 100 with REX.B is r12; index 100 without REX.X is none', () => {
    const { memory, linear } = operand([0x41, 0x0f, 0xae, 0x1c, 0x24], regs({ r12: 0x7000n, rsp: 1n }));
    assert.equal(memory.base, 12);
    assert.equal(memory.index, undefined);
    assert.equal(linear, 0x7000n);
  });

  test('SIB base 101 with mod 00 means no base and a disp32; REX.X makes index 100 r12', () => {
    const indexed = operand(
      [0x42, 0x0f, 0xae, 0x14, 0x25, 0x00, 0x10, 0x00, 0x00],
      regs({ r12: 0x30n, rbp: 9n }),
    );
    assert.equal(indexed.decoded.length, 9);
    assert.equal(indexed.memory.base, undefined);
    assert.equal(indexed.memory.index, 12);
    assert.equal(indexed.linear, 0x1030n);
    const absolute = operand([0x0f, 0xae, 0x14, 0x25, 0x78, 0x56, 0x34, 0x12], regs({ rsp: 0x999n }));
    assert.equal(absolute.decoded.length, 8);
    assert.equal(absolute.linear, 0x1234_5678n);
  });

  test('mod 10 with SIB takes a disp32, sign-extended', () => {
    const { decoded, linear } = operand(
      [0x0f, 0xae, 0x94, 0x24, 0x00, 0xff, 0xff, 0xff],
      regs({ rsp: 0x1000n }),
    );
    assert.equal(decoded.length, 8);
    assert.equal(linear, 0xf00n);
  });

  test('in 64-bit mode only FS and GS overrides add a base; DS/SS bases are ignored', () => {
    const s = sregs({
      ds: 0x1111_0000n,
      ss: 0x2222_0000n,
      fs: 0x7f00_0000_0000n,
      gs: 0xffff_8880_1f00_0000n,
    });
    const gs = operand([0x65, 0x0f, 0xae, 0x14, 0x25, 0x08, 0x00, 0x00, 0x00], regs(), s);
    assert.equal(gs.memory.segment, 'gs');
    assert.equal(gs.linear, 0xffff_8880_1f00_0008n);
    const fs = operand([0x64, 0x48, 0x0f, 0xae, 0x50, 0x08], regs({ rax: 0x100n }), s);
    assert.equal(fs.decoded.length, 6);
    assert.equal(fs.linear, 0x7f00_0000_0108n);
    const stack = operand([0x0f, 0xae, 0x54, 0x24, 0x04], regs({ rsp: 0x8000n }), s);
    assert.equal(stack.linear, 0x8004n);
  });

  test('0x67 in 64-bit mode: 32-bit address arithmetic, also for RIP-relative', () => {
    const eax = operand([0x67, 0x0f, 0xae, 0x10], regs({ rax: 0x1_0000_1000n }));
    assert.equal(eax.decoded.length, 4);
    assert.equal(eax.memory.addressBits, 32);
    assert.equal(eax.linear, 0x1000n);
    const rip = operand([0x67, 0x0f, 0xae, 0x15, 0x00, 0x01, 0x00, 0x00], regs({ rip: 0x1_0000_0000n }));
    assert.equal(rip.linear, 0x108n);
  });

  test('prefixes: a REX followed by a legacy prefix is ignored; lock/rep/66 are recorded', () => {
    const decoded = decodeTwoByteModRm(Uint8Array.of(0x41, 0x66, 0x0f, 0xae, 0x10), 64);
    assert.equal(decoded?.prefixes.rex, 0);
    assert.equal(decoded?.prefixes.operandSize, true);
    assert.equal(decoded?.modrm?.memory?.base, 0, 'rax, not r8');
    const rep = decodeTwoByteModRm(Uint8Array.of(0xf0, 0xf3, 0x0f, 0xae, 0x10), 64);
    assert.equal(rep?.prefixes.lock, true);
    assert.equal(rep?.prefixes.repeat, 0xf3);
  });

  test('register form (mod 11) has no memory operand; REX.R/REX.B extend reg/rm', () => {
    const fence = decodeTwoByteModRm(Uint8Array.of(0x0f, 0xae, 0xf0), 64);
    assert.equal(fence?.length, 3);
    assert.equal(fence?.modrm?.mod, 3);
    assert.equal(fence?.modrm?.reg, 6);
    assert.equal(fence?.modrm?.memory, undefined);
    const extended = decodeTwoByteModRm(Uint8Array.of(0x45, 0x0f, 0x01, 0xca), 64);
    assert.equal(extended?.modrm?.reg, 9);
    assert.equal(extended?.modrm?.rm, 10);
  });

  test('truncated bytes and other opcodes are refused, not guessed', () => {
    assert.equal(decodeTwoByteModRm(Uint8Array.of(0x0f, 0xae, 0x54, 0x24), 64), undefined);
    assert.equal(decodeTwoByteModRm(Uint8Array.of(0x0f, 0xae, 0x94, 0x24, 0x00, 0x01), 64), undefined);
    assert.equal(decodeTwoByteModRm(Uint8Array.of(0x0f, 0xae), 64), undefined);
    assert.equal(decodeTwoByteModRm(Uint8Array.of(0x90), 64), undefined);
    assert.equal(decodeTwoByteModRm(Uint8Array.of(0x0f, 0x38, 0x00, 0x00), 64), undefined);
  });

  test('32-bit mode: no REX, mod 00 rm 101 is an absolute disp32, segment bases apply', () => {
    const s = sregs({ ds: 0x1000_0000n, ss: 0x2000_0000n });
    const absolute = operand([0x0f, 0xae, 0x15, 0x00, 0x10, 0x00, 0x00], regs(), s, 32);
    assert.equal(absolute.memory.base, undefined);
    assert.equal(absolute.linear, 0x1000_1000n);
    const ebp = operand([0x0f, 0xae, 0x55, 0x04], regs({ rbp: 0xffff_fff0n }), s, 32);
    assert.equal(ebp.memory.segment, 'ss');
    assert.equal(ebp.linear, 0x2000_0000n + 0xffff_fff4n - 0x1_0000_0000n, 'wraps at 4 GiB');
    assert.equal(decodeTwoByteModRm(Uint8Array.of(0x41, 0x0f, 0xae, 0x10), 32), undefined, '0x41 is inc ecx');
    assert.equal(
      decodeTwoByteModRm(Uint8Array.of(0x67, 0x0f, 0xae, 0x10), 32),
      undefined,
      '16-bit addressing',
    );
  });

  test('cpuMode reads CS.L with EFER.LMA, else CS.D with CR0.PE', () => {
    const s = sregs();
    assert.equal(cpuMode(s), undefined);
    s.cr0 = 1n;
    s.cs.db = 1;
    assert.equal(cpuMode(s), 32);
    s.efer = 0x500n;
    s.cs.l = 1;
    s.cs.db = 0;
    assert.equal(cpuMode(s), 64);
  });
});
