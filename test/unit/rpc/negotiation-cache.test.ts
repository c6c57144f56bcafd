/**
 * The host's NegotiationCache (src/rpc/negotiate.ts) is memoisation only: an association that answers a
 * bind or alter_context from the cache acts exactly as one that decodes and negotiates it, for the
 * captured conversations and for any damaged copy of their PDUs.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Association, AssociationAction } from '../../../src/rpc/association.js';
import { AssociationGroups } from '../../../src/rpc/association.js';
import { BIND_CONTEXTS_AT, isPlainBindLike } from '../../../src/rpc/decode.js';
import { NegotiationCache } from '../../../src/rpc/negotiate.js';
import {
  badCaptures,
  connections,
  conversationCaptures,
  fromHex,
  hostProfile,
  pdusOf,
  testAssociation,
  toHex,
} from './captures.js';

/** What an association did, comparable across associations: every action, bytes as hex. */
function transcript(a: Association, pdus: Uint8Array[]): unknown[] {
  const seen: unknown[] = [];
  const record = (acts: AssociationAction[]) => {
    for (const x of acts) {
      if (x.type === 'send') seen.push({ send: toHex(x.bytes) });
      else if (x.type === 'call') seen.push({ call: { ...x.call, stub: toHex(x.call.stub) } });
      else if (x.type === 'close') seen.push({ close: x.reason, code: x.error?.code });
      else seen.push({ note: x.level, message: x.message });
    }
  };
  for (const p of pdus) {
    record(a.receive(p));
    seen.push({ state: a.state, contexts: [...a.contexts] });
  }
  return seen;
}

/** Two hosts alike but for the cache; the cached one has seen `warm` first. */
function pair(profile: { ndr64: boolean; btfn: boolean }, warm: Uint8Array[][]) {
  const cache = new NegotiationCache();
  const cachedGroups = new AssociationGroups();
  for (const pdus of warm) {
    const a = testAssociation({ profile, negotiations: cache, groups: cachedGroups });
    for (const p of pdus) a.receive(p);
  }
  return {
    cache,
    plain: () => testAssociation({ profile }),
    cached: () => testAssociation({ profile, negotiations: cache }),
  };
}

const captures = [...conversationCaptures(), ...badCaptures()];

describe('NegotiationCache', () => {
  it('answers every captured conversation as decoding does, on a miss and on a hit', () => {
    let hits = 0;
    for (const c of captures) {
      const conns = connections(c).map((n) => pdusOf(c, n, 'c2s'));
      const { cache, plain, cached } = pair(hostProfile(c), []);
      for (const pdus of conns) {
        const expected = transcript(plain(), pdus);
        expect(transcript(cached(), pdus), `${c.name} (first)`).toEqual(expected);
        const before = cache.size;
        // The binds and alter_contexts the second run will answer from the cache.
        hits += pdus.filter(
          (p) => isPlainBindLike(p) && cache.get(p.subarray(BIND_CONTEXTS_AT), hostProfile(c)) !== undefined,
        ).length;
        expect(transcript(cached(), pdus), `${c.name} (again)`).toEqual(expected);
        expect(cache.size).toBe(before); // the second time only reads it
      }
    }
    expect(hits).toBeGreaterThan(10);
  });

  it('changes nothing for damaged PDUs after the undamaged ones were cached (property)', () => {
    const convs = conversationCaptures().flatMap((c) =>
      connections(c).map((n) => ({ c, pdus: pdusOf(c, n, 'c2s') })),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: convs.length - 1 }),
        fc.nat(),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (ci, pi, at, xor) => {
          const { c, pdus } = convs[ci]!;
          const { plain, cached } = pair(hostProfile(c), [pdus]);
          const i = pi % pdus.length;
          const damaged = pdus.map((p) => p.slice());
          damaged[i]![at % damaged[i]!.length]! ^= xor;
          expect(transcript(cached(), damaged)).toEqual(transcript(plain(), damaged));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('reads every header and fixed body byte of a cached bind from the PDU itself', () => {
    // Bytes 0-23 are not part of the cached region: each one changed must change the answer as decoding does.
    for (const c of conversationCaptures()) {
      const pdus = pdusOf(c, connections(c)[0]!, 'c2s');
      const { plain, cached } = pair(hostProfile(c), [pdus]);
      for (let at = 0; at < 24; at++)
        for (const xor of [0x01, 0x10, 0x80]) {
          const damaged = pdus.map((p) => p.slice());
          damaged[0]![at]! ^= xor;
          expect(transcript(cached(), damaged), `${c.name} byte ${at} ^ ${xor}`).toEqual(
            transcript(plain(), damaged),
          );
        }
    }
  });

  it('associations that bound and altered alike share one context table, equal to a fresh one', () => {
    // The table is what every open connection would otherwise keep a copy of (bench/alloc-socket.ts).
    const c = conversationCaptures().find((x) =>
      pdusOf(x, connections(x)[0]!, 'c2s').some((p) => p[2] === 14),
    )!;
    const pdus = pdusOf(c, connections(c)[0]!, 'c2s');
    const { plain, cached } = pair(hostProfile(c), [pdus]);
    const [a, b, fresh] = [cached(), cached(), plain()];
    for (const x of [a, b, fresh]) for (const p of pdus) x.receive(p);
    expect(a.contexts.size).toBeGreaterThan(0);
    expect(b.contexts).toBe(a.contexts);
    expect(fresh.contexts).not.toBe(a.contexts);
    expect([...b.contexts]).toEqual([...fresh.contexts]);
  });

  it('keeps at most `limit` context lists, dropping the oldest, and tells host profiles apart', () => {
    const cache = new NegotiationCache(2);
    const v = { contexts: [], negotiation: { results: [], accepted: new Map() } };
    const on = { ndr64: true, btfn: true };
    cache.put(fromHex('01'), on, v);
    cache.put(fromHex('02'), on, v);
    cache.put(fromHex('03'), on, v);
    expect(cache.size).toBe(2);
    expect(cache.get(fromHex('01'), on)).toBeUndefined();
    expect(cache.get(fromHex('03'), on)).toBeDefined();
    expect(cache.get(fromHex('03'), { ndr64: false, btfn: true })).toBeUndefined();
    expect(cache.get(fromHex('0300'), on)).toBeUndefined();
  });
});
