// The virtio-net bench guest as a test of the whole path under KVM: a CPL3 driver finds the
// device over 0xCF8, reads its MAC from the config space, kicks through the ioeventfd, and its
// frames go through the device and the real passt to UDP sockets on the host, whose echoes come
// back into its receive ring. Nothing here is timed; UDP may drop, so the counts are bounded
// rather than exact.
import assert from 'node:assert/strict';
import { macBytes } from '../../core/src/net/mac.js';
import { findPasst, PasstBackend } from '../../core/src/net/passt.js';
import { kvmTest } from '../../tests/support/tags.js';
import { phases, runInVireo } from './bench-guest.js';
import { LARGE_PAYLOAD, netBenchGuest, passtAddresses, SMALL_PAYLOAD, startPeer } from './net-peer.js';

kvmTest('the virtio-net bench guest talks UDP to the host through Vireo and the real passt', async (t) => {
  const addresses = passtAddresses();
  if (!findPasst() || typeof addresses === 'string') {
    t.skip(typeof addresses === 'string' ? addresses : 'passt is not installed');
    return;
  }
  const peer = await startPeer('127.0.0.1');
  const settings = { small: 500, large: 300, echo: 100, window: 4 };
  const guest = netBenchGuest({ guestIp: addresses.guest, peerIp: addresses.peer, peer, ...settings });
  const backend = await PasstBackend.launch({ log: () => {} });
  let run: Awaited<ReturnType<typeof runInVireo>>;
  try {
    run = await runInVireo(
      guest,
      { network: { backend, mac: macBytes('52:54:00:12:34:56') } },
      { timeoutMs: 120_000 },
    );
  } finally {
    backend.close();
  }
  const counts = await peer.stop();
  const said = run.lines.map((l) => l.text).join('\n');
  assert.equal(run.error, undefined, said);
  assert.equal(run.status, 0, said);
  // 52:54:00:12:34:56 as one number.
  assert.match(said, new RegExp(`mac=${0x525400123456} `), 'the guest read the MAC from the config space');
  const found = phases(run);
  assert.equal(found.get('tx-small')?.fields.get('frames'), 500n);
  assert.equal(found.get('tx-large')?.fields.get('frames'), 300n);
  const echo = found.get('echo')!;
  assert.equal(Number(echo.fields.get('frames')) + Number(echo.fields.get('lost')), 100);
  assert.ok(Number(echo.fields.get('frames')) > 50, `${echo.fields.get('frames')} echoes came back`);
  const small = counts.bySize[SMALL_PAYLOAD] ?? 0;
  const large = counts.bySize[LARGE_PAYLOAD] ?? 0;
  assert.ok(small > 0 && small <= 500, `${small} small datagrams reached the host`);
  assert.ok(large > 0 && large <= 300, `${large} large datagrams reached the host`);
  assert.ok(counts.echoed >= Number(echo.fields.get('frames')));
});
