/**
 * Socket-level properties over real loopback connections (fast-check, 100 runs × up to 8 connections).
 * Each run starts a host and opens connections that are valid clients, hostile peers (valid, mutated,
 * spliced and random PDUs) or silent; every connection's bytes are cut at arbitrary points and the
 * pieces of all connections are interleaved. Whatever happens:
 *
 * - the host never crashes and never logs an internal error (an association or call that threw);
 * - a valid client is served in full (bind_ack, then a verified S_OK answer per request, in order),
 *   unless the connection cap refused it at accept (then it got nothing) or closed it to admit a newer
 *   connection before its first answer (an eviction: at most one failed client per eviction);
 * - the cap refuses only when the host really holds maxConnections connections;
 * - every accepted connection is closed once the clients are gone (observe() open/close balance,
 *   server.openConnections back to 0);
 * - a valid client on a fresh connection is then served.
 */
import fc from 'fast-check';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { SeededRandom } from '../../src/host/random.js';
import { HResult } from '../../src/kms/hresult.js';
import type { KmsVersion, NdrSyntax } from '../../src/kms/messages.js';
import { PFC, PTYPE } from '../../src/rpc/constants.js';
import { type HostRuntime, startHostRuntime } from '../../src/server/runtime.js';
import type { ServerObservation } from '../../src/server/tcp.js';
import { buildCorpus } from '../fuzz/corpus.js';
import { chunk, fixFragLength, mutate, pduFields } from '../fuzz/mutate.js';
import { until } from '../helpers/host-events.js';
import {
  acceptedContexts,
  activateOnce,
  activationStub,
  alterContextBytes,
  bindBytes,
  bindContexts,
  RawSocket,
  type ReceivedPdu,
  readAnswer,
  requestBody,
  requestBytes,
} from '../helpers/raw-client.js';

const T0 = Date.UTC(2026, 0, 1);

type Role =
  | { kind: 'client'; ndr: NdrSyntax; versions: KmsVersion[]; btfn: boolean }
  | { kind: 'hostile'; items: Item[] }
  | { kind: 'silent'; partial: boolean };
type Item =
  | { kind: 'valid'; which: number }
  | { kind: 'mutated'; pdu: number; seed: number }
  | { kind: 'random'; seed: number; length: number };
type Ending = 'end' | 'destroy' | 'keep';

interface ConnSpec {
  role: Role;
  /** Seed for the cut points (and the request bodies of a client). */
  seed: number;
  ending: Ending;
}

const itemArb: fc.Arbitrary<Item> = fc.oneof(
  fc.record({ kind: fc.constant('valid' as const), which: fc.nat(5) }),
  fc.record({ kind: fc.constant('mutated' as const), pdu: fc.nat(), seed: fc.nat() }),
  fc.record({
    kind: fc.constant('random' as const),
    seed: fc.nat(),
    length: fc.integer({ min: 1, max: 300 }),
  }),
);

const roleArb: fc.Arbitrary<Role> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('client' as const),
      ndr: fc.constantFrom<NdrSyntax>('ndr32', 'ndr64'),
      versions: fc.array(fc.constantFrom<KmsVersion>(4, 5, 6), { minLength: 1, maxLength: 3 }),
      btfn: fc.boolean(),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('hostile' as const),
      items: fc.array(itemArb, { minLength: 1, maxLength: 5 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('silent' as const), partial: fc.boolean() }) },
);

const scenarioArb = fc.record({
  conns: fc.array(
    fc.record({ role: roleArb, seed: fc.nat(), ending: fc.constantFrom<Ending>('end', 'destroy', 'keep') }),
    { minLength: 1, maxLength: 8 },
  ),
  /** Which connection sends its next piece at each step (indices taken modulo the count). */
  schedule: fc.array(fc.record({ conn: fc.nat(), yieldAfter: fc.boolean() }), { maxLength: 60 }),
  maxConnections: fc.constantFrom(3, 5, 64),
});

const corpus = buildCorpus();

