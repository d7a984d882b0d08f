// Browser mode over real sockets: the HTTP server with a renderer folder on disk, and the API as a
// WebSocket into a real daemon process (VM hosts run the fake machine, so no KVM is needed).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { VIREO_BIN } from '../../../tests/support/vireo-process.js';
import { ErrorCode, MAX_MESSAGE_BYTES } from '../api/schema.js';
import { ApiServer, type Handlers } from '../api/server.js';
import { startTestDaemon, type TestDaemon } from '../daemon/test-daemon.js';
import { startUiServer, type UiServer } from './server.js';

interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(port: number, path: string, headers: Record<string, string> = {}, method = 'GET') {
  return new Promise<HttpAnswer>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Opens a WebSocket; resolves with it, or with the HTTP status the server refused it with. */
function openWebSocket(
  url: string,
  options: { origin?: string; headers?: Record<string, string> } = {},
): Promise<WebSocket | number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { ...options, perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('error', reject);
  });
}

/** JSON-RPC over a WebSocket, the way the renderer speaks it. */
class WsRpc {
  private nextId = 1;
  readonly notifications: { method: string; params: Record<string, unknown> }[] = [];
  private readonly replies = new Map<number | null, (reply: Record<string, unknown>) => void>();
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const message = JSON.parse(data.toString());
      if (typeof message.method === 'string') this.notifications.push(message);
      else this.replies.get(message.id)?.(message);
    });
    this.closed = new Promise((resolve) =>
      ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
  }

  /** Sends raw text and waits for the reply with `id`. */
  exchange(text: string, id: number | null): Promise<Record<string, unknown>> {
    return new Promise((resolve) => {
      this.replies.set(id, resolve);
      this.ws.send(text);
    });
  }

  async call(method: string, params: unknown = {}): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    const reply = await this.exchange(JSON.stringify({ jsonrpc: '2.0', id, method, params }), id);
    if (reply.error) throw new Error(`${method}: ${JSON.stringify(reply.error)}`);
    return reply.result as Record<string, unknown>;
  }

  async until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

function tokenOf(url: string): string {
  return new URL(url).searchParams.get('token') ?? '';
}

