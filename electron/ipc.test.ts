import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ErrorCode } from '../core/src/api/schema.js';
import { checkCall, isTrustedSender } from './ipc.js';

test('calls are taken only from the main frame of the renderer protocol', () => {
  assert.equal(isTrustedSender('vireo://app/', true), true);
  assert.equal(isTrustedSender('vireo://app/index.html#/vm/web', true), true);
  assert.equal(isTrustedSender('vireo://app/', false), false, 'a subframe');
  assert.equal(isTrustedSender('vireo://other/', true), false);
  assert.equal(isTrustedSender('https://example.com/', true), false);
  assert.equal(isTrustedSender('file:///usr/lib/vireo/index.html', true), false);
  assert.equal(isTrustedSender('not a url', true), false);
  assert.equal(isTrustedSender(undefined, true), false);
});

test('IPC arguments are checked against the API schema', () => {
  const good = checkCall('vm.create', { name: 'web', cpus: 2 });
  assert.ok(good.ok);
  assert.equal(good.method, 'vm.create');
  assert.deepEqual((good.params as { cpus: number }).cpus, 2);

  const cases: [unknown, unknown, number, RegExp][] = [
    [42, {}, ErrorCode.invalidRequest, /method must be a string/],
    ['vm.explode', {}, ErrorCode.methodNotFound, /no method 'vm\.explode'/],
    ['__proto__', {}, ErrorCode.methodNotFound, /no method/],
    ['vm.list', 'all', ErrorCode.invalidParams, /params must be an object/],
    ['vm.list', [1], ErrorCode.invalidParams, /params must be an object/],
    ['vm.list', { extra: true }, ErrorCode.invalidParams, /invalid params/],
    ['vm.create', { name: '' }, ErrorCode.invalidParams, /name: a name is required/],
    ['vm.stop', { vm: 'web', timeoutMs: -1 }, ErrorCode.invalidParams, /timeoutMs/],
  ];
  for (const [method, params, code, message] of cases) {
    const checked = checkCall(method, params);
    assert.ok(!checked.ok, `${String(method)} ${JSON.stringify(params)}`);
    assert.equal(checked.error.code, code);
    assert.match(checked.error.message, message);
  }
  const bad = checkCall('vm.create', { name: '', cpus: 0 });
  assert.ok(!bad.ok);
  assert.deepEqual(
    (bad.error.data as { path: string }[]).map((issue) => issue.path).sort(),
    ['cpus', 'name'],
    'the field errors the wizard shows',
  );
  assert.ok(checkCall('vm.list', undefined).ok, 'no params is {}');
});
