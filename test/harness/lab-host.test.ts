import { describe, expect, it } from 'vitest';
import { type LabEvent, startLabHost } from '../../src/index.js';
import { control, OFFICE_2019, WIN10_ENT, withHost } from './helpers.js';

describe('startLabHost', () => {
  it('runs twenty hosts side by side, each with its own counts, clock and events', async () => {
    const hosts = await Promise.all(
      Array.from({ length: 20 }, (_, i) => startLabHost({ seed: `side-${i}` })),
    );
    try {
      expect(new Set(hosts.map((h) => h.port)).size).toBe(20);
      // Host i gets i + 1 machines, all hosts at once.
      await Promise.all(
        hosts.map((h, i) =>
          h.activate({ product: WIN10_ENT, requests: 1 }).then(async () => {
            for (let k = 0; k < i; k++) await h.activate({ product: WIN10_ENT });
          }),
        ),
      );
      await Promise.all(hosts.map((h, i) => h.advance({ days: i })));
      hosts.forEach((h, i) => {
        expect(h.count('windows')).toBe(i + 1);
        expect(h.clients()).toHaveLength(i + 1);
        expect(h.events.all('activation').map((e) => e.count)).toEqual(
          Array.from({ length: i + 1 }, (_, k) => k + 1),
        );
        expect(h.clock.now() - h.origin).toBe(i * 86_400_000);
        expect(h.history()).toHaveLength(i + 1);
      });
      // Different seeds, different identities; no state leaks between hosts.
      expect(new Set(hosts.map((h) => h.state().hwid)).size).toBe(20);
    } finally {
      await Promise.all(hosts.map((h) => h.close()));
    }
  });

  it('has an address, a manual clock that starts at 2026-01-01, and a deterministic identity by default', async () => {
    await withHost({}, async (a) => {
      await withHost({}, async (b) => {
        expect(a.address).toBe(`127.0.0.1:${a.port}`);
        expect(a.clock.kind).toBe('manual');
        expect(new Date(a.clock.now()).toISOString()).toBe('2026-01-01T00:00:00.000Z');
        expect(a.state().epids).toEqual(b.state().epids);
        expect(a.state().hwid).toBe(b.state().hwid);
        expect(await a.advance('1d12h')).toBe(Date.parse('2026-01-02T12:00:00Z'));
        expect(await a.setTime('2026-02-01T00:00:00Z')).toBe(Date.parse('2026-02-01T00:00:00Z'));
        await expect(a.advance(-1)).rejects.toThrow(/negative/);
      });
    });
  });

  it('takes a start time, policy, identity and raw products data', async () => {
    const { defaultCatalog } = await import('../../src/index.js');
    const cat = defaultCatalog();
    const raw = { ...(await import('../../src/catalog/products.json', { with: { type: 'json' } })).default };
    await withHost(
      {
        start: '2030-05-01T00:00:00Z',
        policy: { refuseUnknown: true },
        identity: { hwid: '3A1C049600B60076' },
        products: raw,
      },
      async (h) => {
        expect(h.state().time).toBe('2030-05-01T00:00:00.000Z');
        expect(h.state().hwid).toBe('3A1C049600B60076');
        expect(h.state().policy.refuseUnknown).toBe(true);
        expect(h.state().pools).toHaveLength(cat.applications.length);
      },
    );
  });

  it('events: an async iterator buffered from the start, ending at close, and an emitter', async () => {
    const host = await startLabHost({ seed: 'events' });
    const seen: string[] = [];
    host.events.on('activation', (e) => seen.push(`${e.decision}:${e.count}`));
    const connections: string[] = [];
    host.events.on('connection', (e) => connections.push(e.state));
    await host.activate({ product: OFFICE_2019, requests: 2 });
    await host.activate({ product: OFFICE_2019 });
    // An iterator started after the fact still sees everything, then ends at close.
    const collected: LabEvent[] = [];
    const done = (async () => {
      for await (const e of host.events) collected.push(e);
    })();
    const first = await host.events.first('activation', (e) => e.count === 2);
    expect(first).toBe(host.events.all('activation')[2]);
    await host.close();
    await done;
    expect(seen).toEqual(['count-insufficient:1', 'count-insufficient:1', 'count-insufficient:2']);
    const acts = collected.filter((e) => e.type === 'activation');
    expect(acts).toHaveLength(3);
    expect(acts[0]).toMatchObject({
      type: 'activation',
      hresult: 0,
      protocol: 6,
      connectionId: 1,
      fault: null,
    });
    expect(acts[0]!.type === 'activation' && acts[0]!.peer).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(connections.filter((s) => s === 'open')).toHaveLength(2);
    // Closed: new iterators end at once, `first` rejects.
    const after: LabEvent[] = [];
    for await (const e of host.events) after.push(e);
    expect(after.length).toBe(collected.length);
    await expect(host.events.first('reset')).rejects.toThrow(/closed/);
  });

  it('history answers "which machines activated, when, with what count" for a time range', async () => {
    await withHost({ seed: 'history' }, async (h) => {
      for (let i = 0; i < 4; i++) await h.activate({ product: OFFICE_2019, workstation: `OFF-${i}` });
      await h.advance('1d');
      await h.activate({ product: OFFICE_2019, workstation: 'OFF-4' });
      await h.activate({ product: OFFICE_2019, workstation: 'OFF-5' });
      const activated = h.history({
        from: '2026-01-02T00:00:00Z',
        to: '2026-01-03T00:00:00Z',
        wouldActivate: true,
      });
      expect(activated.map((r) => [r.workstation, r.count, new Date(r.time).toISOString()])).toEqual([
        ['OFF-4', 5, '2026-01-02T00:00:00.000Z'],
        ['OFF-5', 6, '2026-01-02T00:00:00.000Z'],
      ]);
      expect(h.history({ to: new Date('2026-01-01T23:00:00Z') })).toHaveLength(4);
      expect(h.history({ applicationId: 'office2013' })).toHaveLength(6);
      expect(h.history({ applicationId: 'windows' })).toHaveLength(0);
    });
  });

  it('reset empties pools and history, restarts fault counters, and emits a reset event', async () => {
    await withHost(
      { faults: [{ name: 'first', match: { nth: 1 }, action: { type: 'hresult', hresult: '0xC004F041' } }] },
      async (h) => {
        expect((await h.activate())[0]!.hresult).toBe(0xc004f041);
        expect((await h.activate())[0]!.hresult).toBe(0xc004f038);
        await h.reset();
        expect(h.count()).toBe(0);
        expect(h.history()).toHaveLength(0);
        expect((await h.activate())[0]!.hresult).toBe(0xc004f041);
        expect(h.events.all('reset')).toHaveLength(1);
      },
    );
  });

  it('serves /faults and /events (with fault markers) on the control API', async () => {
    await withHost({ control: true, seed: 'ctl' }, async (h) => {
      expect(h.controlUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect((await control(h, 'GET', '/faults')).json).toEqual({ faults: [] });
      const bad = await control(h, 'POST', '/faults', [
        { action: { type: 'bind-nak' }, match: { cmid: 'x' } },
        { action: { type: 'nope' } },
      ]);
      expect(bad.status).toBe(400);
      expect(bad.json.errors).toHaveLength(3);
      expect(bad.json.errors.join('\n')).toMatch(/faults\[0\]\.match\.cmid: a CMID GUID/);
      expect(bad.json.errors.join('\n')).toMatch(
        /faults\[0\]\.match\.cmid: action "bind-nak" acts on the bind/,
      );
      expect(bad.json.errors.join('\n')).toMatch(/faults\[1\]\.action\.type: one of hresult, count/);
      const ok = await control(h, 'POST', '/faults', {
        faults: [
          {
            name: 'disabled',
            match: { application: 'windows' },
            action: { type: 'hresult', hresult: '0xC004F039' },
          },
          { name: 'slow-bind', match: { nth: 2 }, action: { type: 'delay-bind', ms: 1 } },
        ],
      });
      expect(ok.status).toBe(200);
      expect(ok.json.faults[0]).toEqual({
        name: 'disabled',
        match: { application: ['55c92734-d682-4d71-983e-d6ec3f16059f'] },
        action: { type: 'hresult', hresult: '0xC004F039' },
      });
      expect(h.getFaults()).toHaveLength(2);

      const res = await fetch(`${h.controlUrl}/events`);
      const reader = res.body!.getReader();
      await h.activate();
      await h.activate({ product: OFFICE_2019 });
      let text = '';
      while ((text.match(/\n/g) ?? []).length < 4) {
        const { value } = await reader.read();
        text += new TextDecoder().decode(value);
      }
      await reader.cancel();
      const lines = text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines.map((l) => `${l.type}:${l.rule ?? l.fault ?? ''}`)).toEqual([
        'fault:disabled',
        'activation:disabled',
        'fault:slow-bind',
        'activation:',
      ]);
      const hist = await fetch(`${h.controlUrl}/events?follow=false`).then((r) => r.text());
      expect(
        hist
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l).fault ?? null),
      ).toEqual(['disabled', null]);

      expect((await control(h, 'DELETE', '/faults')).json).toEqual({ faults: [] });
      // The plain routes still work, and the control API's reset restarts the fault counters.
      expect((await control(h, 'GET', '/status')).json.pools[0].count).toBe(0);
      expect((await control(h, 'POST', '/reset')).status).toBe(200);
      expect(h.events.all('reset')).toHaveLength(1);
    });
  });
});
