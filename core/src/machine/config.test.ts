import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeIssues, MachineConfig } from './config.js';

const valid = { kernel: '/k', memoryBytes: 512 * 1024 * 1024, cpus: 2 };

test('a minimal config gets defaults', () => {
  const config = MachineConfig.parse(valid);
  assert.equal(config.cmdline, '');
  assert.equal(config.cpuProfile, 'auto');
});

test('bad fields are named with the reason', () => {
  const result = MachineConfig.safeParse({ ...valid, memoryBytes: 1024, cpus: 0, cpuProfile: 'fast' });
  assert.equal(result.success, false);
  const text = describeIssues(result.error!);
  assert.match(text, /memoryBytes: memory must be at least 32M/);
  assert.match(text, /cpus: at least 1 CPU/);
  assert.match(text, /cpuProfile:/);
});

test('memory must be whole 2M pages', () => {
  const result = MachineConfig.safeParse({ ...valid, memoryBytes: 33 * 1024 * 1024 });
  assert.equal(result.success, false);
  assert.match(describeIssues(result.error!), /multiple of 2M/);
});

test('CPUs stop where the boot tables do: 254 (APIC id 0xFF is the broadcast id)', () => {
  assert.equal(MachineConfig.safeParse({ ...valid, cpus: 254 }).success, true);
  const result = MachineConfig.safeParse({ ...valid, cpus: 255 });
  assert.equal(result.success, false);
  assert.match(describeIssues(result.error!), /cpus: at most 254 CPUs/);
});
