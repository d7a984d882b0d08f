import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { kvmTest } from '../../../tests/support/tags.js';
import {
  decodeSregs,
  decodeVcpuEvents,
  emptyRegs,
  type Regs,
  type Sregs,
  type VcpuEvents,
} from '../kvm/structs.js';
import { createTestVm, HandlerBus, littleEndian, TestPort, type TestVm, testGuest } from '../kvm/test-vm.js';
import { VcpuSet, type VmStop } from '../kvm/vcpu-set.js';
import { GuestMemory } from '../memory/guest-memory.js';
import {
  decideEmulationFailure,
  type EmulationFailureVcpu,
  emulationFailureBytes,
  handleEmulationFailure,
  instructionName,
  setXsaveMxcsr,
  xsaveMxcsr,
} from './emulation-failure.js';
import { longModeSregs, writeIdentityPageTables } from './long-mode.js';

/** internal.data words as KVM fills them: flags, then the count byte and the bytes. */
function kvmData(bytes: number[]): bigint[] {
  const raw = new Uint8Array(24);
  raw[0] = bytes.length;
  raw.set(bytes, 1);
  const dv = new DataView(raw.buffer);
  return [1n, dv.getBigUint64(0, true), dv.getBigUint64(8, true), dv.getBigUint64(16, true)];
}

function fakeVcpu(rip: bigint, sregs: Sregs = decodeSregs(new Uint8Array(312)), initial: Partial<Regs> = {}) {
  let regs: Regs = { ...emptyRegs(), rip, ...initial };
  let events: VcpuEvents = decodeVcpuEvents(new Uint8Array(64));
  const xsave = new Uint8Array(4096);
  setXsaveMxcsr(xsave, 0x1f80);
  let xsaveWrites = 0;
  return {
    getRegs: () => ({ ...regs }),
    setRegs: (r: Regs) => {
      regs = r;
    },
    getSregs: () => structuredClone(sregs),
    getEvents: () => events,
    setEvents: (e: VcpuEvents) => {
      events = e;
    },
    getXsave: () => xsave.slice(),
    setXsave: (image: Uint8Array) => {
      xsave.set(image);
      xsaveWrites++;
    },
    setMxcsr: (value: number) => setXsaveMxcsr(xsave, value),
    get regs() {
      return regs;
    },
    get events() {
      return events;
    },
    get mxcsr() {
      return xsaveMxcsr(xsave);
    },
    get xsave() {
      return xsave;
    },
    get xsaveWrites() {
      return xsaveWrites;
    },
  };
}

/**
 * The state the stock kernel failed in (CR0/CR4/EFER from the report), on the boot identity map
 * of [0, 4 GiB) with 2 MiB pages, over 4 MiB of RAM.
 */
function kernelLikeGuest() {
  const memory = new GuestMemory([{ gpa: 0, bytes: new Uint8Array(4 << 20) }]);
  writeIdentityPageTables(memory);
  const sregs = longModeSregs(decodeSregs(new Uint8Array(312)));
  sregs.cr0 = 0x8005_0033n;
  sregs.cr4 = 0x106f0n;
  sregs.efer = 0xd01n;
  return { memory, sregs };
}

const LDMXCSR_RSP_4 = [0x0f, 0xae, 0x54, 0x24, 0x04];

