/**
 * Fuzz targets. Each one builds an input from the corpus and a Random (`gen`), and returns a `run`
 * closure that feeds it to the code under test. `run` may see values or our ProtocolError from a
 * decoder (`allow` swallows and counts those); anything else it throws is a failure, and so is a broken
 * invariant (`FuzzFailure`). Where the host would crash on *any* throw (KmsService.handleCall,
 * Association.receive: src/server/tcp.ts does not expect them to throw), even a ProtocolError fails.
 */

import { cbcDecrypt, cbcEncrypt, pkcs7Pad } from '../../src/crypto/cbc.js';
import { V4_SCHEDULE, V5_SCHEDULE, V6_SCHEDULE } from '../../src/crypto/keys.js';
import { v4Mac } from '../../src/crypto/v4-mac.js';
import { ManualClock } from '../../src/host/clock.js';
import type { Random } from '../../src/host/random.js';
import { SeededRandom } from '../../src/host/random.js';
import { KmsService } from '../../src/host/service.js';
import {
  decodeRequestBody as decodeKmsRequestBody,
  decodeResponseBody as decodeKmsResponseBody,
} from '../../src/kms/body.js';
import { decodeRequest, messageVersion, verifyResponse } from '../../src/kms/envelope.js';
import type { NdrSyntax, RequestContext } from '../../src/kms/messages.js';
import {
  MAX_MESSAGE_SIZE,
  unwrapRequestStub,
  unwrapResponseStub,
  wrapRequestStub,
} from '../../src/kms/stub.js';
import { Association } from '../../src/rpc/association.js';
import { HOST_MAX_FRAG, PFC, PTYPE } from '../../src/rpc/constants.js';
import {
  decodeBindAckBody,
  decodeBindBody,
  decodeBindNakBody,
  decodeContextElement,
  decodeFaultBody,
  decodeGenericBody,
  decodeHeader,
  decodePdu,
  decodeRequestBody,
  decodeResponseBody,
  readHeader,
} from '../../src/rpc/decode.js';
import { encodePdu } from '../../src/rpc/encode.js';
import { Framer } from '../../src/rpc/framer.js';
import { MemoryStore } from '../../src/store/memory.js';
import { ProtocolError } from '../../src/wire/errors.js';
import { Reader } from '../../src/wire/reader.js';
import type { Corpus, MessagePair } from './corpus.js';
import {
  chunk,
  fixFragLength,
  MESSAGE_FIELDS,
  mutate,
  PLAIN_RESPONSE_FIELDS,
  pduFields,
  pick,
  requestStubFields,
  responseStubFields,
} from './mutate.js';

/** A broken invariant (as opposed to an unexpected exception from the code under test). */
export class FuzzFailure extends Error {
  override readonly name = 'FuzzFailure';
}

export interface FuzzCase {
  /** The input bytes (one part, or chunks / PDUs in order). */
  parts: Uint8Array[];
  /** Everything else the run depends on (syntax, options, request context). */
  note: string;
  run(): void;
}

export interface Target {
  name: string;
  /** Share of the iterations this target gets. */
  weight: number;
  gen(r: Random, c: Corpus): FuzzCase;
}

/** What `allow` saw during a run: values vs ProtocolError codes. */
export const outcomes = { values: 0, errors: new Map<string, number>() };

/** Runs `f`; returns its value, or undefined after a ProtocolError (counted). Anything else propagates. */
export function allow<T>(f: () => T): T | undefined {
  try {
    const v = f();
    outcomes.values += 1;
    return v;
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    outcomes.errors.set(e.code, (outcomes.errors.get(e.code) ?? 0) + 1);
    return undefined;
  }
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new FuzzFailure(what);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return (
    a.length === b.length &&
    Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length))
  );
}

function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

const hex = (b: Uint8Array | null) => (b ? Buffer.from(b).toString('hex') : 'null');
const ctxNote = (c: RequestContext) =>
  `ctx v${c.version}.${c.minorVersion} cmid=${c.cmid} time=${c.clientTime} iv=${hex(c.iv)} q=${hex(c.q)}`;

/**
 * Half of the time, the chunks as Buffers (what a socket delivers: a Buffer subclass, often a view at a
 * non-zero offset of a larger pool), else plain Uint8Arrays.
 */
function asSocketChunks(r: Random, chunks: Uint8Array[]): Uint8Array[] {
  return r.below(2) === 0 ? chunks : chunks.map((c) => Buffer.from(c));
}

