/**
 * Restart from the store gives the same answers: a KmsService is reopened on the store another one
 * wrote (the same MemoryStore object, or the same SQLite file closed and reopened), and from then on
 * status(), clients() and every answer equal those of a service that never restarted.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/host/clock.js';
import { SeededRandom } from '../../../src/host/random.js';
import { KmsService } from '../../../src/host/service.js';
import { encodeRequest, verifyResponse } from '../../../src/kms/envelope.js';
import { unwrapResponseStub, wrapRequestStub } from '../../../src/kms/stub.js';
import { openStore, type Store } from '../../../src/store/store.js';
import { body, type Cmd, capacitiesArb, catalogWithCapacities, cmdArb } from './model.js';

const T0 = Date.UTC(2026, 0, 1);
const dir = mkdtempSync(path.join(tmpdir(), 'kmslab-restart-'));
let files = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Answer {
  hresult: number;
  count: number | null;
  epid: string | null;
}

function call(svc: KmsService, cmid: number, app: number): Answer {
  const now = svc.clock.now();
  const { message, context } = encodeRequest(body(cmid, app, now));
  const out = svc.handleCall(wrapRequestStub(message, 'ndr32'), 'ndr32', {
    peer: '127.0.0.1:9',
    connectionId: 1,
  });
  if (out.kind !== 'response') throw new Error(`fault ${out.status}`);
  const { hresult, message: m } = unwrapResponseStub(out.stub, 'ndr32');
  if (!m) return { hresult, count: null, epid: null };
  const v = verifyResponse(m, context);
  return { hresult, count: v.body.currentCount, epid: v.body.epid };
}

function apply(svc: KmsService, c: Cmd): Answer | null {
  if (c.kind === 'adv') {
    (svc.clock as ManualClock).advance(c.ms);
    svc.saveClock(); // what POST /clock/advance does
    return null;
  }
  return call(svc, c.cmid, c.app);
}

/** What must survive a restart (request totals aside, see below). */
function observable(svc: KmsService) {
  const { requests: _r, ...status } = svc.status();
  return { status, clients: svc.clients(), history: svc.store.historyCount() };
}

type Reopen = (store: Store) => Store;

function check(
  kind: 'memory' | 'sqlite',
  caps: readonly [number, number, number],
  cmds: Cmd[],
  split: number,
): void {
  const catalog = catalogWithCapacities(...caps);
  const make = (store: Store, seed: string, start = T0) =>
    new KmsService({ clock: new ManualClock(start), random: new SeededRandom(seed), store, catalog });
  const open = (): Store =>
    kind === 'memory' ? openStore('memory') : openStore(path.join(dir, `s${files++}.sqlite`));
  const reopen: Reopen = (s) => {
    if (kind === 'memory') return s;
    const p = s.path!;
    s.close();
    return openStore(p);
  };

  const refStore = open();
  const ref = make(refStore, 'seed');
  let store = open();
  let svc = make(store, 'seed');
  try {
    const at = Math.min(split, cmds.length);
    for (const c of cmds.slice(0, at)) expect(apply(svc, c)).toEqual(apply(ref, c));
    svc.saveClock(); // what runtime.close() does
    store = reopen(store);
    // A different seed and start time: identity and clock must come from the store.
    svc = make(store, 'another seed', T0 - 1234567);
    expect(observable(svc)).toEqual(observable(ref));
    for (const c of cmds.slice(at)) {
      expect(apply(svc, c)).toEqual(apply(ref, c));
      expect(observable(svc)).toEqual(observable(ref));
    }
  } finally {
    store.close();
    refStore.close();
  }
}

describe('restart from the store gives the same answers', () => {
  for (const kind of ['memory', 'sqlite'] as const) {
    it(`${kind} store`, () => {
      fc.assert(
        fc.property(
          capacitiesArb,
          fc.array(cmdArb(10), { maxLength: 40 }),
          fc.nat({ max: 40 }),
          (caps, cmds, split) => check(kind, caps, cmds, split),
        ),
        { numRuns: kind === 'memory' ? 60 : 25 },
      );
    });
  }

  it('status().requests survives a restart', () => {
    const store = openStore('memory');
    const a = new KmsService({ clock: new ManualClock(T0), random: new SeededRandom(1), store });
    call(a, 1, 0);
    call(a, 2, 0);
    expect(a.status().requests.total).toBe(2);
    const b = new KmsService({ clock: new ManualClock(T0), random: new SeededRandom(1), store });
    expect(b.store.historyCount()).toBe(2);
    expect(b.status().requests).toEqual(a.status().requests);
    store.close();
  });

  it('a restart keeps the HwId and the ePIDs even with another seed and an ePID override', () => {
    const store = openStore('memory');
    const a = new KmsService({ clock: new ManualClock(T0), random: new SeededRandom('a'), store });
    const epid = '03612-00096-199-799188-03-1033-17763.0000-2972018';
    const b = new KmsService({
      clock: new ManualClock(T0),
      random: new SeededRandom('b'),
      store,
      identity: { epids: { Office2010: epid } },
    });
    expect(b.status().hwid).toBe(a.status().hwid);
    expect(b.status().epids['Office2010']).toBe(epid);
    expect(b.status().epids['Windows']).toBe(a.status().epids['Windows']);
    store.close();
  });
});
