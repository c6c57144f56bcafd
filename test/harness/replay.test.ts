import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KmsClient } from '../../src/client/client.js';
import { SeededRandom } from '../../src/host/random.js';
import {
  type FaultRule,
  type LabHost,
  parseTranscript,
  replayTranscript,
  runScenario,
  serveTranscript,
  startLabHost,
} from '../../src/index.js';
import { OFFICE_2019, WIN10_ENT, withHost } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'kmslab-replay-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A session with V4, V5 and V6, NDR32 and NDR64, two requests on one connection, and a day passing. */
async function session(host: LabHost): Promise<void> {
  await host.activate({ product: WIN10_ENT, requests: 2 });
  await host.activate({ product: 'Windows 7 Enterprise', protocol: 4 });
  await host.activate({ product: 'Windows 8 Enterprise', protocol: 5, ndr64: false });
  await host.advance('1d');
  for (let i = 0; i < 5; i++) await host.activate({ product: OFFICE_2019 });
}

describe('record and replay', () => {
  it('a transcript holds every PDU with direction, connection, host time, hex and decoded KMS fields', async () => {
    const path = join(dir, 'session.ndjson');
    await withHost({ seed: 'rec', record: path }, session);
    const recs = parseTranscript({ path });
    expect(recs[0]).toMatchObject({ type: 'header', format: 'kmslab-transcript', version: 1, seed: 'rec' });
    const pdus = recs.filter((r) => r.type === 'pdu');
    expect(new Set(pdus.map((p) => p.conn))).toEqual(new Set([1, 2, 3, 4, 5, 6, 7, 8]));
    const reqs = pdus.filter((p) => p.ptype === 'request');
    expect(reqs.map((p) => (p.kms as { version: number }).version)).toEqual([6, 6, 4, 5, 6, 6, 6, 6, 6]);
    expect(reqs.map((p) => p.kms!.ndr)).toEqual([
      'ndr32',
      'ndr64',
      'ndr32',
      'ndr32',
      'ndr32',
      'ndr32',
      'ndr32',
      'ndr32',
      'ndr32',
    ]);
    const resps = pdus.filter((p) => p.ptype === 'response');
    expect(resps.map((p) => (p.kms as { count: number }).count)).toEqual([1, 1, 2, 3, 1, 2, 3, 4, 5]);
    expect(resps.every((p) => (p.kms as { verified: boolean }).verified)).toBe(true);
    expect(resps.at(-1)!.time).toBe('2026-01-02T00:00:00.000Z');
    expect(resps.at(-1)!.kms).toMatchObject({
      hresult: '0x00000000',
      epid: expect.stringMatching(/^\d{5}-/),
      hwid: expect.any(String),
    });
  });

  it('replaying a transcript against a fresh host with the same seed reports no differences', async () => {
    const path = join(dir, 'same.ndjson');
    await withHost({ seed: 'same', record: path }, session);
    await withHost({ seed: 'same' }, async (target) => {
      const report = await replayTranscript(
        { path },
        { host: target.host, port: target.port, setClock: (t) => target.setTime(t) },
      );
      expect(report.differences).toEqual([]);
      expect(report.identityDifferences).toEqual([]);
      expect(report.ok).toBe(true);
      expect(report).toMatchObject({ connections: 8, pdusSent: 24, pdusCompared: 24 });
      expect(report.notes.join('\n')).toMatch(/carry the recorded client times/);
      // The replay counted the same machines.
      expect(target.count('office2013')).toBe(5);
    });
  });

  it('reports another identity apart, and real differences as differences', async () => {
    const path = join(dir, 'diff.ndjson');
    await withHost({ seed: 'a', record: path }, session);
    await withHost({ seed: 'b' }, async (target) => {
      const report = await replayTranscript(
        { path },
        { host: target.host, port: target.port, setClock: (t) => target.setTime(t) },
      );
      expect(report.differences).toEqual([]);
      expect(new Set(report.identityDifferences.map((d) => d.field))).toEqual(
        new Set(['kms.epid', 'kms.hwid']),
      );
      expect(report.ignored.join('\n')).toMatch(/another identity/);
      const strict = await replayTranscript(
        { path },
        { host: target.host, port: target.port, strictIdentity: true },
      );
      expect(strict.ok).toBe(false);
    });
    // Without setting the clock, the day that passed is missing: counts and time stamps differ.
    await withHost(
      {
        seed: 'a',
        policy: { refuseUnknown: true },
        faults: [{ match: { protocol: 4 }, action: { type: 'hresult', hresult: '0xC004F042' } }],
      },
      async (target) => {
        const report = await replayTranscript({ path }, { host: target.host, port: target.port });
        const fields = report.differences.map((d) => `${d.conn}:${d.field}`);
        expect(fields).toEqual(['2:kms.hresult', '3:kms.count']);
        expect(report.differences.find((d) => d.field === 'kms.hresult')).toMatchObject({
          recorded: '0x00000000',
          replayed: '0xC004F042',
        });
        expect(report.notes.join('\n')).toMatch(/not set to the recorded times/);
        expect(report.ok).toBe(false);
      },
    );
  });

  it('replays faults: refused connections, bind_nak, a cut response', async () => {
    const faults: FaultRule[] = [
      { name: 'down', match: { nth: 2 }, action: { type: 'refuse-connection' } },
      { name: 'nak', match: { nth: 3 }, action: { type: 'bind-nak', reason: 2 } },
      { name: 'cut', match: { nth: 2 }, action: { type: 'close-mid-response' } },
    ];
    const path = join(dir, 'faults.ndjson');
    await withHost({ seed: 'f', record: path, faults }, async (h) => {
      for (let i = 0; i < 5; i++) await h.activate({ product: OFFICE_2019, timeoutMs: 2000 });
    });
    const recs = parseTranscript({ path });
    expect(recs.filter((r) => r.type === 'fault').map((r) => (r as { rule: string }).rule)).toEqual([
      'down',
      'nak',
      'cut',
    ]);
    await withHost({ seed: 'f', faults }, async (target) => {
      const report = await replayTranscript(recs, { host: target.host, port: target.port, timeoutMs: 2000 });
      expect(report.differences).toEqual([]);
      expect(report.refusedConnections).toBe(1);
    });
    await withHost({ seed: 'f' }, async (target) => {
      const report = await replayTranscript(recs, { host: target.host, port: target.port, timeoutMs: 300 });
      expect(report.differences.map((d) => d.field)).toEqual(
        expect.arrayContaining(['refused', 'ptype', 'partial']),
      );
    });
  });

  it('serves the recorded host side to a client under test (call_id patched)', async () => {
    const path = join(dir, 'as-host.ndjson');
    // A deterministic client: fixed CMID, time and workstation, seeded IVs.
    const client = (port: number, seed: string) =>
      new KmsClient({
        host: '127.0.0.1',
        port,
        product: OFFICE_2019,
        cmid: '11111111-2222-4333-8444-555555555555',
        workstation: 'UNDER-TEST',
        random: new SeededRandom(seed),
        clientTime: new Date('2026-01-01T00:00:00Z'),
      });
    await withHost({ seed: 'srv', record: path }, async (h) => {
      const r = await client(h.port, 'c').run(2);
      expect(r.map((x) => x.count)).toEqual([1, 1]);
    });
    const served = await serveTranscript({ path });
    try {
      const r = await client(served.port, 'c').run(2);
      expect(r.map((x) => [x.count, x.error])).toEqual([
        [1, undefined],
        [1, undefined],
      ]);
      expect(served.stats).toMatchObject({ connections: 1, mismatches: 0 });
      // Another client (other IV and CMID): the recorded answers do not verify, as they should not.
      const other = await new KmsClient({
        host: '127.0.0.1',
        port: served.port,
        product: OFFICE_2019,
        random: new SeededRandom('x'),
        timeoutMs: 1000,
      }).run(1);
      expect(other[0]!.error).toBeDefined();
    } finally {
      await served.close();
    }
  });

  it('runScenario can record, and the transcript parses', async () => {
    const r = await runScenario('fixtures/scenarios/host-outage.yaml', { record: true });
    expect(r.passed).toBe(true);
    const recs = parseTranscript(r.transcript!.join(''));
    expect(recs.filter((x) => x.type === 'fault')).toHaveLength(3);
    expect(readFileSync('fixtures/scenarios/host-outage.yaml', 'utf8')).toMatch(/refuse-connection/);
    // And a replay of it against a fresh host with the scenario's settings reports nothing.
    const host = await startLabHost({
      seed: 'outage',
      faults: [
        {
          name: 'host down',
          match: { window: { from: '3d', to: '9d' } },
          action: { type: 'refuse-connection' },
        },
      ],
    });
    try {
      const report = await replayTranscript(recs, {
        host: host.host,
        port: host.port,
        setClock: (t) => host.setTime(t),
      });
      expect(report.differences).toEqual([]);
    } finally {
      await host.close();
    }
  });
});