describe('emulation failure', () => {
  test('decodes the count and bytes from internal.data[1..]', () => {
    assert.deepEqual(
      emulationFailureBytes(kvmData([0xf0, 0x48, 0x0f, 0xc7, 0x0e])),
      Uint8Array.of(0xf0, 0x48, 0x0f, 0xc7, 0x0e),
    );
    const fifteen = Array.from({ length: 15 }, (_, i) => i + 1);
    assert.deepEqual(emulationFailureBytes(kvmData(fifteen)), Uint8Array.from(fifteen));
    assert.equal(emulationFailureBytes([1n]), undefined);
    assert.equal(emulationFailureBytes(kvmData([])), undefined);
  });

  test('names the instructions emulating hosts trip on', () => {
    assert.equal(instructionName(Uint8Array.of(0xf0, 0x48, 0x0f, 0xc7, 0x0e)), 'lock cmpxchg16b');
    assert.equal(instructionName(Uint8Array.of(0x48, 0x0f, 0xae, 0x2f)), 'xrstor');
    assert.equal(instructionName(Uint8Array.of(0x0f, 0x01, 0xca)), 'clac');
    assert.equal(instructionName(Uint8Array.of(0x90)), undefined);
  });

  test('policy: int3 injects #BP, fwait is skipped, anything else is fatal', () => {
    assert.deepEqual(decideEmulationFailure(Uint8Array.of(0xcc)), { kind: 'inject-breakpoint', length: 1 });
    assert.deepEqual(decideEmulationFailure(Uint8Array.of(0x9b, 0x90)), {
      kind: 'skip',
      length: 1,
      name: 'fwait',
    });
    assert.equal(decideEmulationFailure(Uint8Array.of(0x0f, 0x0b)).kind, 'fatal');
    assert.equal(decideEmulationFailure(undefined).kind, 'fatal');
  });

  test('int3: RIP advances past it and #BP (vector 3) is injected', () => {
    const vcpu = fakeVcpu(0xffff_ffff_8100_0000n);
    const outcome = handleEmulationFailure(vcpu, kvmData([0xcc]));
    assert.equal(outcome.kind, 'continue');
    assert.equal(vcpu.regs.rip, 0xffff_ffff_8100_0001n);
    assert.equal(vcpu.events.exception.injected, 1);
    assert.equal(vcpu.events.exception.nr, 3);
  });

  test('unknown instruction: the message names bytes, instruction and registers', () => {
    const vcpu = fakeVcpu(0x1234n);
    const outcome = handleEmulationFailure(vcpu, kvmData([0x48, 0x0f, 0xae, 0x2f]));
    assert.equal(outcome.kind, 'fatal');
    assert.ok(outcome.kind === 'fatal');
    assert.match(outcome.message, /instruction bytes 48 0f ae 2f \(xrstor\)/);
    assert.match(outcome.message, /RIP 0x1234/);
    assert.match(outcome.message, /CR0=0x0 .*CR3=0x0 CR4=0x0/);
    assert.equal(vcpu.regs.rip, 0x1234n);
  });

  test('fences (0F AE F0/E8/F8, any rm) are skipped with their length; prefixed forms are not fences', () => {
    assert.deepEqual(decideEmulationFailure(Uint8Array.of(0x0f, 0xae, 0xf0)), {
      kind: 'skip',
      length: 3,
      name: 'mfence',
    });
    assert.deepEqual(decideEmulationFailure(Uint8Array.of(0x0f, 0xae, 0xe8)), {
      kind: 'skip',
      length: 3,
      name: 'lfence',
    });
    assert.deepEqual(decideEmulationFailure(Uint8Array.of(0x41, 0x0f, 0xae, 0xff)), {
      kind: 'skip',
      length: 4,
      name: 'sfence',
    });
    assert.equal(decideEmulationFailure(Uint8Array.of(0xf3, 0x0f, 0xae, 0xf0)).kind, 'fatal', 'umonitor');
    assert.equal(decideEmulationFailure(Uint8Array.of(0x66, 0x0f, 0xae, 0xf0)).kind, 'fatal', 'tpause');
    const vcpu = fakeVcpu(0x5000n);
    const outcome = handleEmulationFailure(vcpu, kvmData([0x0f, 0xae, 0xf0]));
    assert.deepEqual(outcome, { kind: 'continue', note: 'skipped mfence at 0x5000' });
    assert.equal(vcpu.regs.rip, 0x5003n);
  });

  test("ldmxcsr 0x4(%rsp) from the stock kernel's kernel_fpu_begin: MXCSR set, RIP past it", () => {
    const { memory, sregs } = kernelLikeGuest();
    const vcpu = fakeVcpu(0xffff_ffff_8104_0b5en, sregs, { rsp: 0x20_0ff0n });
    memory.writeU32(0x20_0ff4, 0x7fc0);
    const outcome = handleEmulationFailure(vcpu, kvmData(LDMXCSR_RSP_4), memory);
    assert.equal(outcome.kind, 'continue', outcome.kind === 'fatal' ? outcome.message : '');
    assert.equal(vcpu.mxcsr, 0x7fc0);
    assert.equal(vcpu.regs.rip, 0xffff_ffff_8104_0b63n);
    assert.equal(vcpu.events.exception.injected, 0);
  });

  test('stmxcsr with REX.XB, SIB and disp32 stores MXCSR through the page tables', () => {
    const { memory, sregs } = kernelLikeGuest();
    const vcpu = fakeVcpu(0x1000n, sregs, { r8: 0x30_0000n, r9: 3n });
    vcpu.setMxcsr(0x9f80);
    const outcome = handleEmulationFailure(
      vcpu,
      kvmData([0x43, 0x0f, 0xae, 0x9c, 0x88, 0x00, 0x01, 0x00, 0x00]),
      memory,
    );
    assert.equal(outcome.kind, 'continue');
    assert.equal(memory.readU32(0x30_0000 + 12 + 0x100), 0x9f80);
    assert.equal(vcpu.regs.rip, 0x1009n);
  });

  test('ldmxcsr/stmxcsr straddling a page boundary read and write both pages', () => {
    const { memory, sregs } = kernelLikeGuest();
    memory.writeU32(0x1f_fffe, 0x1f80 | 0x40);
    const vcpu = fakeVcpu(0x1000n, sregs, { rax: 0x1f_fffen });
    assert.equal(handleEmulationFailure(vcpu, kvmData([0x0f, 0xae, 0x10]), memory).kind, 'continue');
    assert.equal(vcpu.mxcsr, 0x1fc0);
    const store = fakeVcpu(0x1000n, sregs, { rbx: 0x1f_fffdn });
    store.setMxcsr(0x1234);
    assert.equal(handleEmulationFailure(store, kvmData([0x0f, 0xae, 0x1b]), memory).kind, 'continue');
    assert.equal(memory.readU32(0x1f_fffd), 0x1234);
  });

  test('reserved MXCSR bits raise #GP(0): MXCSR and RIP unchanged', () => {
    const { memory, sregs } = kernelLikeGuest();
    const vcpu = fakeVcpu(0x1000n, sregs, { rsp: 0x8000n });
    memory.writeU32(0x8004, 0x1_1f80);
    const outcome = handleEmulationFailure(vcpu, kvmData(LDMXCSR_RSP_4), memory);
    assert.equal(outcome.kind, 'continue');
    assert.equal(vcpu.events.exception.injected, 1);
    assert.equal(vcpu.events.exception.nr, 13);
    assert.equal(vcpu.events.exception.hasErrorCode, 1);
    assert.equal(vcpu.events.exception.errorCode, 0);
    assert.equal(vcpu.regs.rip, 0x1000n);
    assert.equal(vcpu.xsaveWrites, 0);
  });

  test('#UD without CR4.OSFXSR or with CR0.EM or a 66/F3/lock prefix; #NM with CR0.TS', () => {
    const cases: [string, (s: Sregs) => void, number[], number][] = [
      ['no OSFXSR', (s) => (s.cr4 &= ~0x200n), LDMXCSR_RSP_4, 6],
      ['EM', (s) => (s.cr0 |= 4n), LDMXCSR_RSP_4, 6],
      ['TS', (s) => (s.cr0 |= 8n), LDMXCSR_RSP_4, 7],
      ['66 prefix', () => {}, [0x66, ...LDMXCSR_RSP_4], 6],
      ['lock', () => {}, [0xf0, ...LDMXCSR_RSP_4], 6],
    ];
    for (const [what, change, bytes, vector] of cases) {
      const { memory, sregs } = kernelLikeGuest();
      change(sregs);
      const vcpu = fakeVcpu(0x1000n, sregs, { rsp: 0x8000n });
      handleEmulationFailure(vcpu, kvmData(bytes), memory);
      assert.equal(vcpu.events.exception.nr, vector, what);
      assert.equal(vcpu.events.exception.injected, 1, what);
      assert.equal(vcpu.regs.rip, 0x1000n, what);
    }
  });

  test('non-canonical operand: #GP(0), or #SS(0) for a stack-based address', () => {
    const { memory, sregs } = kernelLikeGuest();
    const viaRax = fakeVcpu(0x1000n, sregs, { rax: 0x8000_0000_0000n });
    handleEmulationFailure(viaRax, kvmData([0x0f, 0xae, 0x10]), memory);
    assert.equal(viaRax.events.exception.nr, 13);
    const viaRsp = fakeVcpu(0x1000n, sregs, { rsp: 0x8000_0000_0000n });
    handleEmulationFailure(viaRsp, kvmData(LDMXCSR_RSP_4), memory);
    assert.equal(viaRsp.events.exception.nr, 12);
  });

  test('an unmapped operand stops the VM with a message naming the address and the walk', () => {
    const { memory, sregs } = kernelLikeGuest();
    const vcpu = fakeVcpu(0x1000n, sregs, { rsp: 0x1_0000_0000n });
    const outcome = handleEmulationFailure(vcpu, kvmData(LDMXCSR_RSP_4), memory);
    assert.ok(outcome.kind === 'fatal');
    assert.match(outcome.message, /ldmxcsr at 0x1000 \(bytes 0f ae 54 24 04\)/);
    assert.match(outcome.message, /guest-virtual 0x100000004: page fault \(not-present at PDPTE/);
    assert.equal(vcpu.regs.rip, 0x1000n);
    const noMemory = handleEmulationFailure(fakeVcpu(0x1000n, sregs), kvmData(LDMXCSR_RSP_4));
    assert.ok(noMemory.kind === 'fatal');
    assert.match(noMemory.message, /needs guest memory/);
  });

  test('clac/stac flip RFLAGS.AC when CR4.SMAP is on, else #UD', () => {
    const { sregs } = kernelLikeGuest();
    sregs.cr4 |= 1n << 21n;
    const clac = fakeVcpu(0x1000n, sregs, { rflags: 0x40002n });
    assert.deepEqual(handleEmulationFailure(clac, kvmData([0x0f, 0x01, 0xca])), {
      kind: 'continue',
      note: 'emulated clac at 0x1000',
    });
    assert.equal(clac.regs.rflags, 2n);
    assert.equal(clac.regs.rip, 0x1003n);
    const stac = fakeVcpu(0x1000n, sregs);
    handleEmulationFailure(stac, kvmData([0x0f, 0x01, 0xcb]));
    assert.equal(stac.regs.rflags, 0x40002n);
    const noSmap = fakeVcpu(0x1000n, kernelLikeGuest().sregs);
    handleEmulationFailure(noSmap, kvmData([0x0f, 0x01, 0xca]));
    assert.equal(noSmap.events.exception.nr, 6);
    assert.equal(noSmap.regs.rip, 0x1000n);
  });
});

describe('emulation failure on KVM', () => {
  const open: TestVm[] = [];
  after(() => {
    for (const vm of open) vm.close();
  });

  kvmTest('ldmxcsr/stmxcsr at CPL0 round-trip MXCSR in every operand form; reserved bits #GP', async (t) => {
    const vm = createTestVm({ guest: testGuest('mxcsr') });
    open.push(vm);
    const reports: number[] = [];
    const notes: string[] = [];
    let set: VcpuSet | undefined;
    const pio = new HandlerBus()
      .on(TestPort.REPORT, { write: (data) => reports.push(littleEndian(data)) })
      .on(TestPort.DEBUG_EXIT, {
        write: (data) => set!.requestStop({ reason: 'shutdown', status: data[0]!, message: 'debug exit' }),
      });
    set = new VcpuSet({
      vcpus: vm.vcpus,
      pio,
      mmio: new HandlerBus(),
      log: () => {},
      onInternalError: (vcpu, info) => {
        if (info.suberror !== 1) return undefined;
        const outcome = handleEmulationFailure(vcpu, info.data, vm.memory);
        if (outcome.kind === 'fatal') return { reason: 'error', message: outcome.message };
        notes.push(outcome.note);
        return 'continue';
      },
    });
    set.start();
    const stop: VmStop = await set.done;
    const vcpu: EmulationFailureVcpu = vm.vcpus[0]!;
    if (!vcpu.getXsave && stop.reason === 'error') {
      // An emulating host, and a Vcpu without KVM_GET_XSAVE: the first ldmxcsr must stop the VM
      // with a message that says so, not run on with a wrong MXCSR.
      assert.match(stop.message, /ldmxcsr at 0x[0-9a-f]+ needs MXCSR, .*KVM_GET_XSAVE/);
      assert.deepEqual(reports, []);
      t.diagnostic('the host emulates CPL0 code and the Vcpu has no getXsave: ldmxcsr stopped the VM');
      return;
    }
    assert.equal(stop.reason, 'shutdown', stop.message);
    assert.equal(stop.status, 0);
    // Each value read back after loading it; #GP(0) for bit 16 with MXCSR left as it was.
    assert.deepEqual(reports, [0x7f80, 0x1fc0, 0x9f80, 0x3f80, 13, 0, 0x3f80, 0xf0]);
    if (vcpu.getXsave) assert.equal(xsaveMxcsr(vcpu.getXsave()), 0x3f80);
    t.diagnostic(notes.length ? `worked around: ${notes.join('; ')}` : 'the host ran ldmxcsr/stmxcsr itself');
  });
});
