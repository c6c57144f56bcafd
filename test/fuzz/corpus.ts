/**
 * The fuzz corpus: every PDU of every vlmcsd capture (both directions), the spec author's RPC vectors,
 * generated PDUs of every connection-oriented type, the KMS messages (V4, V5, V6) and NDR stubs inside
 * them, and (request context, response message) pairs a client can verify. Built once; deterministic.
 */

import { ManualClock } from '../../src/host/clock.js';
import { SeededRandom } from '../../src/host/random.js';
import { HEALTH_CHECK_CMID, KmsService } from '../../src/host/service.js';
import { decodeRequest, verifyResponse } from '../../src/kms/envelope.js';
import type { KmsVersion, NdrSyntax, RequestContext } from '../../src/kms/messages.js';
import { unwrapRequestStub, unwrapResponseStub } from '../../src/kms/stub.js';
import { DREP_LE, PFC, PTYPE } from '../../src/rpc/constants.js';
import { decodePdu } from '../../src/rpc/decode.js';
import { encodePdu } from '../../src/rpc/encode.js';
import { makeBindNak, makeFault, makeResponse, type Pdu } from '../../src/rpc/pdu.js';
import { MemoryStore } from '../../src/store/memory.js';
import { captureNames, kmsVectors, loadCapture, pduBytes } from '../helpers/fixtures.js';
import {
  activationStub,
  alterContextBytes,
  bindBytes,
  bindContexts,
  type ProductName,
  requestBody,
  requestBytes,
} from '../helpers/raw-client.js';

/** A KMS request message as sent, with what the client keeps to verify the answer. */
export interface MessagePair {
  version: KmsVersion;
  ndr: NdrSyntax;
  request: Uint8Array;
  context: RequestContext;
  /** The host's answer (an S_OK response message), verified by verifyResponse at build time. */
  response: Uint8Array;
}

export interface Corpus {
  /** Whole PDUs, client-to-server and server-to-client. */
  pdus: Uint8Array[];
  /** Client-to-server PDU sequences of one connection (captured conversations and generated ones). */
  conversations: Uint8Array[][];
  /** Request stubs with their syntax. */
  requestStubs: { stub: Uint8Array; ndr: NdrSyntax }[];
  /** Response stubs (success and error) with their syntax. */
  responseStubs: { stub: Uint8Array; ndr: NdrSyntax }[];
  /** KMS request messages (V4, V5, V6 and odd versions). */
  requests: Uint8Array[];
  /** Verified request/response pairs. */
  pairs: MessagePair[];
}

const T0 = Date.UTC(2026, 0, 1);

function tryUnwrapRequest(stub: Uint8Array): { message: Uint8Array; ndr: NdrSyntax } | null {
  for (const ndr of ['ndr32', 'ndr64'] as const) {
    try {
      const message = unwrapRequestStub(stub, ndr);
      const len = ndr === 'ndr32' ? 8 : 16;
      if (len + message.length === stub.length) return { message, ndr };
    } catch {
      // try the other syntax
    }
  }
  return null;
}

function contextOf(message: Uint8Array): RequestContext | null {
  try {
    const d = decodeRequest(message);
    return {
      version: d.version,
      minorVersion: d.body.minorVersion,
      cmid: d.body.cmid,
      clientTime: d.body.clientTime,
      iv: d.iv,
      q: d.q,
    };
  } catch {
    return null;
  }
}

function genericPdu(type: 16 | 17 | 18 | 19, callId: number, body: Uint8Array): Uint8Array {
  return encodePdu({
    type,
    flags: PFC.FIRST_FRAG | PFC.LAST_FRAG,
    callId,
    rpcVersionMinor: 0,
    drep: DREP_LE,
    body,
  });
}

