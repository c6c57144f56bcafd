/**
 * Every fault action, one test each: the effect a client sees (through the client emulator or a raw
 * socket) and the marker in the event stream. Injected delays run on a ManualClock given as the edge
 * clock, so they are asserted to the millisecond without waiting.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/host/clock.js';
import type { FaultRule, LabHost } from '../../src/index.js';
import { OFFICE_2019, WIN10_ENT, withHost } from './helpers.js';

const T0 = Date.UTC(2026, 0, 1);

/** A promise and whether it has settled yet. */
function settled<T>(promise: Promise<T>): { promise: Promise<T>; done: boolean } {
  const s = { promise, done: false };
  promise.then(
    () => {
      s.done = true;
    },
    () => {
      s.done = true;
    },
  );
  return s;
}

/**
 * PDUs of `ptype` the host has written so far (its transcript, `record: true`). The host records a PDU
 * as it writes it, synchronously, so "not written yet" is checked on the host's side at once, without
 * waiting for bytes that should not come.
 */
function written(host: LabHost, ptype: string): number {
  return host
    .transcript()!
    .map((l) => JSON.parse(l) as { dir: string; ptype?: string })
    .filter((r) => r.dir === 's2c' && r.ptype === ptype).length;
}

const rule = (name: string, action: FaultRule['action'], match?: FaultRule['match']): FaultRule =>
  match ? { name, match, action } : { name, action };

async function one(host: LabHost, opts: Parameters<LabHost['activate']>[0] = {}) {
  const [r] = await host.activate({ product: WIN10_ENT, timeoutMs: 3000, ...opts });
  return r!;
}

/** The markers: a fault event per rule, and the activation's `fault` when the host answered. */
function markers(host: LabHost) {
  return {
    faults: host.events.all('fault').map((f) => `${f.level}:${f.action}:${f.rule}`),
    activations: host.events.all('activation').map((a) => a.fault),
  };
}

