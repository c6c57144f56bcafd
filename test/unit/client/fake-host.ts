/**
 * Tiny KMS hosts for client tests, on 127.0.0.1 with an ephemeral port. Two kinds:
 * - `replayHost(capture)`: answers each client PDU with the server PDUs that followed it in a captured
 *   vlmcsd conversation (optionally altered), and records what the client sent.
 * - `miniHost(opts)`: a real, minimal responder built from src/kms + src/rpc (not src/server), for
 *   cases a capture cannot cover (other CMIDs, tampered answers, error HRESULTs).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { tamperStub } from '../../../src/harness/tamper.js';
import { SeededRandom } from '../../../src/host/random.js';
import { decodeRequest, encodeResponse } from '../../../src/kms/envelope.js';
import type { KmsResponseBody, NdrSyntax } from '../../../src/kms/messages.js';
import { unwrapRequestStub, wrapErrorStub, wrapResponseStub } from '../../../src/kms/stub.js';
import { NDR32_SYNTAX, NDR64_SYNTAX, NULL_SYNTAX, PTYPE } from '../../../src/rpc/constants.js';
import { decodePdu } from '../../../src/rpc/decode.js';
import { encodePdu } from '../../../src/rpc/encode.js';
import { Framer } from '../../../src/rpc/framer.js';
import {
  btfnBitmask,
  type ContextResult,
  makeAlterContextResp,
  makeBindAck,
  makeResponse,
  type Pdu,
} from '../../../src/rpc/pdu.js';
import { fromHex } from '../../../src/wire/utf16.js';
import type { Capture } from '../../helpers/fixtures.js';

export interface FakeHost {
  port: number;
  /** PDUs received, per connection in accept order. */
  received: Uint8Array[][];
  close(): Promise<void>;
}

/** What to do with one client PDU: PDUs to send back, then optionally close. */
export interface Reply {
  send: Uint8Array[];
  close?: boolean;
}

export type Handler = (pdu: Uint8Array, conn: number, index: number) => Reply;

