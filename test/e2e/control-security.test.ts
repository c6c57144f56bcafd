/**
 * The control API against hostile requests over real loopback HTTP: foreign and rebound Host headers,
 * cross-origin Origin, content types a web page can send without a preflight, missing or wrong
 * tokens. Each refused mutation is checked to have changed nothing.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readControlToken } from '../../src/cli/serve.js';
import { activate } from '../../src/client/client.js';
import { SeededRandom } from '../../src/host/random.js';
import { CONTROL_MAX_CONNECTIONS } from '../../src/server/control-api.js';
import { checkControlRequest, isLoopbackAddress } from '../../src/server/control-guard.js';
import { dashboardRoute } from '../../src/server/dashboard/index.js';
import { type HostRuntime, startHostRuntime } from '../../src/server/runtime.js';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers of several shapes
  json: any;
}

/** A raw request: node:http lets a test send any Host, unlike fetch. */
function request(
  port: number,
  method: string,
  p: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path: p, headers: { connection: 'close', ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown = null;
          try {
            json = JSON.parse(text);
          } catch {
            json = text;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const JSON_TYPE = { 'content-type': 'application/json' };
const TOKEN = 'lab-token-0123456789abcdef';

let open: HostRuntime;
let guarded: HostRuntime;
let port: number;
let guardedPort: number;
const dir = mkdtempSync(path.join(tmpdir(), 'kmslab-control-sec-'));

async function state(rt: HostRuntime) {
  return {
    time: rt.clock.now(),
    history: rt.store.historyCount(),
    pools: rt.service.status().pools.map((p) => p.count),
  };
}

beforeAll(async () => {
  const base = {
    clock: 'manual' as const,
    store: 'memory',
    seed: 7,
    listen: [{ host: '127.0.0.1', port: 0 }],
    control: { host: '127.0.0.1', port: 0 },
  };
  open = await startHostRuntime({ ...base, controlHostAllow: ['kms-lab.example'] });
  guarded = await startHostRuntime({ ...base, controlToken: TOKEN, extraRoutes: [dashboardRoute()] });
  port = open.control!.address.port;
  guardedPort = guarded.control!.address.port;
  const kms = open.addresses[0]!;
  const [r] = await activate({
    host: kms.host,
    port: kms.port,
    product: 'Windows 10/11 Enterprise',
    random: new SeededRandom('sec'),
    clock: open.clock,
    timeoutMs: 5000,
  });
  expect(r?.error).toBeUndefined();
});

afterAll(async () => {
  await open?.close();
  await guarded?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('Host header (DNS rebinding)', () => {
  it('answers its own names: 127.0.0.1, [::1], localhost at its port, and allowed names', async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`]) {
      expect((await request(port, 'GET', '/status', { host })).status, host).toBe(200);
    }
    expect((await request(port, 'GET', '/status', { host: 'kms-lab.example' })).status).toBe(200);
    expect((await request(port, 'GET', '/status', { host: 'kms-lab.example:8443' })).status).toBe(200);
  });

  it('refuses a rebound name with 421, reads nothing and changes nothing', async () => {
    const before = await state(open);
    for (const host of [
      `evil.example:${port}`,
      'evil.example',
      `127.0.0.1:${port + 1}`,
      `localhost.evil:${port}`,
    ]) {
      const clients = await request(port, 'GET', '/clients', { host });
      expect(clients.status, host).toBe(421);
      expect(JSON.stringify(clients.json)).not.toContain('cmid');
      expect(clients.json.error).toContain('not this control API');
      const reset = await request(port, 'POST', '/reset', { host, ...JSON_TYPE }, '{}');
      expect(reset.status, host).toBe(421);
    }
    expect(await state(open)).toEqual(before);
    expect(before.history).toBe(1);
  });

  it('refuses a request without a Host', async () => {
    const res = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/status', setHost: false }, (r) => {
        r.resume();
        resolve(r.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    // Node's HTTP server answers 400 itself (requireHostHeader) before the guard would say 421.
    expect(res).toBe(400);
  });
});

describe('mutations a web page could send without a preflight', () => {
  it('refuses text/plain, form and missing content types with 415 and changes nothing', async () => {
    const before = await state(open);
    const host = `127.0.0.1:${port}`;
    const attempts: [string, Record<string, string>, string][] = [
      ['/clock/advance', { 'content-type': 'text/plain' }, '{"days":400}'],
      ['/clock/advance', { 'content-type': 'application/x-www-form-urlencoded' }, '{"days":400}'],
      ['/clock/advance', { 'content-type': 'multipart/form-data; boundary=x' }, '{"days":400}'],
      ['/clock/advance', {}, '{"days":400}'],
      ['/clock/set', { 'content-type': 'text/plain;charset=UTF-8' }, '{"time":"2030-01-01T00:00:00Z"}'],
      ['/reset', { 'content-type': 'text/plain' }, '{}'],
      ['/reset', {}, ''],
    ];
    for (const [p, headers, body] of attempts) {
      const r = await request(port, 'POST', p, { host, ...headers }, body);
      expect(r.status, `${p} ${JSON.stringify(headers)}`).toBe(415);
      expect(r.json.error).toContain('Content-Type: application/json');
    }
    expect(await state(open)).toEqual(before);
  });

  it('refuses a cross-origin Origin or Sec-Fetch-Site even with application/json', async () => {
    const before = await state(open);
    const host = `127.0.0.1:${port}`;
    const extras: Record<string, string>[] = [
      { origin: 'http://evil.example' },
      { origin: 'null' },
      { origin: `http://127.0.0.1:${port + 1}` },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
    ];
    for (const extra of extras) {
      const r = await request(
        port,
        'POST',
        '/clock/advance',
        { host, ...JSON_TYPE, ...extra },
        '{"days":400}',
      );
      expect(r.status, JSON.stringify(extra)).toBe(403);
    }
    expect(await state(open)).toEqual(before);
    // The dashboard's own requests (same origin) pass.
    const ok = await request(
      port,
      'POST',
      '/clock/advance',
      { host, ...JSON_TYPE, origin: `http://${host}`, 'sec-fetch-site': 'same-origin' },
      '{"ms":1}',
    );
    expect(ok.status).toBe(200);
    expect(open.clock.now()).toBe(before.time + 1);
  });

  it('grants no CORS preflight and sends no CORS headers', async () => {
    const host = `127.0.0.1:${port}`;
    const pre = await request(port, 'OPTIONS', '/reset', {
      host,
      origin: 'http://evil.example',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type',
    });
    expect(pre.status).toBe(405);
    for (const r of [pre, await request(port, 'GET', '/status', { host, origin: 'http://evil.example' })]) {
      expect(Object.keys(r.headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
    }
  });

  it('puts nosniff, no-store and CORP same-origin on every JSON answer, errors included', async () => {
    const host = `127.0.0.1:${port}`;
    for (const r of [
      await request(port, 'GET', '/status', { host }),
      await request(port, 'GET', '/nothing', { host }),
      await request(port, 'GET', '/status', { host: 'evil.example' }),
      await request(port, 'POST', '/reset', { host }),
    ]) {
      expect(r.headers['content-type']).toMatch(/^application\/json/);
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['cache-control']).toBe('no-store');
      expect(r.headers['cross-origin-resource-policy']).toBe('same-origin');
    }
  });
});

describe('query strings and bodies (zod)', () => {
  const host = () => ({ host: `127.0.0.1:${port}` });
  it('answers 400 naming the parameter and the bad value', async () => {
    const cases: [string, RegExp][] = [
      ['/history?wouldActivate=yes', /wouldActivate="yes": not true, false, 1 or 0/],
      ['/history?cmid=xyz', /cmid="xyz": not a GUID/],
      ['/history?applicationId=1', /applicationId="1": not a GUID/],
      ['/history?limit=-1', /limit="-1": not a non-negative integer/],
      ['/history?since=abc', /since="abc"/],
      ['/history?from=yesterday', /from="yesterday": not a time/],
      ['/history?colour=red', /unknown "colour"/],
      ['/history?limit=1&limit=2', /"limit" given twice/],
      ['/events?follow=false&cmid=xyz', /cmid="xyz"/],
      ['/events?follow=maybe', /follow="maybe"/],
      ['/status?verbose=1', /unknown "verbose"/],
      ['/clients?x=1', /unknown "x"/],
    ];
    for (const [p, want] of cases) {
      const r = await request(port, 'GET', p, host());
      expect(r.status, p).toBe(400);
      expect(r.json.error, p).toMatch(want);
    }
    const good = await request(port, 'GET', '/history?wouldActivate=false&limit=5&cmid=', host());
    expect(good.status).toBe(400); // an empty cmid is not a GUID either
    const ok = await request(port, 'GET', '/history?wouldActivate=false&limit=5', host());
    expect(ok.status).toBe(200);
    expect(ok.json.records).toHaveLength(1);
  });

  it('validates bodies: unknown keys and wrong types are 400, the state unchanged', async () => {
    const before = await state(open);
    const cases: [string, string, RegExp][] = [
      ['/reset', '{"all":true}', /unknown "all"/],
      ['/reset', '[]', /body/],
      ['/clock/set', '{"time":1}', /body time=1/],
      ['/clock/set', '{"time":"2030-01-01T00:00:00Z","x":1}', /unknown "x"/],
      ['/clock/advance', '{"day":31}', /unknown "day"/],
      ['/clock/advance', '{"days":"31"}', /days/],
      ['/clock/advance', 'not json', /not valid JSON/],
    ];
    for (const [p, body, want] of cases) {
      const r = await request(port, 'POST', p, { ...host(), ...JSON_TYPE }, body);
      expect(r.status, `${p} ${body}`).toBe(400);
      expect(r.json.error, `${p} ${body}`).toMatch(want);
    }
    expect(await state(open)).toEqual(before);
    const big = await request(
      port,
      'POST',
      '/clock/advance',
      { ...host(), ...JSON_TYPE },
      `"${'1'.repeat(1 << 21)}"`,
    );
    expect(big.status).toBe(413);
  });
});

describe('token', () => {
  const host = () => ({ host: `127.0.0.1:${guardedPort}` });
  const auth = { authorization: `Bearer ${TOKEN}` };

  it('needs Authorization: Bearer on every data and control route', async () => {
    for (const p of ['/status', '/clients', '/history', '/events?follow=false', '/healthz', '/metrics']) {
      expect((await request(guardedPort, 'GET', p, host())).status, p).toBe(401);
      expect(
        (await request(guardedPort, 'GET', p, { ...host(), authorization: 'Bearer wrong' })).status,
        p,
      ).toBe(401);
    }
    const before = await state(guarded);
    const r = await request(guardedPort, 'POST', '/clock/advance', { ...host(), ...JSON_TYPE }, '{"days":1}');
    expect(r.status).toBe(401);
    expect(await state(guarded)).toEqual(before);
    expect((await request(guardedPort, 'GET', '/status', { ...host(), ...auth })).status).toBe(200);
    const moved = await request(
      guardedPort,
      'POST',
      '/clock/advance',
      { ...host(), ...JSON_TYPE, ...auth },
      '{"ms":5}',
    );
    expect(moved.status).toBe(200);
    expect(guarded.clock.now()).toBe(before.time + 5);
  });

  it('serves the dashboard page and its static files without the token (they hold no data)', async () => {
    for (const p of ['/', '/dashboard/app.js', '/dashboard/app.css']) {
      expect((await request(guardedPort, 'GET', p, host())).status, p).toBe(200);
    }
    // ...but not to a rebound Host.
    expect((await request(guardedPort, 'GET', '/', { host: 'evil.example' })).status).toBe(421);
  });

  it('refuses a control address that is not loopback without a token', async () => {
    await expect(
      startHostRuntime({
        store: 'memory',
        listen: [{ host: '127.0.0.1', port: 0 }],
        control: { host: '0.0.0.0', port: 0 },
      }),
    ).rejects.toThrow(/control API on 0\.0\.0\.0:0 is not loopback.*--control-token/);
  });

  it('reads --control-token FILE or KMSLAB_CONTROL_TOKEN, and refuses a short one', () => {
    const f = path.join(dir, 'token');
    writeFileSync(f, `${TOKEN}\n`, { mode: 0o600 });
    expect(readControlToken(f, {})).toBe(TOKEN);
    expect(readControlToken(undefined, { KMSLAB_CONTROL_TOKEN: TOKEN })).toBe(TOKEN);
    expect(readControlToken(undefined, {})).toBeNull();
    writeFileSync(f, 'short');
    expect(() => readControlToken(f, {})).toThrow(/at least 16 printable characters/);
    writeFileSync(f, 'x'.repeat(5000));
    expect(() => readControlToken(f, {})).toThrow(/larger than the 4 KiB limit for a token file/);
  });
});

describe('connections', () => {
  /** A keep-alive connection that got one answer (so the server has accepted and counted it). */
  function answered(p: number): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const s = net.connect(p, '127.0.0.1', () =>
        s.write(`GET /status HTTP/1.1\r\nHost: 127.0.0.1:${p}\r\n\r\n`),
      );
      s.once('data', () => resolve(s));
      s.once('error', reject);
    });
  }

  it(`holds at most ${CONTROL_MAX_CONNECTIONS} connections; the next is closed without a byte, the held ones still work`, async () => {
    const rt = await startHostRuntime({
      store: 'memory',
      listen: [{ host: '127.0.0.1', port: 0 }],
      control: { host: '127.0.0.1', port: 0 },
    });
    const p = rt.control!.address.port;
    const held: net.Socket[] = [];
    try {
      for (let i = 0; i < CONTROL_MAX_CONNECTIONS; i++) held.push(await answered(p));
      const extra = net.connect(p, '127.0.0.1');
      let bytes = 0;
      extra.on('data', (d: Buffer) => {
        bytes += d.length;
      });
      extra.on('error', () => {});
      await new Promise((r) => extra.once('close', r));
      expect(bytes).toBe(0);
      // A held connection is still served.
      const again = new Promise<string>((r) => held[0]!.once('data', (d: Buffer) => r(d.toString('latin1'))));
      held[0]!.write(`GET /status HTTP/1.1\r\nHost: 127.0.0.1:${p}\r\n\r\n`);
      expect(await again).toMatch(/^HTTP\/1\.1 200/);
    } finally {
      for (const s of held) s.destroy();
      await rt.close();
    }
  });
});

describe('checkControlRequest (sans-io)', () => {
  it('lets a same-origin JSON mutation through and names what it refuses', () => {
    const o = { port: 8688 };
    const h = (headers: Record<string, string>) => ({
      method: 'POST',
      headers: { host: '127.0.0.1:8688', ...headers },
    });
    expect(checkControlRequest(h(JSON_TYPE), '/reset', o)).toBeNull();
    expect(
      checkControlRequest(h({ 'content-type': 'application/json; charset=utf-8' }), '/reset', o),
    ).toBeNull();
    expect(checkControlRequest(h({ 'content-type': 'application/jsonx' }), '/reset', o)?.status).toBe(415);
    expect(
      checkControlRequest({ method: 'GET', headers: { host: '10.1.2.3:8688' } }, '/status', o),
    ).toBeNull();
    expect(checkControlRequest({ method: 'GET', headers: { host: 'a.b:8688' } }, '/status', o)?.status).toBe(
      421,
    );
  });

  it('knows which control addresses are loopback (the rest need a token)', () => {
    for (const a of ['127.0.0.1', '127.8.9.10', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1'])
      expect(isLoopbackAddress(a), a).toBe(true);
    for (const a of ['0.0.0.0', '::', '[::]', '10.0.0.1', '::ffff:10.0.0.1', '128.0.0.1', 'kms.example'])
      expect(isLoopbackAddress(a), a).toBe(false);
  });
});