describe('the UI server: token, static files, path traversal', () => {
  let root: string;
  let ui: UiServer;
  let port: number;
  let token: string;
  // Only what these tests call: the dispatch itself is tested with the daemon below.
  const list: Partial<Handlers> = { 'vm.list': () => ({ vms: [], invalid: [] }) };
  const api = new ApiServer(list as Handlers);

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'vireo-ui-'));
    const dist = join(root, 'dist');
    mkdirSync(join(dist, 'assets', 'sub'), { recursive: true });
    writeFileSync(join(dist, 'index.html'), '<!doctype html><title>Vireo index</title>');
    writeFileSync(join(dist, 'assets', 'app.js'), 'console.log("app")');
    writeFileSync(join(dist, 'assets', 'app.css'), 'body{}');
    writeFileSync(join(dist, 'assets', 'icon.svg'), '<svg/>');
    writeFileSync(join(dist, '.secret'), 'hidden file');
    writeFileSync(join(root, 'outside.txt'), 'OUTSIDE THE ROOT');
    symlinkSync(join(root, 'outside.txt'), join(dist, 'assets', 'link.txt'));
    ui = await startUiServer({ api, rendererDir: dist });
    port = ui.port;
    token = tokenOf(ui.url);
  });
  after(async () => {
    await ui?.close();
    rmSync(root, { recursive: true, force: true });
  });

  test('the address is 127.0.0.1 on the server port with a token', () => {
    assert.match(ui.url, new RegExp(`^http://127\\.0\\.0\\.1:${port}/\\?token=[A-Za-z0-9_-]{43}$`));
  });

  test('without the token, with a wrong one, or under another host name nothing is served', async () => {
    for (const path of ['/', '/index.html', '/assets/app.js', `/?token=${token.slice(1)}x`, '/?token=']) {
      const answer = await get(port, path);
      assert.equal(answer.status, 403, path);
      assert.doesNotMatch(answer.body, /Vireo index|console\.log/, path);
    }
    const wrongCookie = await get(port, '/', { Cookie: `vireo-token-${port}=${'x'.repeat(43)}` });
    assert.equal(wrongCookie.status, 403);
    const otherPortCookie = await get(port, '/', { Cookie: `vireo-token-${port + 1}=${token}` });
    assert.equal(otherPortCookie.status, 403);
    // A DNS-rebinding page reaches us under its own host name: refused even with the token.
    const rebound = await get(port, `/?token=${token}`, { Host: `attacker.example:${port}` });
    assert.equal(rebound.status, 403);
    assert.doesNotMatch(rebound.body, /Vireo index/);
  });

  test('the token in the URL serves index.html and sets an HttpOnly SameSite=Strict cookie', async () => {
    const answer = await get(port, `/?token=${token}`);
    assert.equal(answer.status, 200);
    assert.equal(answer.body, '<!doctype html><title>Vireo index</title>');
    assert.equal(answer.headers['content-type'], 'text/html; charset=utf-8');
    const cookie = String(answer.headers['set-cookie']);
    assert.match(cookie, new RegExp(`^vireo-token-${port}=${token};`));
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    const csp = String(answer.headers['content-security-policy']);
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, new RegExp(`connect-src ws://127\\.0\\.0\\.1:${port}/api`));
    assert.equal(answer.headers['x-content-type-options'], 'nosniff');
    assert.equal(answer.headers['referrer-policy'], 'no-referrer');
  });

  test('the cookie alone serves assets with their media types', async () => {
    const cookie = { Cookie: `vireo-token-${port}=${token}` };
    const cases: [string, string, string][] = [
      ['/assets/app.js', 'text/javascript; charset=utf-8', 'console.log("app")'],
      ['/assets/app.css', 'text/css; charset=utf-8', 'body{}'],
      ['/assets/icon.svg', 'image/svg+xml', '<svg/>'],
    ];
    for (const [path, type, body] of cases) {
      const answer = await get(port, path, cookie);
      assert.equal(answer.status, 200, path);
      assert.equal(answer.headers['content-type'], type, path);
      assert.equal(answer.body, body, path);
      assert.equal(answer.headers['content-length'], String(body.length));
    }
    const head = await get(port, '/assets/app.js', cookie, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal((await get(port, '/assets/app.js', cookie, 'POST')).status, 405);
    assert.equal((await get(port, '/missing.js', cookie)).status, 404);
    // Opened via localhost too: the policy names the origin the browser is on.
    const local = await get(port, '/', { ...cookie, Host: `localhost:${port}` });
    assert.equal(local.status, 200);
    assert.match(String(local.headers['content-security-policy']), new RegExp(`ws://localhost:${port}/api`));
  });

  test('no directory listings, no hidden files, no way out of the folder', async () => {
    const cookie = { Cookie: `vireo-token-${port}=${token}` };
    for (const path of [
      '/assets',
      '/assets/',
      '/assets/sub/',
      '/.secret',
      '/../outside.txt',
      '/assets/../../outside.txt',
      '/%2e%2e/outside.txt',
      '/assets/%2e%2e%2f%2e%2e%2foutside.txt',
      '/assets/..%5c..%5coutside.txt',
      '/assets/link.txt',
      `/${'%2e%2e/'.repeat(10)}etc/passwd`,
    ]) {
      const answer = await get(port, path, cookie);
      assert.equal(answer.status, 404, path);
      assert.doesNotMatch(answer.body, /OUTSIDE THE ROOT|hidden file|root:x:0|app\.js/, path);
    }
  });

  test('the WebSocket is refused without the token, from another origin or on another path', async () => {
    const origin = `http://127.0.0.1:${port}`;
    const base = `ws://127.0.0.1:${port}`;
    assert.equal(await openWebSocket(`${base}/api`, { origin }), 403, 'no token');
    assert.equal(await openWebSocket(`${base}/api?token=${token.slice(1)}x`, { origin }), 403, 'wrong token');
    assert.equal(await openWebSocket(`${base}/api?token=${token}`), 403, 'no origin');
    assert.equal(
      await openWebSocket(`${base}/api?token=${token}`, { origin: 'http://attacker.example' }),
      403,
      'foreign origin',
    );
    assert.equal(await openWebSocket(`${base}/other?token=${token}`, { origin }), 404, 'path');
    const viaCookie = await openWebSocket(`${base}/api`, {
      origin,
      headers: { Cookie: `vireo-token-${port}=${token}` },
    });
    assert.ok(viaCookie instanceof WebSocket, 'the cookie is enough');
    const rpc = new WsRpc(viaCookie);
    assert.deepEqual(await rpc.call('vm.list'), { vms: [], invalid: [] });
    viaCookie.close();
  });

  test('a missing renderer build is a clear error', async () => {
    await assert.rejects(
      startUiServer({ api, rendererDir: join(root, 'nothing-here') }),
      /the renderer is not built .*index\.html.*npm run build/,
    );
  });
});