describe('fault actions', () => {
  for (const hr of [0xc004f042, 0xc004f06c, 0xc004f039, 0xc004f041, 0x8007000d, 0x80070005]) {
    it(`hresult 0x${hr.toString(16).toUpperCase()}: answered in the error stub, not counted`, async () => {
      await withHost(
        { faults: [rule('h', { type: 'hresult', hresult: `0x${hr.toString(16)}` })] },
        async (h) => {
          const r = await one(h);
          expect(r.error).toBeUndefined();
          expect(r.hresult).toBe(hr);
          expect(r.activated).toBe(false);
          expect(h.count()).toBe(0);
          expect(markers(h)).toEqual({ faults: ['call:hresult:h'], activations: ['h'] });
          expect(h.events.all('activation')[0]).toMatchObject({
            hresult: hr,
            decision: 'refused',
            reason: 'fault h',
          });
          expect(h.history()[0]!.fault).toBe('h');
        },
      );
    });
  }

  it('count: the client sees the overridden count; the pool still counts it once', async () => {
    await withHost({ faults: [rule('fifty', { type: 'count', count: 50 })] }, async (h) => {
      const r = await one(h);
      expect(r).toMatchObject({ count: 50, activated: true, hresult: 0 });
      expect(h.count()).toBe(1);
      expect(markers(h)).toEqual({ faults: ['call:count:fifty'], activations: ['fifty'] });
      expect(h.events.all('activation')[0]).toMatchObject({ count: 50, wouldActivate: true });
    });
  });

  it('rpc-fault: a fault PDU with the given status instead of a response', async () => {
    await withHost({ faults: [rule('f', { type: 'rpc-fault', status: '0x1C010003' })] }, async (h) => {
      const r = await one(h);
      expect(r.error).toMatchObject({ kind: 'rpc', code: 'FAULT', ncaStatus: 0x1c010003 });
      expect(r.hresult).toBe(0xc004f074);
      expect(markers(h)).toEqual({ faults: ['call:rpc-fault:f'], activations: ['f'] });
      expect(h.runtime.server.stats.faults).toBe(1);
    });
  });

  it('tamper mac (V6 HMAC, V5 hash, V4 MAC): the client rejects the answer', async () => {
    await withHost({ faults: [rule('t', { type: 'tamper', what: 'hmac' })] }, async (h) => {
      for (const protocol of [6, 5, 4] as const) {
        const r = await one(h, { protocol });
        expect(r.error, `V${protocol}`).toMatchObject({ kind: 'verification', code: 'BAD_MAC' });
      }
      expect(markers(h).faults).toEqual(['call:tamper:t', 'call:tamper:t', 'call:tamper:t']);
      expect(markers(h).activations).toEqual(['t', 't', 't']);
    });
  });

  it('tamper ciphertext: the V6 answer no longer decrypts to a valid message', async () => {
    await withHost({ faults: [rule('c', { type: 'tamper', what: 'ciphertext' })] }, async (h) => {
      const r = await one(h);
      expect(r.error?.kind).toBe('verification');
      expect(r.activated).toBe(false);
      expect(markers(h)).toEqual({ faults: ['call:tamper:c'], activations: ['c'] });
    });
  });

  it('tamper acts on answers that carry a message only: an error stub or an RPC fault goes out intact', async () => {
    const faults = [
      rule('t', { type: 'tamper', what: 'ciphertext' }),
      rule('off', { type: 'hresult', hresult: 0xc004f041 }, { nth: 1 }),
      rule('rpc', { type: 'rpc-fault' }, { nth: 2 }),
    ];
    await withHost({ faults }, async (h) => {
      const refused = await one(h);
      expect(refused.error).toBeUndefined();
      expect(refused.hresult).toBe(0xc004f041);
      expect((await one(h)).error).toMatchObject({ kind: 'rpc', code: 'FAULT', ncaStatus: 0x1c01000b });
      expect((await one(h)).error?.kind).toBe('verification');
      expect(markers(h).activations).toEqual(['t+off', 't+rpc', 't']);
    });
  });

  it('wrong-cmid: the answer echoes another CMID', async () => {
    await withHost({ faults: [rule('w', { type: 'wrong-cmid' })] }, async (h) => {
      const r = await one(h, { protocol: 4 });
      expect(r.error).toMatchObject({ kind: 'verification', code: 'BAD_ECHO', field: 'ClientMachineId' });
      expect(markers(h)).toEqual({ faults: ['call:wrong-cmid:w'], activations: ['w'] });
    });
  });

  it('wrong-time: the answer echoes another client time', async () => {
    await withHost({ faults: [rule('w', { type: 'wrong-time' })] }, async (h) => {
      const r = await one(h, { protocol: 5 });
      expect(r.error).toMatchObject({ kind: 'verification', code: 'BAD_ECHO', field: 'ClientTime' });
      expect(markers(h)).toEqual({ faults: ['call:wrong-time:w'], activations: ['w'] });
    });
  });

  it('delay-response: the answer comes exactly `ms` later (edge clock), intact', async () => {
    const edge = new ManualClock(T0);
    const faults = [rule('slow', { type: 'delay-response', ms: 150 })];
    await withHost({ faults, runtime: { edgeClock: edge }, record: true }, async (h) => {
      const answer = settled(one(h));
      // The call is decided and committed, its answer held: nothing goes out before 150 ms have passed.
      await h.events.first('activation');
      edge.advance(149);
      expect(written(h, 'response')).toBe(0);
      edge.advance(1);
      expect(written(h, 'response')).toBe(1);
      const r = await answer.promise;
      expect(r).toMatchObject({ count: 1, hresult: 0xc004f038 });
      expect(r.error).toBeUndefined();
      expect(markers(h)).toEqual({ faults: ['call:delay-response:slow'], activations: ['slow'] });
      // A client that gives up first sees a timeout (the host's clock does not move meanwhile).
      const r2 = await one(h, { timeoutMs: 50 });
      expect(r2.error).toMatchObject({ kind: 'transport', code: 'TIMEOUT' });
    });
  });

  it('close-mid-response: half the PDU, then the connection closes (the host did count the request)', async () => {
    await withHost({ faults: [rule('cut', { type: 'close-mid-response' })], record: true }, async (h) => {
      const r = await one(h);
      expect(r.error?.kind).toBe('transport');
      expect(h.count()).toBe(1);
      expect(markers(h)).toEqual({ faults: ['call:close-mid-response:cut'], activations: ['cut'] });
      const partial = h
        .transcript()!
        .map((l) => JSON.parse(l))
        .find((rec) => rec.partial);
      expect(partial).toMatchObject({ dir: 's2c', ptype: 'response' });
      expect(partial.len).toBeLessThan(
        Number.parseInt(partial.hex.slice(18, 20) + partial.hex.slice(16, 18), 16),
      );
    });
  });

  it('delay-bind: the bind_ack comes exactly `ms` later (edge clock); the call then goes through', async () => {
    const edge = new ManualClock(T0);
    const faults = [rule('slow-bind', { type: 'delay-bind', ms: 150 })];
    await withHost({ faults, runtime: { edgeClock: edge }, record: true }, async (h) => {
      const answer = settled(one(h));
      await h.events.first('fault');
      edge.advance(149);
      expect(written(h, 'bind_ack')).toBe(0);
      expect(answer.done).toBe(false);
      expect(h.events.all('activation')).toEqual([]);
      edge.advance(1);
      expect(written(h, 'bind_ack')).toBe(1);
      const r = await answer.promise;
      expect(r.count).toBe(1);
      expect(markers(h)).toEqual({ faults: ['bind:delay-bind:slow-bind'], activations: [null] });
    });
  });

  it('close-after-bind: bind_ack, then the host closes before any request', async () => {
    await withHost({ faults: [rule('drop', { type: 'close-after-bind' })] }, async (h) => {
      const r = await one(h);
      expect(r.error?.kind).toBe('transport');
      expect(r.hresult).toBe(0xc004f074);
      expect(markers(h)).toEqual({ faults: ['bind:close-after-bind:drop'], activations: [] });
    });
  });

  it('bind-nak: the bind is refused with the given reason', async () => {
    await withHost({ faults: [rule('nak', { type: 'bind-nak', reason: 1 })] }, async (h) => {
      const r = await one(h);
      expect(r.error).toMatchObject({ kind: 'rpc', code: 'BIND_NAK' });
      expect(r.error?.message).toMatch(/temporary_congestion/);
      expect(h.events.all('fault')[0]).toMatchObject({
        level: 'bind',
        action: 'bind-nak',
        detail: 'reason 1',
        connectionId: 1,
      });
    });
  });

  it('reject-contexts: every presentation context is rejected 2/2; a request sent anyway gets nca_s_unk_if', async () => {
    await withHost({ faults: [rule('rej', { type: 'reject-contexts' })] }, async (h) => {
      const r = await one(h);
      expect(r.error).toMatchObject({ kind: 'rpc', code: 'BIND_REJECTED' });
      expect(r.error?.message).toMatch(/provider_rejection\/proposed_transfer_syntaxes_not_supported/);
      expect(markers(h)).toEqual({ faults: ['bind:reject-contexts:rej'], activations: [] });
    });
  });

  it('refuse-connection: the host is down for a host-clock window', async () => {
    await withHost(
      { faults: [rule('down', { type: 'refuse-connection' }, { window: { from: '3d', to: '9d' } })] },
      async (h) => {
        expect((await one(h)).error).toBeUndefined();
        await h.advance('3d');
        const r = await one(h);
        expect(r.error).toMatchObject({ kind: 'transport' });
        await h.setTime(h.origin + 9 * 86_400_000 - 1);
        expect((await one(h)).error?.kind).toBe('transport');
        await h.advance(1);
        expect((await one(h)).error).toBeUndefined();
        expect(markers(h).faults).toEqual([
          'connection:refuse-connection:down',
          'connection:refuse-connection:down',
        ]);
        expect(h.events.all('fault')[0]).toMatchObject({
          connectionId: null,
          time: h.origin + 3 * 86_400_000,
        });
        expect(h.events.all('connection').filter((c) => c.state === 'refused')).toHaveLength(2);
      },
    );
  });

  it('rules combine: a delayed 0xC004F039 for Office only, the 2nd matching request only', async () => {
    const faults = [
      rule('office-off', { type: 'hresult', hresult: 0xc004f039 }, { application: 'office2013', ruleNth: 2 }),
      rule('office-slow', { type: 'delay-response', ms: 50 }, { kmsId: 'Office 2019', ruleNth: 2 }),
    ];
    // The delay runs on a manual edge clock: the test moves it once the delayed call is decided.
    const edge = new ManualClock(T0);
    await withHost({ faults, runtime: { edgeClock: edge }, record: true }, async (h) => {
      const results = [];
      for (let i = 0; i < 3; i++) {
        const since = h.events.size;
        const answer = settled(one(h, { product: OFFICE_2019 }));
        if (i === 1) {
          await h.events.first('activation', () => true, since);
          // Held by office-slow until the edge clock moves: the first request's answer only.
          expect(written(h, 'response')).toBe(1);
          edge.advance(50);
          expect(written(h, 'response')).toBe(2);
        }
        results.push(await answer.promise);
      }
      results.push(await one(h));
      expect(results.map((r) => r.hresult)).toEqual([0xc004f038, 0xc004f039, 0xc004f038, 0xc004f038]);
      expect(h.events.all('activation').map((a) => a.fault)).toEqual([
        null,
        'office-off+office-slow',
        null,
        null,
      ]);
      expect(h.events.all('fault').map((f) => f.rule)).toEqual(['office-off', 'office-slow']);
    });
  });

  it('a raw client sees the reject-contexts bind_ack and the unk_if fault', async () => {
    await withHost({ faults: [rule('rej', { type: 'reject-contexts' })], record: true }, async (h) => {
      // Replay the recorded client side of a normal host against this one, with a raw socket.
      const normal = await import('../../src/index.js').then((m) => m.startLabHost({ record: true }));
      await normal.activate({ product: WIN10_ENT, ndr64: false });
      const sent = normal
        .transcript()!
        .map((l) => JSON.parse(l))
        .filter((r) => r.dir === 'c2s');
      await normal.close();
      const sock = net.connect(h.port, '127.0.0.1');
      await new Promise((r) => sock.once('connect', r));
      for (const rec of sent) {
        // Each PDU is answered before the next is sent (the test's timeout bounds a host that does not).
        const answered = new Promise((r) => sock.once('data', r));
        sock.write(Buffer.from(rec.hex, 'hex'));
        await answered;
      }
      sock.destroy();
      const recs = h
        .transcript()!
        .map((l) => JSON.parse(l))
        .filter((r) => r.dir === 's2c');
      expect(recs.map((r) => r.ptype)).toEqual(['bind_ack', 'fault']);
      expect(
        recs[0].rpc.results.every(
          (x: { result: number; reason: number }) => x.result === 2 && x.reason === 2,
        ),
      ).toBe(true);
      expect(recs[1].rpc.status).toBe('0x1C010003');
    });
  });
});
