import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError, ErrorCode } from '../../../core/src/api/schema.js';
import { RpcPeer } from './rpc-peer.js';

function peerWithOutbox() {
  const sent: { id: number; method: string; params: unknown }[] = [];
  const peer = new RpcPeer((text) => sent.push(JSON.parse(text)));
  return { peer, sent };
}

test('answers are matched to their requests by id, in any order', async () => {
  const { peer, sent } = peerWithOutbox();
  const first = peer.call('vm.get', { vm: 'a' });
  const second = peer.call('vm.get', { vm: 'b' });
  assert.deepEqual(
    sent.map((m) => [m.method, m.params]),
    [
      ['vm.get', { vm: 'a' }],
      ['vm.get', { vm: 'b' }],
    ],
  );
  assert.notEqual(sent[0]!.id, sent[1]!.id);
  peer.receive(JSON.stringify({ jsonrpc: '2.0', id: sent[1]!.id, result: 'B' }));
  peer.receive(JSON.stringify({ jsonrpc: '2.0', id: sent[0]!.id, result: 'A' }));
  assert.deepEqual(await Promise.all([first, second]), ['A', 'B']);
});

test('an error answer rejects with an ApiError carrying code and data', async () => {
  const { peer, sent } = peerWithOutbox();
  const call = peer.call('vm.create', { name: '' });
  const data = [{ path: 'name', message: 'a name is required' }];
  peer.receive(
    JSON.stringify({ jsonrpc: '2.0', id: sent[0]!.id, error: { code: -32602, message: 'invalid', data } }),
  );
  await assert.rejects(call, (error) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.code, ErrorCode.invalidParams);
    assert.deepEqual(error.data, data);
    return true;
  });
});

test('notifications reach their listeners until unsubscribed; junk is ignored', () => {
  const { peer } = peerWithOutbox();
  const seen: unknown[] = [];
  const off = peer.on('event', (params) => seen.push(params));
  peer.receive('not json');
  peer.receive('null');
  peer.receive(JSON.stringify({ jsonrpc: '2.0', id: 99, result: 'nobody asked' }));
  peer.receive(JSON.stringify({ jsonrpc: '2.0', method: 'event', params: { kind: 'deleted', vm: 'x' } }));
  peer.receive(JSON.stringify({ jsonrpc: '2.0', method: 'console.output', params: { vm: 'x', data: '' } }));
  off();
  peer.receive(JSON.stringify({ jsonrpc: '2.0', method: 'event', params: { kind: 'deleted', vm: 'y' } }));
  assert.deepEqual(seen, [{ kind: 'deleted', vm: 'x' }]);
});

test('a connection-wide error fails every open call; close fails open and later calls', async () => {
  const { peer } = peerWithOutbox();
  const open = peer.call('vm.list', {});
  peer.receive(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32007, message: 'too large' } }));
  await assert.rejects(
    open,
    (error) => error instanceof ApiError && error.code === ErrorCode.messageTooLarge,
  );

  const reasons: string[] = [];
  peer.onClose((reason) => reasons.push(reason));
  const pending = peer.call('vm.list', {});
  peer.close('socket closed');
  peer.close('again');
  await assert.rejects(pending, /socket closed/);
  await assert.rejects(peer.call('vm.list', {}), /socket closed/);
  assert.deepEqual(reasons, ['socket closed']);
});
