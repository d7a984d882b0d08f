// virtio-net with passt as a real Linux guest uses it, through the real `vireo run --net user`:
// the kernel takes a DHCP lease (ip=dhcp), then the guest's shell resolves a name, fetches a page
// from an HTTP server on the host's loopback through passt's NAT, and serves a page the host
// reaches through a port forward. Guest user space is needed, so this skips where it cannot run
// (see guestUserspaceSkipReason) and runs in full on hardware virtualization.

import assert from 'node:assert/strict';
import { resolve4 } from 'node:dns/promises';
import { createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { after, describe } from 'node:test';
import { guestMaterial, materialSkipReason } from '../../../tests/support/material.js';
import { bootTest, guestUserspaceSkipReason, slowBootSkipReason } from '../../../tests/support/tags.js';
import { startVireo } from '../../../tests/support/vireo-process.js';
import { SHELL_PROMPT } from '../guest-material/test-protocol.js';
import { findPasst } from '../net/passt.js';

const MINUTE = 60_000;
const material = guestMaterial();
const token = `vireo-${process.pid}-${Date.now()}`;

const server = createServer((_request, response) => response.end(`hello from the host ${token}\n`));
after(() => server.close());

function fetchText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, (response) => {
      let body = '';
      response.on('data', (chunk) => {
        body += chunk;
      });
      response.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** A name the host's DNS (not /etc/hosts) resolves, with its addresses; undefined when none does. */
async function resolvableName(): Promise<{ name: string; addresses: string[] } | undefined> {
  for (const name of [hostname(), 'deb.debian.org']) {
    try {
      return { name, addresses: await resolve4(name) };
    } catch {}
  }
  return undefined;
}

describe('networking in a Linux guest', { skip: slowBootSkipReason() || materialSkipReason() }, () => {
  bootTest(
    'DHCP from passt, DNS, HTTP to the host loopback through the NAT, and a port forward into the guest',
    async (t) => {
      const userspace = guestUserspaceSkipReason();
      if (userspace) return t.skip(userspace);
      if (!findPasst()) return t.skip('passt is not installed (apt install passt)');
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const serverPort = (server.address() as AddressInfo).port;
      const forwardPort = await freePort();
      const vm = startVireo([
        'run',
        '--kernel',
        material!.smallKernel.vmlinux,
        '--initrd',
        material!.initramfs,
        '--memory',
        '256M',
        '--append',
        'console=ttyS0 ip=dhcp panic=-1',
        '--net',
        'user',
        '--forward',
        `tcp:${forwardPort}:8080`,
      ]);
      try {
        const leased = /IP-Config: Complete:[\s\S]*?ipaddr=([\d.]+),.*gw=([\d.]+)/;
        const [, address, gateway] = leased.exec(await vm.waitFor(leased, 20 * MINUTE))!;
        const hostAddresses = Object.values(networkInterfaces())
          .flat()
          .filter((a) => a?.family === 'IPv4' && !a.internal)
          .map((a) => a!.address);
        assert.ok(hostAddresses.includes(address!), `passt leased the host's own address (${address})`);
        await vm.waitFor(SHELL_PROMPT, 5 * MINUTE);

        // The gateway's address is the host itself, as passt maps it: this reaches 127.0.0.1.
        vm.type(`wget -q -O - http://${gateway}:${serverPort}/; echo fetched-$?\n`);
        await vm.waitFor(new RegExp(`hello from the host ${token}\\s+fetched-0`), 2 * MINUTE);

        const dns = await resolvableName();
        if (dns) {
          const mark = vm.output().length;
          vm.type(`nslookup ${dns.name}; echo looked-up-$?\n`);
          await vm.waitFor(/looked-up-\d/, 2 * MINUTE);
          const answer = /([\s\S]*)looked-up-(\d+)/.exec(vm.output().slice(mark))!;
          assert.equal(answer[2], '0', answer[1]);
          assert.ok(
            dns.addresses.some((a) => answer[1]!.includes(a)),
            `the guest resolved ${dns.name} as the host does (${dns.addresses.join(', ')})`,
          );
        } else {
          t.diagnostic('the host resolves no name by DNS here: the guest DNS check was left out');
        }

        vm.type(
          `mkdir -p /www && echo guest-page-${token} > /www/index.html && httpd -p 8080 -h /www && echo httpd-up\n`,
        );
        await vm.waitFor(/httpd-up/, 2 * MINUTE);
        const page = await fetchText(`http://127.0.0.1:${forwardPort}/`);
        assert.equal(page.trim(), `guest-page-${token}`);

        vm.type('poweroff -f\n');
        assert.equal((await vm.exited).code, 0);
      } finally {
        await vm.stop();
      }
    },
    { timeout: 30 * MINUTE },
  );
});
