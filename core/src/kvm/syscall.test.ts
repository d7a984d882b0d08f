// CPL3 -> CPL0 transitions of a freestanding guest (tests/guests/syscall.S). On a host whose KVM
// emulates guest kernel code (PVM-like, DESIGN.md "Test hosts") none of them enters CPL0: a user
// `syscall` does everything SYSCALL does except loading CS/SS from STAR (so it runs LSTAR's code
// at CPL3, which is why Linux's /init dies at entry_SYSCALL_64), and `int 0x80` through a DPL-3
// gate or any exception from CPL3 ends in a triple fault. Setting the syscall MSRs from the VMM
// changes nothing, and the host exposes no PVM MSRs (0x4b564df*) a VMM could set instead.
import assert from 'node:assert/strict';
import { after, describe } from 'node:test';
import { guestUserspaceSkipReason, kvmSkipReason, kvmTest } from '../../../tests/support/tags.js';
import { KERNEL_LOAD } from '../x86/layout.js';
import type { Regs, Sregs } from './structs.js';
import { createTestVm, HandlerBus, littleEndian, TestPort, type TestVm, testGuest } from './test-vm.js';
import { VcpuSet, type VmStop } from './vcpu-set.js';

const open: TestVm[] = [];
after(() => {
  for (const vm of open) vm.close();
});

const MSR_EFER = 0xc000_0080;
const MSR_STAR = 0xc000_0081;
const MSR_LSTAR = 0xc000_0082;
const MSR_SFMASK = 0xc000_0084;
const EFER_SCE = 1n;
const STAR_LINUX_LAYOUT = 0x0023_0010n << 32n;
const SFMASK = 0x4_7700n;
const RFLAGS_IF = 0x200;
const RFLAGS_IOPL = 0x3000;

const Mode = { SYSCALL: 0n, SYSCALL_VMM_MSRS: 1n, INT80: 2n, SYSCALL_SYSRET: 3n } as const;
const REPORT_USER = 0x0c0d_e003;
const REPORT_SYSCALL = 0x5c5c_5c5c;
const USER_CS = 0x33;
const USER_SS = 0x2b;
const KERNEL_CS = 0x10;
/** The guest keeps syscall_handler's address here for the VMM to put in LSTAR. */
const HANDLER_ADDRESS_SLOT = KERNEL_LOAD + 16;

const emulatingHost = !kvmSkipReason() && guestUserspaceSkipReason() !== false;

interface Run {
  stop: VmStop;
  reports: number[];
  regs: Regs;
  sregs: Sregs;
  msrs: Map<number, bigint>;
  handler: bigint;
}

async function run(mode: bigint, msrsFromVmm = false): Promise<Run> {
  const vm = createTestVm({ guest: testGuest('syscall'), param: mode });
  open.push(vm);
  const vcpu = vm.vcpus[0]!;
  const handler = vm.memory.readU64(HANDLER_ADDRESS_SLOT);
  if (msrsFromVmm) {
    const efer = vcpu.getMsrs([MSR_EFER])[0]!.value;
    vcpu.setMsrs([
      { index: MSR_EFER, value: efer | EFER_SCE },
      { index: MSR_STAR, value: STAR_LINUX_LAYOUT },
      { index: MSR_LSTAR, value: handler },
      { index: MSR_SFMASK, value: SFMASK },
    ]);
  }
  const reports: number[] = [];
  let set: VcpuSet | undefined;
  const pio = new HandlerBus()
    .on(TestPort.REPORT, { write: (data) => reports.push(littleEndian(data)) })
    .on(TestPort.DEBUG_EXIT, {
      write: (data) => set!.requestStop({ reason: 'shutdown', status: data[0]!, message: 'debug exit' }),
    });
  set = new VcpuSet({ vcpus: vm.vcpus, pio, mmio: new HandlerBus(), log: () => {} });
  const timer = setTimeout(() => set!.requestStop({ reason: 'stopped', message: 'guest hung' }), 20_000);
  set.start();
  const stop = await set.done;
  clearTimeout(timer);
  const msrs = new Map(
    vcpu.getMsrs([MSR_EFER, MSR_STAR, MSR_LSTAR, MSR_SFMASK]).map((m) => [m.index, m.value]),
  );
  return { stop, reports, regs: vcpu.getRegs(), sregs: vcpu.getSregs(), msrs, handler };
}

/** The user-mode report: marker, CS, RFLAGS as pushfq sees them. */
function assertUserReport(reports: number[]): void {
  assert.equal(reports[0], REPORT_USER);
  assert.equal(reports[1], USER_CS);
  if (emulatingHost) {
    // The host runs guest user code with its own IOPL 0 and IF 1, whatever iretq loaded (0x3002);
    // `out` from CPL3 is then checked against the TSS I/O bitmap, which the guest provides.
    assert.equal(reports[2]! & RFLAGS_IOPL, 0);
    assert.equal(reports[2]! & RFLAGS_IF, RFLAGS_IF);
  }
}

