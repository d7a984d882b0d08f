import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeSregs, decodeVcpuEvents, emptyRegs, type Regs, type VcpuEvents } from '../kvm/structs.js';
import {
  decideEmulationFailure,
  emulationFailureBytes,
  handleEmulationFailure,
  instructionName,
} from './emulation-failure.js';

/** internal.data words as KVM fills them: flags, then the count byte and the bytes. */
function kvmData(bytes: number[]): bigint[] {
  const raw = new Uint8Array(24);
  raw[0] = bytes.length;
  raw.set(bytes, 1);
  const dv = new DataView(raw.buffer);
  return [1n, dv.getBigUint64(0, true), dv.getBigUint64(8, true), dv.getBigUint64(16, true)];
}

function fakeVcpu(rip: bigint) {
  let regs: Regs = { ...emptyRegs(), rip };
  let events: VcpuEvents = decodeVcpuEvents(new Uint8Array(64));
  return {
    getRegs: () => ({ ...regs }),
    setRegs: (r: Regs) => {
      regs = r;
    },
    getSregs: () => decodeSregs(new Uint8Array(312)),
    getEvents: () => events,
    setEvents: (e: VcpuEvents) => {
      events = e;
    },
    get regs() {
      return regs;
    },
    get events() {
      return events;
    },
  };
}

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
});