/** A mutated PDU; frag_length fixed half of the time so the body decoders are reached. */
function mutatedPdu(r: Random, c: Corpus): Uint8Array {
  const base = pick(r, c.pdus);
  if (r.below(8) === 0) return base;
  const m = mutate(r, base, pduFields, c.pdus);
  return r.below(2) === 0 ? fixFragLength(m) : m;
}

// ---------------------------------------------------------------------------------------------------
// RPC layer

const framer: Target = {
  name: 'framer',
  weight: 12,
  gen(r, c) {
    const pieces: Uint8Array[] = [];
    const k = 1 + r.below(4);
    for (let i = 0; i < k; i++) pieces.push(mutatedPdu(r, c));
    if (r.below(8) === 0) pieces.push(r.bytes(r.below(64)));
    const stream = concat(pieces);
    const chunks = asSocketChunks(r, chunk(r, stream));
    const maxPduSize = pick(r, [16, 24, 64, 300, 1024, 5840, 65535]);
    const early = r.below(2) === 0;
    return {
      parts: chunks,
      note: `maxPduSize=${maxPduSize} checkHeader=${early}`,
      run() {
        const f = new Framer({ maxPduSize, ...(early ? { checkHeader: (h) => void decodeHeader(h) } : {}) });
        let pushed = 0;
        let out = 0;
        let failed: ProtocolError | undefined;
        for (const ch of chunks) {
          pushed += ch.length;
          let pdus: Uint8Array[];
          try {
            pdus = f.push(ch);
          } catch (e) {
            if (!(e instanceof ProtocolError)) throw e;
            failed = e;
            break;
          }
          for (const p of pdus) {
            check(p.length >= 16 && p.length <= maxPduSize, `framer returned a ${p.length}-byte PDU`);
            check((p[8]! | (p[9]! << 8)) === p.length, 'framer returned a PDU whose frag_length differs');
            check(equal(p, stream.subarray(out, out + p.length)), 'framer returned bytes out of order');
            out += p.length;
          }
          if (f.error) {
            failed = f.error;
            break;
          }
        }
        if (failed) {
          // Errors are sticky.
          let again: unknown;
          try {
            f.push(Uint8Array.of(5));
          } catch (e) {
            again = e;
          }
          check(again === failed, 'framer error is not sticky');
        } else {
          check(
            out + f.pendingBytes === pushed,
            `framer lost bytes: ${out} out + ${f.pendingBytes} pending ≠ ${pushed}`,
          );
        }
      },
    };
  },
};

const pdu: Target = {
  name: 'decodePdu',
  weight: 14,
  gen(r, c) {
    const b = r.below(16) === 0 ? r.bytes(r.below(48)) : mutatedPdu(r, c);
    return {
      parts: [b],
      note: '',
      run() {
        allow(() => readHeader(b));
        allow(() => decodeHeader(b));
        const p = allow(() => decodePdu(b));
        if (!p) return;
        check(p.type === b[2], 'decoded PTYPE differs from the byte');
        // What decodes re-encodes, and the re-encoding decodes again. Known exception (documented in
        // test/property/rpc/fuzz.test.ts): a bind_ack / alter_context_resp whose sec_addr is a lone NUL
        // decodes as '' and re-encodes with length 0, so its kept pad bytes no longer fit (ProtocolError).
        const again = allow(() => encodePdu(p));
        const loneNul =
          'secondaryAddress' in p && p.secondaryAddress === '' && (b[24]! | (b[25]! << 8)) === 1;
        if (again === undefined && loneNul) return;
        check(again !== undefined, 'a decoded PDU does not re-encode');
        const p2 = allow(() => decodePdu(again!));
        check(p2 !== undefined && p2.type === p.type, 'a re-encoded PDU does not decode');
      },
    };
  },
};

type BodyDecoder = (r: Reader, flags: number) => unknown;
const BODY_DECODERS: [string, BodyDecoder][] = [
  ['decodeBindBody', (r) => decodeBindBody(r)],
  ['decodeContextElement', (r) => decodeContextElement(r)],
  ['decodeBindAckBody', (r) => decodeBindAckBody(r)],
  ['decodeBindNakBody', (r) => decodeBindNakBody(r)],
  ['decodeRequestBody', (r, flags) => decodeRequestBody(r, flags)],
  ['decodeResponseBody', (r) => decodeResponseBody(r)],
  ['decodeFaultBody', (r) => decodeFaultBody(r)],
  ['decodeGenericBody', (r) => decodeGenericBody(r)],
];