export async function startHost(handler: Handler): Promise<FakeHost> {
  const received: Uint8Array[][] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    const conn = received.length;
    const mine: Uint8Array[] = [];
    received.push(mine);
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    const framer = new Framer({ maxPduSize: 65535 });
    sock.on('data', (chunk: Buffer) => {
      let pdus: Uint8Array[];
      try {
        pdus = framer.push(new Uint8Array(chunk));
      } catch {
        sock.destroy();
        return;
      }
      for (const p of pdus) {
        const copy = p.slice();
        mine.push(copy);
        const r = handler(copy, conn, mine.length - 1);
        for (const out of r.send) sock.write(out);
        if (r.close) {
          sock.end();
          return;
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return {
    port: addr.port,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Per connection, per client PDU: the captured server PDUs that answered it, and whether the host then closed. */
export function replayScript(cap: Capture): { c2s: Uint8Array; s2c: Uint8Array[]; closeAfter: boolean }[][] {
  const conns: { c2s: Uint8Array; s2c: Uint8Array[]; closeAfter: boolean }[][] = [];
  const events =
    (
      cap as Capture & {
        connection_events?: { conn: number; dir: string; event: string; after_pdu_count: number }[];
      }
    ).connection_events ?? [];
  cap.pdus.forEach((p, i) => {
    if (!p.hex) return;
    const steps = conns[p.conn] ?? [];
    conns[p.conn] = steps;
    if (p.dir === 'c2s') steps.push({ c2s: fromHex(p.hex), s2c: [], closeAfter: false });
    else steps[steps.length - 1]?.s2c.push(fromHex(p.hex));
    const eof = events.find(
      (e) => e.conn === p.conn && e.dir === 's2c' && e.event === 'eof' && e.after_pdu_count === i + 1,
    );
    const last = steps[steps.length - 1];
    // The server closing after this PDU while the client still had something to say.
    if (
      eof &&
      last &&
      p.dir === 's2c' &&
      cap.pdus.slice(i + 1).some((q) => q.conn === p.conn && q.dir === 'c2s')
    ) {
      last.closeAfter = true;
    }
  });
  return conns;
}

/**
 * Replays a capture's server side. `alter(pdu, conn, index)` may rewrite a server PDU (index counts the
 * server PDUs of that connection). A client PDU beyond the script makes the host close.
 */
export function replayHost(
  cap: Capture,
  alter?: (pdu: Uint8Array, conn: number, index: number) => Uint8Array,
): Promise<FakeHost> {
  const script = replayScript(cap);
  const sent: number[] = [];
  return startHost((_pdu, conn, index) => {
    const step = script[conn]?.[index];
    if (!step) return { send: [], close: true };
    const out = step.s2c.map((b) => {
      const k = sent[conn] ?? 0;
      sent[conn] = k + 1;
      return alter ? alter(b.slice(), conn, k) : b;
    });
    return { send: out, close: step.closeAfter };
  });
}

export interface MiniHostOptions {
  epid?: string;
  count?: number;
  activationInterval?: number;
  renewalInterval?: number;
  hwid?: Uint8Array;
  /** Prefer NDR64 like a Windows 8+ host / vlmcsd (reject NDR32 when NDR64 is offered). Default true. */
  ndr64?: boolean;
  /** Answer this HRESULT in an error stub instead of a response. */
  hresult?: number;
  /** Rewrite the response body before encoding (wrong echoes). */
  body?: (b: KmsResponseBody) => KmsResponseBody;
  /** Damage the answer the way the lab's `tamper` fault does (tamperStub, src/harness/tamper.ts). */
  tamper?: 'mac' | 'ciphertext';
  /** Rewrite the whole response PDU (bytes) before sending. */
  pdu?: (b: Uint8Array) => Uint8Array;
  seed?: number;
}

export const MINI_EPID = '03612-00206-556-123727-03-1033-17763.0000-2972018';
export const MINI_HWID = fromHex('3a1c049600b60076');

function result(accept: boolean, syntax: { uuid: string; version: number }): ContextResult {
  return accept
    ? { result: 0, reason: 0, transferSyntax: { uuid: syntax.uuid, version: syntax.version } }
    : { result: 2, reason: 2, transferSyntax: { ...NULL_SYNTAX } };
}

export function miniHost(opts: MiniHostOptions = {}): Promise<FakeHost> {
  const random = new SeededRandom(opts.seed ?? 1);
  const ctxs: Map<number, NdrSyntax>[] = [];
  return startHost((bytes, conn) => {
    const table = ctxs[conn] ?? new Map<number, NdrSyntax>();
    ctxs[conn] = table;
    const pdu: Pdu = decodePdu(bytes);
    if (pdu.type === PTYPE.BIND || pdu.type === PTYPE.ALTER_CONTEXT) {
      const offersNdr64 = pdu.contexts.some((c) => c.transferSyntaxes[0]?.uuid === NDR64_SYNTAX.uuid);
      const results = pdu.contexts.map((c): ContextResult => {
        const ts = c.transferSyntaxes[0]!;
        if (btfnBitmask(ts))
          return { result: 3, reason: btfnBitmask(ts)![0]! & 3, transferSyntax: { ...NULL_SYNTAX } };
        if (ts.uuid === NDR64_SYNTAX.uuid) {
          const ok = opts.ndr64 ?? true;
          if (ok) table.set(c.contextId, 'ndr64');
          return result(ok, NDR64_SYNTAX);
        }
        if (ts.uuid === NDR32_SYNTAX.uuid) {
          const ok = pdu.type === PTYPE.ALTER_CONTEXT || !offersNdr64 || opts.ndr64 === false;
          if (ok) table.set(c.contextId, 'ndr32');
          return result(ok, NDR32_SYNTAX);
        }
        return result(false, NULL_SYNTAX);
      });
      const body = { maxXmitFrag: 5840, maxRecvFrag: 5840, assocGroupId: 0x1234, results };
      const out =
        pdu.type === PTYPE.BIND
          ? makeBindAck(pdu.callId, pdu.flags & 0x13, { ...body, secondaryAddress: '1688' })
          : makeAlterContextResp(pdu.callId, 0x03, { ...body, secondaryAddress: '' });
      return { send: [encodePdu(out)] };
    }
    if (pdu.type === PTYPE.REQUEST) {
      const ndr = table.get(pdu.contextId) ?? 'ndr32';
      let stub: Uint8Array;
      if (opts.hresult !== undefined) {
        stub = wrapErrorStub(opts.hresult, ndr);
      } else {
        const req = decodeRequest(unwrapRequestStub(pdu.stub, ndr));
        let body: KmsResponseBody = {
          minorVersion: 0,
          majorVersion: req.version,
          epid: opts.epid ?? MINI_EPID,
          cmid: req.body.cmid,
          clientTime: req.body.clientTime,
          currentCount: opts.count ?? 50,
          activationInterval: opts.activationInterval ?? 120,
          renewalInterval: opts.renewalInterval ?? 10080,
        };
        if (opts.body) body = opts.body(body);
        const message = encodeResponse(req, body, {
          random: (n) => random.bytes(n),
          hwid: opts.hwid ?? MINI_HWID,
        });
        stub = wrapResponseStub(message, ndr);
        if (opts.tamper) stub = tamperStub(stub, opts.tamper, req.version, ndr);
      }
      let out = encodePdu(makeResponse(pdu.callId, pdu.contextId, stub));
      if (opts.pdu) out = opts.pdu(out);
      return { send: [out] };
    }
    return { send: [], close: true };
  });
}

/** A port on 127.0.0.1 with nothing listening (bound then released). */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const addr = s.address();
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return addr.port;
}