describe('the API over the WebSocket, into a real daemon', { timeout: 120_000 }, () => {
  let daemon: TestDaemon;
  let url: string;
  let rpc: WsRpc;

  const connect = async () => {
    const address = new URL(url);
    const ws = await openWebSocket(`ws://${address.host}/api?token=${tokenOf(url)}`, {
      origin: `http://${address.host}`,
    });
    assert.ok(ws instanceof WebSocket, `refused with ${ws}`);
    return new WsRpc(ws);
  };

  before(async () => {
    daemon = await startTestDaemon({ fakeMachine: true });
    writeFileSync(join(daemon.root, 'kernel'), 'fake');
    const client = await daemon.client();
    url = (await client.call('ui.serve', {})).url;
    rpc = await connect();
  });
  after(async () => {
    await daemon?.cleanup();
  });

  test('ui.serve answers the same address while the daemon runs; the page is served', async () => {
    const client = await daemon.client();
    assert.equal((await client.call('ui.serve', {})).url, url);
    const address = new URL(url);
    const page = await get(Number(address.port), `/?token=${tokenOf(url)}`);
    assert.equal(page.status, 200);
    assert.match(page.body, /<div id="root">/);
  });

  test('vm.list, vm.create and events, console output and input', async () => {
    assert.deepEqual(await rpc.call('vm.list'), { vms: [], invalid: [] });
    await rpc.call('events.subscribe');
    const created = await rpc.call('vm.create', {
      name: 'web',
      memoryBytes: 64 * 1024 * 1024,
      boot: { kind: 'kernel', kernel: join(daemon.root, 'kernel') },
    });
    assert.equal((created.spec as { id: string }).id, 'web');
    const listed = (await rpc.call('vm.list')).vms as { spec: { id: string } }[];
    assert.deepEqual(
      listed.map((vm) => vm.spec.id),
      ['web'],
    );
    const events = () => rpc.notifications.filter((n) => n.method === 'event').map((n) => n.params);
    await rpc.until('the created event', () => events().some((e) => e.kind === 'created' && e.vm === 'web'));

    await rpc.call('console.attach', { vm: 'web' });
    await rpc.call('vm.start', { vm: 'web' });
    await rpc.until('the running state event', () =>
      events().some((e) => e.kind === 'state' && (e.status as { state: string }).state === 'running'),
    );
    const consoleText = () =>
      rpc.notifications
        .filter((n) => n.method === 'console.output' && n.params.vm === 'web')
        .map((n) => Buffer.from(String(n.params.data), 'base64').toString())
        .join('');
    await rpc.until('the guest banner', () => consoleText().includes('fake# '));
    await rpc.call('console.write', { vm: 'web', data: Buffer.from('hello over ws\r').toString('base64') });
    await rpc.until('the echo', () => consoleText().includes('hello over ws'));
    await rpc.call('vm.stop', { vm: 'web', force: true });
    await rpc.until('the stopped state event', () =>
      events().some((e) => e.kind === 'state' && (e.status as { state: string }).state === 'stopped'),
    );
  });

  test('schema errors and bad JSON get error replies; the connection stays', async () => {
    const invalid = await rpc.exchange(
      JSON.stringify({ jsonrpc: '2.0', id: 900, method: 'vm.create', params: { name: '' } }),
      900,
    );
    assert.equal((invalid.error as { code: number }).code, ErrorCode.invalidParams);
    const unknown = await rpc.exchange(
      JSON.stringify({ jsonrpc: '2.0', id: 901, method: 'vm.explode' }),
      901,
    );
    assert.equal((unknown.error as { code: number }).code, ErrorCode.methodNotFound);
    const garbage = await rpc.exchange('{"jsonrpc": "2.0", "id": ', null);
    assert.equal((garbage.error as { code: number }).code, ErrorCode.parseError);
    const batch = await rpc.exchange('[]', null);
    assert.equal((batch.error as { code: number }).code, ErrorCode.invalidRequest);
    assert.ok(Array.isArray((await rpc.call('vm.list')).vms), 'still serving');
  });

  test('a binary frame or a message past the size limit closes that connection only', async () => {
    const binary = await connect();
    binary.ws.send(Buffer.from('{"jsonrpc":"2.0","id":1,"method":"vm.list"}'));
    assert.equal((await binary.closed).code, 1003);

    const large = await connect();
    large.ws.send(`"${'x'.repeat(MAX_MESSAGE_BYTES)}"`);
    assert.equal((await large.closed).code, 1009);

    assert.ok(Array.isArray((await rpc.call('vm.list')).vms), 'others are still served');
  });

  test('vireo ui --no-open --json prints the address; without --no-open it runs the opener', () => {
    const json = spawnSync(process.execPath, [VIREO_BIN, 'ui', '--no-open', '--json'], {
      env: daemon.env,
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(json.status, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), { url });

    // A stand-in xdg-open on PATH records what it was asked to open.
    const bin = join(daemon.root, 'bin');
    mkdirSync(bin, { recursive: true });
    const opened = join(daemon.root, 'opened.txt');
    writeFileSync(join(bin, 'xdg-open'), `#!/bin/sh\nprintf '%s' "$1" > '${opened}'\n`);
    chmodSync(join(bin, 'xdg-open'), 0o755);
    const run = spawnSync(process.execPath, [VIREO_BIN, 'ui'], {
      env: { ...daemon.env, PATH: `${bin}:${process.env.PATH}` },
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, `Vireo is at ${url}\n`);
    const deadline = Date.now() + 10_000;
    let text = '';
    while (Date.now() < deadline) {
      try {
        text = readFileSync(opened, 'utf8');
        if (text) break;
      } catch {
        // Not written yet.
      }
      spawnSync('sleep', ['0.05']);
    }
    assert.equal(text, url);
  });
});