const bodies: Target = {
  name: 'pdu-bodies',
  weight: 10,
  gen(r, c) {
    const b = r.below(8) === 0 ? r.bytes(r.below(200)) : mutate(r, pick(r, c.pdus), pduFields, c.pdus);
    const [name, decode] = pick(r, BODY_DECODERS);
    // A body decoder gets a Reader at PDU offset 16 (sometimes elsewhere) ending at or before the end.
    const start = r.below(4) === 0 ? r.below(b.length + 1) : Math.min(16, b.length);
    const end = r.below(4) === 0 ? start + r.below(b.length - start + 1) : b.length;
    const flags = r.below(256);
    return {
      parts: [b],
      note: `${name} start=${start} end=${end} flags=${flags}`,
      run() {
        allow(() => decode(new Reader(b, start, end), flags));
      },
    };
  },
};

/** Drives an Association like src/server/tcp.ts does, checking every action. */
function driveAssociation(
  chunks: Uint8Array[],
  opts: { ndr64: boolean; btfn: boolean; maxPduSize: number; maxCallSize: number },
  stubLengths: number[],
): void {
  const assoc = new Association({
    profile: { ndr64: opts.ndr64, btfn: opts.btfn },
    secondaryAddress: '1688',
    maxPduSize: opts.maxPduSize,
    maxCallSize: opts.maxCallSize,
    newAssocGroupId: () => 0x1234,
  });
  let closed = false;
  let calls = 0;
  for (const ch of chunks) {
    // tcp.ts treats any throw from receive() as a bug (it logs "association failed"): so do we.
    const actions = assoc.receive(ch);
    for (const a of actions) {
      check(!closed, `association produced a ${a.type} action after its close action`);
      switch (a.type) {
        case 'send': {
          let d: ReturnType<typeof decodePdu>;
          try {
            d = decodePdu(a.bytes);
          } catch (e) {
            throw new FuzzFailure(`the host would send an undecodable PDU (${(e as Error).message})`);
          }
          check(d.type === a.pdu.type, 'sent bytes do not match the PDU object');
          break;
        }
        case 'call': {
          check(a.call.opnum === 0, `call with opnum ${a.call.opnum} dispatched`);
          // (Whether the call is still pending or its context still accepted is not checked: a later PDU of
          // the same chunk, an alter_context or a co_cancel, may have changed that before we get here.)
          const n = stubLengths[calls++ % stubLengths.length]!;
          if (n < 0) {
            const f = decodePdu(assoc.fault(a.call, 0x1c010002));
            check(f.type === PTYPE.FAULT && f.callId === a.call.callId, 'bad fault PDU');
            break;
          }
          const stub = new Uint8Array(n).map((_, i) => i & 0xff);
          const bytes = assoc.respond(a.call, stub);
          // Cut the answer back into PDUs: every fragment decodes, fits the host's maximum, and the stubs
          // put together are the stub.
          const fr = new Framer({ maxPduSize: 0xffff });
          const frags = fr.push(bytes);
          check(fr.pendingBytes === 0, 'response bytes are not whole PDUs');
          const got: Uint8Array[] = [];
          frags.forEach((fb, i) => {
            const p = decodePdu(fb);
            check(
              p.type === PTYPE.RESPONSE && p.callId === a.call.callId,
              'response fragment has the wrong type or call id',
            );
            check(fb.length <= HOST_MAX_FRAG, `response fragment of ${fb.length} bytes`);
            if (p.type !== PTYPE.RESPONSE) return;
            check(((p.flags & PFC.FIRST_FRAG) !== 0) === (i === 0), 'PFC_FIRST_FRAG on the wrong fragment');
            check(
              ((p.flags & PFC.LAST_FRAG) !== 0) === (i === frags.length - 1),
              'PFC_LAST_FRAG on the wrong fragment',
            );
            got.push(p.stub);
          });
          check(equal(concat(got), stub), 'response fragments do not reassemble to the stub');
          check(!assoc.isPending(a.call.callId), 'answered call still pending');
          break;
        }
        case 'close':
          closed = true;
          check(
            a.error === undefined || a.error instanceof ProtocolError,
            'close carries a non-protocol error',
          );
          break;
        case 'note':
          break;
      }
    }
    if (closed) check(assoc.state === 'closed', `close action but state ${assoc.state}`);
  }
  if (assoc.state === 'closed')
    check(assoc.receive(Uint8Array.of(5, 0, 11)).length === 0, 'a closed association answered');
}

