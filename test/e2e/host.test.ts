/**
 * The host end to end over loopback (ephemeral ports): our raw client against startHostRuntime, and the
 * control API over HTTP.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DAY, type ManualClock } from '../../src/host/clock.js';
import { HResult } from '../../src/kms/hresult.js';
import type { KmsVersion, NdrSyntax } from '../../src/kms/messages.js';
import { CONTEXT_RESULT } from '../../src/rpc/constants.js';
import type { BindAckBody } from '../../src/rpc/pdu.js';
import { type HostRuntime, type HostRuntimeOptions, startHostRuntime } from '../../src/server/runtime.js';
import { activateOnce, RawKmsClient } from '../helpers/raw-client.js';

const T0 = Date.UTC(2026, 0, 1);
const WINDOWS = '55c92734-d682-4d71-983e-d6ec3f16059f';

const runtimes: HostRuntime[] = [];
const clients: RawKmsClient[] = [];
const dir = mkdtempSync(path.join(tmpdir(), 'kmslab-e2e-host-'));

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(runtimes.splice(0).map((r) => r.close()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function host(o: HostRuntimeOptions = {}): Promise<HostRuntime> {
  const rt = await startHostRuntime({
    listen: [{ host: '127.0.0.1', port: 0 }],
    store: 'memory',
    clock: 'manual',
    seed: 'e2e-host',
    control: { host: '127.0.0.1', port: 0 },
    ...o,
  });
  runtimes.push(rt);
  return rt;
}

async function client(
  rt: HostRuntime,
  o: Parameters<typeof RawKmsClient.connect>[1] = {},
): Promise<RawKmsClient> {
  const c = await RawKmsClient.connect(rt.addresses[0]!, { nowMs: rt.clock.now(), ...o });
  clients.push(c);
  return c;
}

interface ApiAnswer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: JSON from the control API
  json: any;
  text: string;
  type: string | null;
}

async function api(rt: HostRuntime, method: string, p: string, body?: unknown): Promise<ApiAnswer> {
  const { host: h, port } = rt.control!.address;
  const res = await fetch(`http://${h}:${port}${p}`, {
    method,
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    headers: { 'content-type': 'application/json', connection: 'close' },
  });
  const text = await res.text();
  const type = res.headers.get('content-type');
  let json: unknown = null;
  if (type?.startsWith('application/json')) json = JSON.parse(text);
  return { status: res.status, json, text, type };
}

const windowsCount = async (rt: HostRuntime) =>
  (await api(rt, 'GET', '/status')).json.pools.find(
    (p: { applicationId: string }) => p.applicationId === WINDOWS,
  ).count as number;

describe('activation over loopback', () => {
  it('activates in V4, V5 and V6, NDR32 and NDR64, with and without BTFN, several requests per connection', async () => {
    const rt = await host();
    let expected = 0;
    for (const version of [4, 5, 6] as KmsVersion[]) {
      for (const ndr of ['ndr32', 'ndr64'] as NdrSyntax[]) {
        for (const btfn of [true, false]) {
          // An NDR64 host accepts NDR32 only when no NDR64 is offered (spec a.4 rule 3).
          const c = await client(rt, { ndr64: ndr === 'ndr64', btfn, seed: `${version}/${ndr}/${btfn}` });
          const results = (c.bindAck as unknown as BindAckBody).results.map((r) => r.result);
          expect(results).toEqual([
            ...(ndr === 'ndr64'
              ? [CONTEXT_RESULT.PROVIDER_REJECTION, CONTEXT_RESULT.ACCEPTANCE]
              : [CONTEXT_RESULT.ACCEPTANCE]),
            ...(btfn ? [CONTEXT_RESULT.NEGOTIATE_ACK] : []),
          ]);
          for (let i = 0; i < 3; i++) {
            const a = await c.activate({ version }, ndr);
            expected += 1;
            expect(a.hresult).toBe(HResult.S_OK);
            expect(a.ndr).toBe(ndr);
            expect(a.body!.majorVersion).toBe(version);
            expect(a.body!.currentCount).toBe(expected);
            expect(a.body!.epid).toBe(rt.service.state.identity.epids['Windows']);
            if (version === 6) expect(a.hwid).toEqual(rt.service.state.identity.hwid);
          }
          c.close();
        }
      }
    }
    expect(await windowsCount(rt)).toBe(36);
  });

  it('activates in NDR32 on a host that does not use NDR64, even when NDR64 is offered (spec a.4 rule 4)', async () => {
    const rt = await host({ profile: { ndr64: false, btfn: true } });
    const c = await client(rt);
    expect([...c.contexts.values()]).toEqual(['ndr32']);
    for (const version of [4, 5, 6] as KmsVersion[]) {
      const a = await c.activate({ version });
      expect(a.hresult).toBe(HResult.S_OK);
      expect(a.ndr).toBe('ndr32');
    }
  });

  it('26 distinct CMIDs see counts 1…26 in the Windows pool (capacity 50); the same CMID counts once', async () => {
    const rt = await host();
    const c = await client(rt);
    const counts: number[] = [];
    const cmids: string[] = [];
    for (let i = 0; i < 26; i++) {
      const a = await c.activate({ product: 'win10Pro' });
      counts.push(a.body!.currentCount);
      cmids.push(a.request.cmid);
    }
    expect(counts).toEqual(Array.from({ length: 26 }, (_, i) => i + 1));
    // The same CMID again, on this connection and on a new one: still 26.
    expect((await c.activate({ cmid: cmids[0]! })).body!.currentCount).toBe(26);
    expect(
      (await activateOnce(rt.addresses[0]!, { cmid: cmids[7]! }, { nowMs: T0 })).body!.currentCount,
    ).toBe(26);
    const st = (await api(rt, 'GET', '/status')).json;
    const win = st.pools.find((p: { applicationId: string }) => p.applicationId === WINDOWS);
    expect(win).toMatchObject({ count: 26, capacity: 50 });
    expect(win.thresholds).toEqual([
      { requiredCount: 5, met: true },
      { requiredCount: 25, met: true },
    ]);
    // The history says who would activate: Windows clients need 25 (spec f.4).
    const h = (await api(rt, 'GET', '/history?wouldActivate=true')).json.records;
    expect(h.map((r: { count: number }) => r.count)).toEqual([25, 26, 26, 26]);
    // Office pools are independent (spec f.1).
    expect((await c.activate({ product: 'office2016' })).body!.currentCount).toBe(1);
    expect((await c.activate({ product: 'office2010' })).body!.currentCount).toBe(1);
    expect(await windowsCount(rt)).toBe(26);
  });

  it('a manual-clock advance of 31 days empties the pool (POST /clock/advance)', async () => {
    const rt = await host();
    const c = await client(rt);
    for (let i = 0; i < 5; i++) await c.activate();
    expect(await windowsCount(rt)).toBe(5);
    const r = await api(rt, 'POST', '/clock/advance', { days: 31 });
    expect(r.status).toBe(200);
    expect(r.json.time).toBe(new Date(T0 + 31 * DAY).toISOString());
    expect(await windowsCount(rt)).toBe(0);
    expect((await api(rt, 'GET', '/clients')).json.clients).toEqual([]);
    const fresh = await client(rt, { seed: 'after' });
    expect((await fresh.activate()).body!.currentCount).toBe(1);
  });

  it('decays at exactly 30 days over the control API: still counted at +30 d, gone 1 ms later', async () => {
    const rt = await host();
    await activateOnce(rt.addresses[0]!, {}, { nowMs: T0 });
    expect((await api(rt, 'POST', '/clock/advance', { days: 30 })).status).toBe(200);
    expect(await windowsCount(rt)).toBe(1);
    expect((await api(rt, 'POST', '/clock/advance', { ms: 1 })).status).toBe(200);
    expect(await windowsCount(rt)).toBe(0);
  });

  it('a manual-clock advance of 31 days through service.clock.advance empties the pool too', async () => {
    const rt = await host();
    const c = await client(rt);
    for (let i = 0; i < 3; i++) await c.activate();
    (rt.service.clock as ManualClock).advance(31 * DAY);
    expect(rt.service.countFor(WINDOWS)).toBe(0);
    expect(await windowsCount(rt)).toBe(0);
    expect((await c.activate({}, undefined)).body!.currentCount).toBe(1);
  });
});

describe('control API', () => {
  it('/status, /clients, /history, /events?follow=false, /healthz answer JSON', async () => {
    const rt = await host();
    const c = await client(rt);
    const a1 = await c.activate({ workstation: 'alpha' });
    await c.activate({ workstation: 'beta', product: 'office2016' });

    const st = await api(rt, 'GET', '/status');
    expect(st.status).toBe(200);
    expect(st.type).toMatch(/^application\/json/);
    expect(st.json).toMatchObject({ clock: 'manual', time: new Date(T0).toISOString() });
    expect(st.json.pools.map((p: { count: number }) => p.count)).toEqual([1, 0, 1]);
    expect(st.json.epids).toEqual(rt.service.state.identity.epids);
    expect(st.json.hwid).toBe(Buffer.from(rt.service.state.identity.hwid).toString('hex').toUpperCase());
    expect(st.json.requests.total).toBe(2);

    const cl = (await api(rt, 'GET', '/clients')).json;
    expect(cl.time).toBe(new Date(T0).toISOString());
    expect(cl.clients.map((x: { workstation: string }) => x.workstation).sort()).toEqual(['alpha', 'beta']);
    const alpha = cl.clients.find((x: { cmid: string }) => x.cmid === a1.request.cmid);
    expect(alpha).toMatchObject({
      applicationId: WINDOWS,
      lastSeen: new Date(T0).toISOString(),
      expires: new Date(T0 + 30 * DAY).toISOString(),
    });

    const hist = (await api(rt, 'GET', '/history')).json.records;
    expect(hist).toHaveLength(2);
    expect(hist[0]).toMatchObject({
      seq: 1,
      cmid: a1.request.cmid,
      hresult: '0x00000000',
      count: 1,
      protocol: 6,
    });
    expect(
      (await api(rt, 'GET', `/history?cmid=${a1.request.cmid.toUpperCase()}`)).json.records,
    ).toHaveLength(1);
    expect((await api(rt, 'GET', '/history?limit=1')).json.records).toHaveLength(1);
    expect(
      (await api(rt, 'GET', '/history?since=1')).json.records.map((r: { seq: number }) => r.seq),
    ).toEqual([2]);
    expect((await api(rt, 'GET', '/history?from=nonsense')).status).toBe(400);

    const ev = await api(rt, 'GET', '/events?follow=false');
    expect(ev.status).toBe(200);
    expect(ev.type).toMatch(/ndjson/);
    const lines = ev.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.type, l.seq])).toEqual([
      ['history', 1],
      ['history', 2],
    ]);

    const hz = await api(rt, 'GET', '/healthz');
    expect([200, 503]).toContain(hz.status);
    expect(typeof hz.json).toBe('object');
    expect(hz.json.ok).toBe(hz.status === 200);

    const missing = await api(rt, 'GET', '/nope');
    expect(missing.status).toBe(404);
    expect(missing.json.error).toMatch(/no route/);
  });

  it('/events replays the history, then streams new activations while following', async () => {
    const rt = await host();
    // One record first: the stream's first bytes (and so its headers) go out with the history replay.
    // (With an empty history the headers wait for the first event; see the report.)
    const first = await activateOnce(rt.addresses[0]!, {}, { nowMs: T0 });
    const { host: h, port } = rt.control!.address;
    const ac = new AbortController();
    const res = await fetch(`http://${h}:${port}/events`, { signal: ac.signal });
    expect(res.headers.get('content-type')).toMatch(/ndjson/);
    const reader = res.body!.getReader();
    let text = '';
    const lines = async (n: number) => {
      const deadline = Date.now() + 3000;
      while (text.split('\n').length - 1 < n && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        text += Buffer.from(value).toString('utf8');
      }
      return text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l));
    };
    try {
      expect((await lines(1))[0]).toMatchObject({ type: 'history', seq: 1, cmid: first.request.cmid });
      const second = await activateOnce(rt.addresses[0]!, {}, { nowMs: T0, seed: 'second' });
      expect((await lines(2))[1]).toMatchObject({
        type: 'activation',
        seq: 2,
        cmid: second.request.cmid,
        count: 2,
        decision: 'count-insufficient',
        wouldActivate: false,
      });
    } finally {
      ac.abort();
      await reader.cancel().catch(() => {});
    }
  });

  it('/clock/set moves the manual clock; bad bodies are 400', async () => {
    const rt = await host();
    const r = await api(rt, 'POST', '/clock/set', { time: '2027-03-01T12:00:00Z' });
    expect(r.status).toBe(200);
    expect(r.json.time).toBe('2027-03-01T12:00:00.000Z');
    expect((await api(rt, 'GET', '/status')).json.time).toBe('2027-03-01T12:00:00.000Z');
    expect(rt.clock.now()).toBe(Date.UTC(2027, 2, 1, 12));
    expect((await api(rt, 'POST', '/clock/set', { time: 'yesterday-ish' })).status).toBe(400);
    expect((await api(rt, 'POST', '/clock/set', '{not json')).status).toBe(400);
    expect((await api(rt, 'POST', '/clock/advance', { days: -1 })).status).toBe(400);
    // A typo must not advance by 0 silently.
    expect((await api(rt, 'POST', '/clock/advance', { weeks: 1 })).status).toBe(400);
    expect((await api(rt, 'POST', '/clock/advance', {})).status).toBe(400);
    expect(rt.clock.now()).toBe(Date.UTC(2027, 2, 1, 12));
    expect((await api(rt, 'POST', '/clock/advance', '"2h"')).json.time).toBe('2027-03-01T14:00:00.000Z');
  });

  it('/reset empties pools and history and keeps the identity', async () => {
    const rt = await host();
    const c = await client(rt);
    const a = await c.activate();
    await c.activate();
    const epids = (await api(rt, 'GET', '/status')).json.epids;
    const r = await api(rt, 'POST', '/reset');
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ ok: true, requestCountersReset: false });
    expect(await windowsCount(rt)).toBe(0);
    expect((await api(rt, 'GET', '/history')).json.records).toEqual([]);
    expect((await api(rt, 'GET', '/clients')).json.clients).toEqual([]);
    expect((await api(rt, 'GET', '/status')).json.epids).toEqual(epids);
    // Counting starts again; the history seq restarts at 1; the ePID is the same.
    const b = await c.activate({ cmid: a.request.cmid });
    expect(b.body!.currentCount).toBe(1);
    expect(b.body!.epid).toBe(a.body!.epid);
    expect((await api(rt, 'GET', '/history')).json.records.map((x: { seq: number }) => x.seq)).toEqual([1]);
  });

  it('POST /clock/advance and /clock/set on a system-clock host → 409', async () => {
    const rt = await host({ clock: 'system' });
    const r = await api(rt, 'POST', '/clock/advance', { days: 31 });
    expect(r.status).toBe(409);
    expect(r.json.error).toMatch(/system clock/);
    expect((await api(rt, 'POST', '/clock/set', { time: '2030-01-01T00:00:00Z' })).status).toBe(409);
    expect((await api(rt, 'GET', '/status')).json.clock).toBe('system');
    // Still serving, with the real time in the request.
    expect((await activateOnce(rt.addresses[0]!, {}, { nowMs: Date.now() })).hresult).toBe(HResult.S_OK);
  });
});

describe('restart on the same SQLite file', () => {
  it('keeps counts, ePIDs, HwId and the manual clock', async () => {
    const file = path.join(dir, 'restart.sqlite');
    const rt1 = await host({ store: file, seed: 'first' });
    const c1 = await client(rt1);
    const first: string[] = [];
    for (let i = 0; i < 3; i++) {
      const a = await c1.activate({ version: (4 + i) as KmsVersion });
      first.push(a.request.cmid);
      expect(a.body!.currentCount).toBe(i + 1);
    }
    const epid = (await c1.activate({ cmid: first[0]! })).body!.epid;
    await api(rt1, 'POST', '/clock/advance', { days: 2 });
    const before = (await api(rt1, 'GET', '/status')).json;
    const clientsBefore = (await api(rt1, 'GET', '/clients')).json;
    c1.close();
    await rt1.close();
    runtimes.splice(runtimes.indexOf(rt1), 1);

    // Another seed: the identity and the clock must come from the file.
    const rt2 = await host({ store: file, seed: 'second' });
    const after = (await api(rt2, 'GET', '/status')).json;
    expect(after.epids).toEqual(before.epids);
    expect(after.hwid).toBe(before.hwid);
    expect(after.time).toBe(new Date(T0 + 2 * DAY).toISOString());
    expect(after.pools).toEqual(before.pools);
    expect((await api(rt2, 'GET', '/clients')).json).toEqual(clientsBefore);
    const c2 = await client(rt2, { seed: 'second client' });
    const again = await c2.activate({ cmid: first[1]! });
    expect(again.body!.currentCount).toBe(3);
    expect(again.body!.epid).toBe(epid);
    expect(again.hwid).toEqual(new Uint8Array(Buffer.from(before.hwid, 'hex')));
    expect((await c2.activate()).body!.currentCount).toBe(4);
    expect((await api(rt2, 'GET', '/history')).json.records.map((r: { seq: number }) => r.seq)).toEqual([
      1, 2, 3, 4, 5, 6,
    ]);
  });
});