/** Requests and answers made by our own host (KmsService over a memory store), for every version and syntax. */
function generatedPairs(): { pairs: MessagePair[]; responseStubs: { stub: Uint8Array; ndr: NdrSyntax }[] } {
  const service = new KmsService({
    clock: new ManualClock(T0),
    random: new SeededRandom('fuzz-corpus-host'),
    store: new MemoryStore(),
  });
  const random = new SeededRandom('fuzz-corpus-client');
  const pairs: MessagePair[] = [];
  const responseStubs: { stub: Uint8Array; ndr: NdrSyntax }[] = [];
  const products: ProductName[] = ['win10Pro', 'server2019', 'office2010', 'office2016'];
  for (const version of [4, 5, 6] as const) {
    for (const ndr of ['ndr32', 'ndr64'] as const) {
      for (const product of products) {
        const body = requestBody(random, { version, product, workstation: `fuzz-${version}-${ndr}` }, T0);
        const { stub, context } = activationStub(body, ndr, random);
        const outcome = service.handleCall(stub, ndr, { peer: 'corpus', connectionId: 1 });
        if (outcome.kind !== 'response') continue;
        responseStubs.push({ stub: outcome.stub, ndr });
        const { message } = unwrapResponseStub(outcome.stub, ndr);
        if (!message) continue;
        verifyResponse(message, context); // the pair must be good before it is mutated
        pairs.push({ version, ndr, request: unwrapRequestStub(stub, ndr), context, response: message });
      }
    }
  }
  // The health-check CMID takes the uncounted path; an unknown KMS id gets an error stub.
  for (const spec of [{ cmid: HEALTH_CHECK_CMID }, { kmsId: '00000000-1111-2222-3333-444444444444' }]) {
    const { stub } = activationStub(requestBody(random, spec, T0), 'ndr32', random);
    const outcome = service.handleCall(stub, 'ndr32', { peer: 'corpus', connectionId: 1 });
    if (outcome.kind === 'response') responseStubs.push({ stub: outcome.stub, ndr: 'ndr32' });
  }
  return { pairs, responseStubs };
}

let cached: Corpus | undefined;