/** Valid client-to-server PDUs a hostile peer may send in between (bind, requests, alter, cancel). */
function validPdu(which: number, r: SeededRandom): Uint8Array {
  const stub = activationStub(requestBody(r, {}, T0), 'ndr32', r).stub;
  switch (which) {
    case 0:
      return bindBytes(2);
    case 1:
      return bindBytes(2, { ndr64: false, btfn: false });
    case 2:
      return requestBytes(3, 0, stub);
    case 3:
      return requestBytes(4, 0, stub.subarray(0, 50), { flags: PFC.FIRST_FRAG });
    case 4:
      // NDR64 as context 7: valid after a bind, a protocol error before one.
      return alterContextBytes(
        5,
        bindContexts({ ndr32: false, btfn: false }).map((c) => ({ ...c, contextId: 7 })),
      );
    default:
      return new Uint8Array([5, 0, 18, 3, 0x10, 0, 0, 0, 16, 0, 0, 0, 4, 0, 0, 0]); // co_cancel call 4
  }
}

interface Built {
  bytes: Uint8Array;
  pieces: Uint8Array[];
  /** For a client: what to verify. */
  client?: {
    ndr: NdrSyntax;
    contextId: number;
    offered: ReturnType<typeof bindContexts>;
    calls: {
      callId: number;
      context: ReturnType<typeof activationStub>['context'];
      body: ReturnType<typeof requestBody>;
    }[];
  };
}

function build(spec: ConnSpec): Built {
  const r = new SeededRandom(`conn-${spec.seed}`);
  const role = spec.role;
  let bytes: Uint8Array;
  let client: Built['client'];
  switch (role.kind) {
    case 'client': {
      const offer = role.ndr === 'ndr32' ? { ndr64: false, btfn: role.btfn } : { btfn: role.btfn };
      // NDR32 alone → context 0; NDR32 + NDR64 offered → the host takes NDR64 (context 1).
      const contextId = role.ndr === 'ndr32' ? 0 : 1;
      const parts = [bindBytes(2, offer)];
      const calls: NonNullable<Built['client']>['calls'] = [];
      role.versions.forEach((version, i) => {
        const body = requestBody(r, { version, workstation: `prop-${spec.seed}-${i}` }, T0);
        const { stub, context } = activationStub(body, role.ndr, r);
        const callId = 10 + i;
        parts.push(requestBytes(callId, contextId, stub));
        calls.push({ callId, context, body });
      });
      bytes = Buffer.concat(parts);
      client = { ndr: role.ndr, contextId, offered: bindContexts(offer), calls };
      break;
    }
    case 'hostile': {
      const parts = role.items.map((it) => {
        if (it.kind === 'valid') return validPdu(it.which, r);
        if (it.kind === 'random') return new SeededRandom(it.seed).bytes(it.length);
        const base = corpus.pdus[it.pdu % corpus.pdus.length]!;
        const mr = new SeededRandom(it.seed);
        const m = mutate(mr, base, pduFields, corpus.pdus);
        return mr.below(2) === 0 ? fixFragLength(m) : m;
      });
      bytes = Buffer.concat(parts);
      break;
    }
    case 'silent':
      bytes = role.partial ? bindBytes(2).subarray(0, 9) : new Uint8Array(0);
      break;
  }
  const pieces = bytes.length === 0 ? [] : chunk(r, bytes, 6);
  return { bytes, pieces, ...(client ? { client } : {}) };
}

const runtimes: HostRuntime[] = [];
afterEach(async () => {
  await Promise.all(runtimes.splice(0).map((rt) => rt.close()));
});