/** The syscall handler's report: marker, CS, SS, RCX (return RIP), R11 (saved RFLAGS), RSP. */
function assertSyscallArrived(result: Run, returnRip: number): void {
  const [marker, cs, ss, rcx, r11] = result.reports.slice(3);
  assert.equal(marker, REPORT_SYSCALL);
  assert.equal(rcx, returnRip, 'RCX holds the address after `syscall`');
  assert.equal(r11! & RFLAGS_IF, RFLAGS_IF, 'R11 holds the user RFLAGS');
  assert.equal(result.msrs.get(MSR_LSTAR), result.handler);
  assert.equal((result.msrs.get(MSR_EFER)! & EFER_SCE) !== 0n, true);
  if (emulatingHost) {
    assert.deepEqual([cs, ss], [USER_CS, USER_SS], 'the handler runs at CPL3 with the user selectors');
  } else {
    assert.equal(cs, KERNEL_CS);
  }
}

describe('CPL3 -> CPL0 transitions (syscall, sysret, int 0x80)', () => {
  // `syscall` is 2 bytes at syscall_address; the guest reports the address after it in RCX.
  function syscallReturnRip(): number {
    const guest = testGuest('syscall');
    for (let i = 0; i + 1 < guest.length; i++) {
      // `0f 05` followed by the short jmp to after_sysret (eb ..).
      if (guest[i] === 0x0f && guest[i + 1] === 0x05 && guest[i + 2] === 0xeb) return KERNEL_LOAD + i + 2;
    }
    throw new Error('no syscall instruction in the guest');
  }

  kvmTest('syscall with MSRs written by the guest reaches LSTAR (at CPL3 on an emulating host)', async () => {
    const result = await run(Mode.SYSCALL);
    assert.equal(result.stop.reason, 'shutdown');
    assert.equal(result.stop.status, 0x42);
    assertUserReport(result.reports);
    assertSyscallArrived(result, syscallReturnRip());
    assert.equal(result.msrs.get(MSR_STAR), 0x0020_0010n << 32n);
    if (emulatingHost) assert.equal(result.sregs.cs.dpl, 3);
  });

  kvmTest('syscall with MSRs set by the VMM (KVM_SET_MSRS) behaves the same', async () => {
    const result = await run(Mode.SYSCALL_VMM_MSRS, true);
    assert.equal(result.stop.reason, 'shutdown');
    assert.equal(result.stop.status, 0x42);
    assertUserReport(result.reports);
    assertSyscallArrived(result, syscallReturnRip());
    assert.equal(result.msrs.get(MSR_STAR), STAR_LINUX_LAYOUT);
  });

  kvmTest('sysretq from the syscall handler', async () => {
    const result = await run(Mode.SYSCALL_SYSRET);
    assertUserReport(result.reports);
    assertSyscallArrived(result, syscallReturnRip());
    if (emulatingHost) {
      // The handler is still at CPL3, where sysretq raises #GP; with no CPL3 -> CPL0 delivery
      // that ends in a triple fault with RIP at the sysretq.
      assert.equal(result.stop.reason, 'reset');
      assert.equal(result.sregs.cs.selector, USER_CS);
      const guest = testGuest('syscall');
      const offset = Number(result.regs.rip) - KERNEL_LOAD;
      assert.deepEqual([...guest.subarray(offset, offset + 3)], [0x48, 0x0f, 0x07], 'RIP at sysretq');
    } else {
      assert.equal(result.stop.reason, 'shutdown');
      assert.deepEqual(result.reports.slice(9, 12), [0x5e5e_5e5e, USER_CS, USER_SS]);
    }
  });

  kvmTest('int 0x80 through a DPL-3 interrupt gate', async () => {
    const result = await run(Mode.INT80);
    assertUserReport(result.reports);
    if (emulatingHost) {
      // No handler runs: KVM reports a triple fault (KVM_EXIT_SHUTDOWN), RIP at `int 0x80`, CPL3.
      assert.equal(result.stop.reason, 'reset');
      assert.equal(result.reports.length, 3);
      assert.equal(result.sregs.cs.selector, USER_CS);
      const guest = testGuest('syscall');
      const offset = Number(result.regs.rip) - KERNEL_LOAD;
      assert.deepEqual([...guest.subarray(offset, offset + 2)], [0xcd, 0x80], 'RIP at int 0x80');
    } else {
      assert.equal(result.stop.reason, 'shutdown');
      assert.deepEqual(result.reports.slice(3, 5), [0x8080_8080, KERNEL_CS]);
    }
  });
});