const association: Target = {
  name: 'association',
  weight: 14,
  gen(r, c) {
    const pdus = pick(r, c.conversations).slice();
    const edits = r.below(4);
    for (let i = 0; i < edits; i++) {
      const at = r.below(pdus.length + 1);
      switch (r.below(4)) {
        case 0:
          pdus.splice(at, 0, mutatedPdu(r, c)); // insert a mutated PDU
          break;
        case 1:
          if (at < pdus.length) pdus.splice(at, 1); // drop one
          break;
        default:
          if (at < pdus.length) {
            const m = mutate(r, pdus[at]!, pduFields, c.pdus);
            pdus[at] = r.below(2) === 0 ? fixFragLength(m) : m;
          }
      }
    }
    if (r.below(6) === 0) pdus.push(pdus[0] ?? r.bytes(20)); // a second bind, or the first PDU again
    const stream = concat(pdus);
    const chunks = asSocketChunks(r, chunk(r, stream));
    const opts = {
      ndr64: r.below(4) !== 0,
      btfn: r.below(4) !== 0,
      maxPduSize: pick(r, [5840, 5840, 65535, 1024, 300]),
      maxCallSize: pick(r, [65536, 65536, 16384, 256, 64]),
    };
    const stubLengths = Array.from({ length: 4 }, () =>
      r.below(6) === 0 ? -1 : r.below(4) === 0 ? r.below(20_000) : r.below(400),
    );
    return {
      parts: chunks,
      note: `${JSON.stringify(opts)} answers=${stubLengths.join(',')}`,
      run: () => driveAssociation(chunks, opts, stubLengths),
    };
  },
};

// ---------------------------------------------------------------------------------------------------
// KMS layer

const ZERO_IV = new Uint8Array(16);
const scheduleOf = (major: number) => (major === 5 ? V5_SCHEDULE : major === 6 ? V6_SCHEDULE : V4_SCHEDULE);

/** Block-aligned: cut to a multiple of 16 (at least one block), or zero-extend. */
function blocks(b: Uint8Array, extend: boolean): Uint8Array {
  const n = extend ? Math.max(16, Math.ceil(b.length / 16) * 16) : Math.max(16, b.length - (b.length % 16));
  const out = new Uint8Array(n);
  out.set(b.subarray(0, n));
  return out;
}

/**
 * A mutated KMS request message: raw bytes, or (V5/V6) decrypted + mutated + re-encrypted so the
 * mutation lands in the plaintext, or (V4) mutated with its MAC recomputed.
 */
function mutatedRequest(r: Random, c: Corpus): { message: Uint8Array; mode: string } {
  const base = pick(r, c.requests);
  const major = base.length >= 4 ? base[2]! : 0;
  const mode = r.below(3);
  if (mode === 1 && (major === 5 || major === 6) && base.length >= 260) {
    const ks = scheduleOf(major);
    const plain = cbcDecrypt(ks, ZERO_IV, base.subarray(4, 260));
    const fields = [
      { offset: 16, width: 2 as const },
      { offset: 18, width: 2 as const },
      { offset: 252, width: 4 as const },
      { offset: 16 + 52, width: 4 as const }, // RequiredClientCount
      { offset: 16 + 56, width: 8 as const }, // ClientTime
    ];
    const m = blocks(
      mutate(r, plain, () => fields, []),
      r.below(2) === 0,
    );
    const out = concat([base.subarray(0, 4), cbcEncrypt(ks, ZERO_IV, m)]);
    return { message: out, mode: 'plaintext' };
  }
  if (mode === 2 && major === 4 && base.length >= 252) {
    // Mutate the 236-byte base request, then give it a good MAC so the body decoder is reached.
    const m = mutate(r, base.subarray(0, 236), () => MESSAGE_FIELDS, []);
    const out = new Uint8Array(Math.max(236, m.length) + 16);
    out.set(m);
    out.set(v4Mac(out.subarray(0, 236)), 236);
    return { message: out, mode: 'v4-remac' };
  }
  return { message: mutate(r, base, () => MESSAGE_FIELDS, c.requests), mode: 'raw' };
}