describe('socket properties: arbitrary interleaved input on many connections', () => {
  it('never crashes the host, never leaks a connection, always serves a valid client (100 runs)', async () => {
    let run = 0;
    let clientsServed = 0;
    let refusedSeen = 0;
    await fc.assert(
      fc.asyncProperty(scenarioArb, async ({ conns, schedule, maxConnections }) => {
        run += 1;
        const errors: string[] = [];
        const logger = pino(
          { level: 'error' },
          {
            write(line: string) {
              errors.push(line);
            },
          },
        );
        const rt = await startHostRuntime({
          listen: [{ host: '127.0.0.1', port: 0 }],
          store: 'memory',
          clock: 'manual',
          seed: `props-${run}`,
          logger,
          limits: { idleTimeoutMs: 5000, maxConnections },
        });
        runtimes.push(rt);
        const addr = rt.addresses[0]!;
        let open = 0;
        let opened = 0;
        let closed = 0;
        let rejected = 0;
        let evicted = 0;
        let cut = 0;
        const badRejections: string[] = [];
        const callErrors: ServerObservation[] = [];
        const stop = rt.server.observe((o) => {
          if (o.kind === 'connection-open') {
            open += 1;
            opened += 1;
          } else if (o.kind === 'connection-close') {
            open -= 1;
            closed += 1;
            if (o.reason === 'evicted') evicted += 1;
          } else if (o.kind === 'connection-rejected') {
            rejected += 1;
            if (open < maxConnections) badRejections.push(`refused with ${open}/${maxConnections} open`);
          } else if (o.kind === 'call-error') callErrors.push(o);
        });
        const built = conns.map(build);
        const sockets = await Promise.all(conns.map(() => RawSocket.connect(addr)));
        try {
          // Interleave: each step sends the next piece of one connection; then whatever is left, in order.
          const next = built.map(() => 0);
          const steps = [...schedule.map((s) => ({ conn: s.conn % conns.length, y: s.yieldAfter }))];
          for (let i = 0; i < conns.length; i++)
            for (let k = 0; k < built[i]!.pieces.length; k++) steps.push({ conn: i, y: k % 2 === 0 });
          for (const { conn, y } of steps) {
            const b = built[conn]!;
            const p = b.pieces[next[conn]!];
            if (!p) continue;
            next[conn]! += 1;
            if (!sockets[conn]!.isClosed) sockets[conn]!.write(p);
            if (y) await new Promise((r) => setImmediate(r));
          }
          // Valid clients: served in full, or refused at accept (then they got nothing).
          for (const [i, b] of built.entries()) {
            const c = b.client;
            if (!c) continue;
            const s = sockets[i]!;
            let ack: ReceivedPdu;
            try {
              ack = await s.nextPdu(5000);
            } catch (e) {
              // Refused by the connection cap (closed without a byte), or evicted before the bind_ack.
              expect(s.isClosed, `client ${i}: ${(e as Error).message}`).toBe(true);
              expect(s.received).toEqual([]);
              continue;
            }
            expect(ack.type, `client ${i} bind answer`).toBe(PTYPE.BIND_ACK);
            const accepted = acceptedContexts(c.offered, ack as Parameters<typeof acceptedContexts>[1]);
            expect(accepted.get(c.contextId)).toBe(c.ndr);
            let answered = 0;
            for (const call of c.calls) {
              let pdu: ReceivedPdu;
              try {
                pdu = await s.nextPdu(5000);
              } catch (e) {
                // Evicted between its bind and its first answer (a connection that answered a call is
                // never evicted).
                expect(answered, `client ${i}: ${(e as Error).message}`).toBe(0);
                expect(s.isClosed).toBe(true);
                cut += 1;
                break;
              }
              expect(pdu.callId).toBe(call.callId);
              const a = readAnswer(pdu, c.ndr, call.context, call.body);
              expect(a.hresult).toBe(HResult.S_OK);
              expect(a.body!.cmid).toBe(call.body.cmid);
              answered += 1;
            }
            if (answered === c.calls.length) clientsServed += 1;
          }
          // End every connection as chosen, then drop whatever is left.
          for (const [i, s] of sockets.entries()) {
            const e = conns[i]!.ending;
            if (e === 'end') s.end();
            else if (e === 'destroy') s.destroy();
          }
          await Promise.all(
            sockets.map((s, i) =>
              conns[i]!.ending === 'end' ? s.waitClose(5000).catch(() => s.destroy()) : undefined,
            ),
          );
          for (const s of sockets) s.destroy();
          await until(rt.server, () => rt.server.openConnections === 0);
          await until(rt.server, () => closed === opened);
          expect(opened + rejected).toBe(conns.length);
          expect(badRejections).toEqual([]);
          expect(cut).toBeLessThanOrEqual(evicted);
          refusedSeen += rejected + evicted;
          // A fresh valid client is served.
          const fresh = await activateOnce(addr, { version: 6 }, { seed: `fresh-${run}`, nowMs: T0 });
          expect(fresh.hresult).toBe(HResult.S_OK);
          await until(rt.server, () => rt.server.openConnections === 0);
          expect(callErrors).toEqual([]);
          expect(errors).toEqual([]);
        } finally {
          stop();
          for (const s of sockets) s.destroy();
          runtimes.splice(runtimes.indexOf(rt), 1);
          await rt.close();
        }
      }),
      {
        numRuns: Number(process.env['KMSLAB_PROPS_RUNS'] ?? 100),
        seed: Number(process.env['KMSLAB_PROPS_SEED'] ?? 20260601),
        endOnFailure: true,
      },
    );
    // The runs did exercise both sides: clients served, and (with caps of 3 and 5) the cap at work
    // (evictions of connections without a call, or refusals).
    expect(clientsServed).toBeGreaterThan(10);
    expect(refusedSeen).toBeGreaterThan(0);
  }, 60_000);
});
