import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatPortForward, Network, parseNetworkMode, parsePortForward } from './config.js';
import { defaultMac } from './mac.js';

test('--forward: protocol, address and ports, loopback by default', () => {
  assert.deepEqual(parsePortForward('tcp:8080:80'), {
    protocol: 'tcp',
    hostAddress: '127.0.0.1',
    hostPort: 8080,
    guestPort: 80,
  });
  assert.deepEqual(parsePortForward('8022:22'), {
    protocol: 'tcp',
    hostAddress: '127.0.0.1',
    hostPort: 8022,
    guestPort: 22,
  });
  assert.deepEqual(parsePortForward('udp:0.0.0.0:5353:53'), {
    protocol: 'udp',
    hostAddress: '0.0.0.0',
    hostPort: 5353,
    guestPort: 53,
  });
  assert.equal(formatPortForward(parsePortForward('udp:5353:53')), 'udp:127.0.0.1:5353:53');
  assert.throws(() => parsePortForward('sctp:1:2'), /must be an IPv4 address \(or the protocol tcp or udp\)/);
  assert.throws(() => parsePortForward('tcp:1:2:3:4'), /use \[tcp\|udp:\]/);
  assert.throws(() => parsePortForward('tcp:70000:80'), /a port is 1-65535/);
  assert.throws(() => parsePortForward('tcp:localhost:80:80'), /IPv4 address/);
});

test('--net: none, user, tap:NAME', () => {
  assert.equal(parseNetworkMode('user'), 'user');
  assert.equal(parseNetworkMode('none'), 'none');
  assert.deepEqual(parseNetworkMode('tap:tap0'), { tap: 'tap0' });
  assert.throws(() => parseNetworkMode('tap:'), /1-15 characters/);
  assert.throws(() => parseNetworkMode('slirp'), /not none, user or tap:NAME/);
});

test('network schema: forwards default to none, MACs must be unicast', () => {
  assert.deepEqual(Network.parse({ mode: 'user' }), { mode: 'user', forwards: [] });
  assert.equal(Network.safeParse({ mode: 'user', mac: '01:00:5e:00:00:01' }).success, false);
  assert.equal(
    Network.safeParse({ mode: 'tap', tap: 'br0', forwards: [] }).success,
    false,
    'forwards are for user mode',
  );
  assert.equal(defaultMac(Uint8Array.of(0xab, 0xcd, 0xef)), '52:54:00:ab:cd:ef');
});