const kmsRequest: Target = {
  name: 'kms-request',
  weight: 10,
  gen(r, c) {
    const { message, mode } =
      r.below(16) === 0 ? { message: r.bytes(r.below(300)), mode: 'random' } : mutatedRequest(r, c);
    const at = r.below(message.length + 1);
    return {
      parts: [message],
      note: `${mode} body-at=${at}`,
      run() {
        allow(() => messageVersion(message));
        const strict = allow(() => decodeRequest(message));
        const lenient = allow(() => decodeRequest(message, { lenient: true }));
        if (strict) {
          check(strict.integrityOk, 'strict decode returned integrityOk false');
          check(
            lenient !== undefined && lenient.body.cmid === strict.body.cmid,
            'lenient decode refused what strict accepted',
          );
        }
        // The base-request decoder on its own, at any offset that leaves it 236 bytes.
        if (message.length - at >= 236) allow(() => decodeKmsRequestBody(message, at));
      },
    };
  },
};

/** What a response mutation produced and the context it is checked against. */
function mutatedResponse(r: Random, c: Corpus): { message: Uint8Array; ctx: RequestContext; mode: string } {
  const pair: MessagePair = pick(r, c.pairs);
  // Mostly its own context; sometimes another request's (a response to someone else).
  const ctx = r.below(8) === 0 ? pick(r, c.pairs).context : pair.context;
  const base = pair.response;
  const mode = r.below(3);
  if (mode === 1 && pair.version !== 4) {
    const ks = scheduleOf(pair.version);
    const padded = cbcDecrypt(ks, ZERO_IV, base.subarray(4));
    const pad = padded[padded.length - 1]!;
    const unpadded = padded.subarray(0, padded.length - pad);
    const plainFields = () => [...PLAIN_RESPONSE_FIELDS, { offset: unpadded.length - 1, width: 1 as const }];
    // Either re-pad properly (reaches the body and trailer checks) or mutate the padded text.
    const m =
      r.below(3) !== 0
        ? pkcs7Pad(mutate(r, unpadded, plainFields, []))
        : blocks(mutate(r, padded, plainFields, []), r.below(2) === 0);
    return { message: concat([base.subarray(0, 4), cbcEncrypt(ks, ZERO_IV, m)]), ctx, mode: 'plaintext' };
  }
  if (mode === 2 && pair.version === 4) {
    const m = mutate(r, base, () => MESSAGE_FIELDS, []);
    try {
      const { end } = decodeKmsResponseBody(m, 0, m.length);
      const out = new Uint8Array(end + 16);
      out.set(m.subarray(0, end));
      out.set(v4Mac(out.subarray(0, end)), end);
      return { message: out, ctx, mode: 'v4-remac' };
    } catch {
      return { message: m, ctx, mode: 'v4-remac-failed' };
    }
  }
  return {
    message: mutate(
      r,
      base,
      () => MESSAGE_FIELDS,
      c.pairs.map((p) => p.response),
    ),
    ctx,
    mode: 'raw',
  };
}

const kmsResponse: Target = {
  name: 'kms-response',
  weight: 10,
  gen(r, c) {
    const { message, ctx, mode } =
      r.below(16) === 0
        ? { message: r.bytes(r.below(300)), ctx: pick(r, c.pairs).context, mode: 'random' }
        : mutatedResponse(r, c);
    const at = r.below(message.length + 1);
    const end = at + r.below(message.length - at + 1);
    return {
      parts: [message],
      note: `${mode} body-range=${at}..${end} ${ctxNote(ctx)}`,
      run() {
        const v = allow(() => verifyResponse(message, ctx));
        if (v)
          check(
            v.body.cmid === ctx.cmid && v.version === ctx.version,
            'verified a response that does not echo',
          );
        allow(() => decodeKmsResponseBody(message, at, end));
        if (message.length > 4 && (message.length - 4) % 16 === 0 && message[2]! >= 5) {
          const plain = cbcDecrypt(scheduleOf(message[2]!), ZERO_IV, message.subarray(4));
          allow(() => decodeKmsResponseBody(plain, 16, plain.length));
        }
      },
    };
  },
};