export function buildCorpus(): Corpus {
  if (cached) return cached;
  const pdus: Uint8Array[] = [];
  const conversations: Uint8Array[][] = [];
  const requestStubs: { stub: Uint8Array; ndr: NdrSyntax }[] = [];
  const responseStubs: { stub: Uint8Array; ndr: NdrSyntax }[] = [];
  const requests: Uint8Array[] = [];
  const pairs: MessagePair[] = [];

  // 1. Every captured PDU, and request/response pairs matched by call_id.
  for (const name of captureNames()) {
    const cap = loadCapture(name);
    const byConn = new Map<number, { c2s: Uint8Array[]; s2c: Uint8Array[] }>();
    for (const p of cap.pdus) {
      if (!p.hex) continue;
      const bytes = pduBytes(p);
      pdus.push(bytes);
      const conn = p.conn ?? 0;
      if (!byConn.has(conn)) byConn.set(conn, { c2s: [], s2c: [] });
      byConn.get(conn)![p.dir].push(bytes);
    }
    for (const { c2s, s2c } of byConn.values()) {
      if (c2s.length > 0) conversations.push(c2s);
      const decoded = (list: Uint8Array[]) =>
        list.flatMap((b) => {
          try {
            return [decodePdu(b)];
          } catch {
            return [];
          }
        });
      const answers = decoded(s2c);
      for (const req of decoded(c2s)) {
        if (req.type !== PTYPE.REQUEST) continue;
        const un = tryUnwrapRequest(req.stub);
        if (!un) continue;
        requestStubs.push({ stub: req.stub, ndr: un.ndr });
        requests.push(un.message);
        const resp = answers.find((a) => a.type === PTYPE.RESPONSE && a.callId === req.callId) as
          | (Pdu & { stub: Uint8Array })
          | undefined;
        if (!resp) continue;
        responseStubs.push({ stub: resp.stub, ndr: un.ndr });
        const ctx = contextOf(un.message);
        if (!ctx) continue;
        try {
          const { message } = unwrapResponseStub(resp.stub, un.ndr);
          if (!message) continue;
          verifyResponse(message, ctx);
          pairs.push({
            version: ctx.version,
            ndr: un.ndr,
            request: un.message,
            context: ctx,
            response: message,
          });
        } catch {
          // an error answer or a capture made to be bad: still in the corpus as PDUs and stubs
        }
      }
    }
  }

  // 2. The spec author's vectors.
  const v = kmsVectors();
  for (const hex of Object.values(v.rpc)) pdus.push(new Uint8Array(Buffer.from(hex, 'hex')));
  for (const m of Object.values(v.messages)) {
    for (const [k, val] of Object.entries(m)) {
      if (typeof val === 'string' && /^request_2(52|60)$/.test(k))
        requests.push(new Uint8Array(Buffer.from(val, 'hex')));
    }
  }

  // 3. Our own host's answers for every version, syntax and a few products.
  const gen = generatedPairs();
  pairs.push(...gen.pairs);
  responseStubs.push(...gen.responseStubs);
  for (const p of gen.pairs) requests.push(p.request);

  // 4. Generated PDUs of every type a client can send, and a few a server sends.
  const random = new SeededRandom('fuzz-corpus-pdus');
  const stub32 = activationStub(requestBody(random, {}, T0), 'ndr32', random).stub;
  const stub64 = activationStub(requestBody(random, { version: 4 }, T0), 'ndr64', random).stub;
  requestStubs.push({ stub: stub32, ndr: 'ndr32' }, { stub: stub64, ndr: 'ndr64' });
  const generated: Uint8Array[][] = [
    [bindBytes(2), requestBytes(3, 0, stub32)],
    [bindBytes(2, { ndr32: false, btfn: false }), requestBytes(3, 0, stub64)],
    [bindBytes(2, { concMpx: false, ndr64: false }), requestBytes(3, 0, stub32), requestBytes(4, 0, stub32)],
    [
      bindBytes(2, { ndr64: false, btfn: false }),
      alterContextBytes(
        3,
        bindContexts({ ndr32: false, btfn: false }).map((c) => ({ ...c, contextId: 1 })),
      ),
      requestBytes(4, 1, stub64),
    ],
    // Fragmented request: first, middle, last.
    [
      bindBytes(2),
      requestBytes(5, 0, stub32.subarray(0, 100), { flags: PFC.FIRST_FRAG }),
      requestBytes(5, 0, stub32.subarray(100, 200), { flags: 0 }),
      requestBytes(5, 0, stub32.subarray(200), { flags: PFC.LAST_FRAG }),
    ],
    // Cancel / orphaned a call being reassembled, auth3, and an object-UUID request.
    [
      bindBytes(2),
      requestBytes(6, 0, stub32.subarray(0, 64), { flags: PFC.FIRST_FRAG }),
      genericPdu(PTYPE.CO_CANCEL, 6, new Uint8Array(0)),
      genericPdu(PTYPE.ORPHANED, 7, new Uint8Array(4)),
      genericPdu(PTYPE.AUTH3, 8, new Uint8Array(8)),
      encodePdu({
        type: PTYPE.REQUEST,
        flags: PFC.FIRST_FRAG | PFC.LAST_FRAG,
        callId: 9,
        rpcVersionMinor: 0,
        drep: DREP_LE,
        allocHint: stub32.length,
        contextId: 0,
        opnum: 0,
        objectUuid: '01234567-89ab-cdef-0123-456789abcdef',
        stub: stub32,
      }),
    ],
    // Nine calls being reassembled at once (the cap is eight).
    [
      bindBytes(2),
      ...Array.from({ length: 9 }, (_, i) =>
        requestBytes(20 + i, 0, stub32.subarray(0, 40), { flags: PFC.FIRST_FRAG }),
      ),
    ],
    // An alter_context with an auth verifier.
    [
      bindBytes(2),
      encodePdu({
        type: PTYPE.ALTER_CONTEXT,
        flags: PFC.FIRST_FRAG | PFC.LAST_FRAG,
        callId: 3,
        rpcVersionMinor: 0,
        drep: DREP_LE,
        maxXmitFrag: 5840,
        maxRecvFrag: 5840,
        assocGroupId: 0,
        contexts: bindContexts({ ndr32: false, btfn: false }),
        authVerifier: new Uint8Array(16).fill(3),
      }),
    ],
    // A request with an auth verifier.
    [
      bindBytes(2),
      encodePdu({
        type: PTYPE.REQUEST,
        flags: PFC.FIRST_FRAG | PFC.LAST_FRAG,
        callId: 3,
        rpcVersionMinor: 0,
        drep: DREP_LE,
        allocHint: stub32.length,
        contextId: 0,
        opnum: 0,
        stub: stub32,
        authVerifier: new Uint8Array(24).fill(7),
      }),
    ],
  ];
  conversations.push(...generated);
  for (const c of generated) pdus.push(...c);
  pdus.push(
    encodePdu(makeResponse(3, 0, new Uint8Array(40))),
    encodePdu(makeFault(3, 1, 0x1c010003)),
    encodePdu(makeBindNak(2, 4)),
    genericPdu(PTYPE.SHUTDOWN, 1, new Uint8Array(0)),
  );

  // Odd versions and lengths of KMS messages.
  const odd = requests[0]!.slice();
  odd[2] = 7;
  requests.push(odd, new Uint8Array(0), new Uint8Array(4), Uint8Array.of(0, 0, 6, 0));

  cached = { pdus, conversations, requestStubs, responseStubs, requests, pairs };
  return cached;
}