const kmsStubs: Target = {
  name: 'kms-stubs',
  weight: 10,
  gen(r, c) {
    const request = r.below(2) === 0;
    const item = request ? pick(r, c.requestStubs) : pick(r, c.responseStubs);
    const ndr: NdrSyntax = r.below(5) === 0 ? (item.ndr === 'ndr32' ? 'ndr64' : 'ndr32') : item.ndr;
    const fields = request ? () => requestStubFields(ndr) : (b: Uint8Array) => responseStubFields(ndr, b);
    const stub =
      r.below(16) === 0
        ? r.bytes(r.below(64))
        : mutate(
            r,
            item.stub,
            fields,
            request ? c.requestStubs.map((s) => s.stub) : c.responseStubs.map((s) => s.stub),
          );
    const ctx = pick(r, c.pairs).context;
    return {
      parts: [stub],
      note: `${request ? 'request' : 'response'} stub ${ndr} ${ctxNote(ctx)}`,
      run() {
        if (request) {
          const m = allow(() => unwrapRequestStub(stub, ndr));
          if (m) {
            check(m.length >= 4 && m.length <= MAX_MESSAGE_SIZE, `unwrapped a ${m.length}-byte message`);
            check(m.buffer === stub.buffer, 'unwrapRequestStub returned bytes outside the stub');
            allow(() => decodeRequest(m));
          }
        } else {
          const u = allow(() => unwrapResponseStub(stub, ndr));
          if (u?.message) {
            check(u.message.length <= MAX_MESSAGE_SIZE, 'response message over the cap');
            allow(() => verifyResponse(u.message!, ctx));
          }
        }
      },
    };
  },
};

// ---------------------------------------------------------------------------------------------------
// The host's KMS service: tcp.ts rethrows a ProtocolError from handleCall (uncaught: the process
// would die), so here *every* throw is a failure.

const POLICIES = [
  {},
  { lenient: true },
  { refuseUnknown: true, refuseRetail: true, refuseMismatch: true, maxClockSkewMs: 4 * 3600_000 },
];
let services: KmsService[] | null = null;
let serviceCalls = 0;

function service(i: number): KmsService {
  // Start over now and then: fresh pools, and small memory stores.
  if (!services || serviceCalls++ > 2000) {
    serviceCalls = 0;
    services = POLICIES.map(
      (policy, k) =>
        new KmsService({
          clock: new ManualClock(Date.UTC(2026, 0, 1)),
          random: new SeededRandom(`fuzz-service-${k}`),
          store: new MemoryStore(),
          policy,
        }),
    );
  }
  return services[i]!;
}

const kmsService: Target = {
  name: 'kms-service',
  weight: 6,
  gen(r, c) {
    const p = r.below(POLICIES.length);
    let ndr: NdrSyntax;
    let stub: Uint8Array;
    if (r.below(2) === 0) {
      const item = pick(r, c.requestStubs);
      ndr = item.ndr;
      stub = mutate(r, item.stub, () => requestStubFields(ndr), []);
    } else {
      ndr = r.below(2) === 0 ? 'ndr32' : 'ndr64';
      stub = wrapRequestStub(mutatedRequest(r, c).message, ndr);
    }
    return {
      parts: [stub],
      note: `${ndr} policy=${JSON.stringify(POLICIES[p])}`,
      run() {
        const out = service(p).handleCall(stub, ndr, { peer: 'fuzz', connectionId: 1 });
        if (out.kind === 'response') {
          // The answer must unwrap.
          const u = unwrapResponseStub(out.stub, ndr);
          check(typeof u.hresult === 'number', 'response stub without an HRESULT');
        } else {
          check(Number.isInteger(out.status), 'fault without a status');
        }
      },
    };
  },
};

// ---------------------------------------------------------------------------------------------------

/** Plain random bytes at every entry point. */
const random: Target = {
  name: 'random-bytes',
  weight: 4,
  gen(r, c) {
    const b = r.bytes(r.below(r.below(4) === 0 ? 2000 : 300));
    const ctx = pick(r, c.pairs).context;
    return {
      parts: [b],
      note: ctxNote(ctx),
      run() {
        allow(() => new Framer({ maxPduSize: 5840 }).push(b));
        allow(() => decodePdu(b));
        driveAssociation([b], { ndr64: true, btfn: true, maxPduSize: 5840, maxCallSize: 65536 }, [10]);
        for (const ndr of ['ndr32', 'ndr64'] as const) {
          allow(() => unwrapRequestStub(b, ndr));
          allow(() => unwrapResponseStub(b, ndr));
        }
        allow(() => decodeRequest(b));
        allow(() => decodeRequest(b, { lenient: true }));
        allow(() => verifyResponse(b, ctx));
        allow(() => decodeKmsResponseBody(b, 0, b.length));
      },
    };
  },
};

export const TARGETS: readonly Target[] = [
  framer,
  pdu,
  bodies,
  association,
  kmsRequest,
  kmsResponse,
  kmsStubs,
  kmsService,
  random,
];
