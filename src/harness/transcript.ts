/**
 * Transcripts: every PDU a host exchanged, as NDJSON, with the host-clock time, the bytes in hex and
 * the decoded RPC and KMS fields. A transcript is written by a lab host (`record` option, `kmslab serve
 * --record`) and read by replay.ts.
 *
 * Determinism: the records hold nothing that changes between two runs of the same seed, manual clock
 * and client inputs: no wall-clock time, no peer address or port, no listening port. Connection close
 * times are not recorded either (the order in which the host notices two sockets closing is up to the
 * OS); a close the host makes on purpose shows up as a fault record.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { INPUT_LIMITS, readTextBounded } from '../bounded-read.js';
import { cbcDecrypt } from '../crypto/cbc.js';
import { V5_SCHEDULE, V6_SCHEDULE } from '../crypto/keys.js';
import type { Clock } from '../host/clock.js';
import { decodeResponseBody } from '../kms/body.js';
import { decodeRequest, verifyResponse } from '../kms/envelope.js';
import { hresultHex } from '../kms/hresult.js';
import type { KmsResponseBody, NdrSyntax, RequestContext } from '../kms/messages.js';
import { unwrapRequestStub, unwrapResponseStub } from '../kms/stub.js';
import { HOST_MAX_FRAG, NDR32_SYNTAX, NDR64_SYNTAX, PTYPE, ptypeName } from '../rpc/constants.js';
import { decodePdu, readHeader } from '../rpc/decode.js';
import { Framer } from '../rpc/framer.js';
import type { Pdu, PresentationContext } from '../rpc/pdu.js';
import { u16le } from '../wire/bytes.js';
import { fileTimeToIso } from '../wire/filetime.js';
import { hex } from '../wire/utf16.js';
import type { FaultFired } from './faults.js';

const TRANSCRIPT_FORMAT = 'kmslab-transcript';
const TRANSCRIPT_VERSION = 1;

export interface TranscriptHeader {
  type: 'header';
  format: typeof TRANSCRIPT_FORMAT;
  version: typeof TRANSCRIPT_VERSION;
  seed: string;
  /** Host-clock time when recording started. */
  start: string;
  clock: 'manual' | 'system';
  identity: { epids: Record<string, string>; hwid: string };
  profile: { ndr64: boolean; btfn: boolean };
  /** What the records leave out on purpose. */
  excluded: string[];
}

interface TranscriptOpen {
  type: 'open';
  conn: number;
  time: string;
}

/** Decoded KMS request fields (`error` when the message could not be decoded). */
interface KmsRequestFields {
  version?: number;
  ndr: NdrSyntax;
  applicationId?: string;
  skuId?: string;
  kmsId?: string;
  cmid?: string;
  previousCmid?: string;
  requiredCount?: number;
  clientTime?: string;
  licenseStatus?: number;
  bindingExpiration?: number;
  vm?: boolean;
  workstation?: string;
  /** V5/V6 clear-text IV (random by nature). */
  iv?: string;
  integrityOk?: boolean;
  error?: string;
}

/** Decoded KMS response fields. */
interface KmsResponseFields {
  ndr: NdrSyntax;
  hresult: string;
  version?: number;
  epid?: string;
  cmid?: string;
  clientTime?: string;
  count?: number;
  activationInterval?: number;
  renewalInterval?: number;
  /** V6 host hardware id. */
  hwid?: string;
  /** V5/V6 response IV (random by nature for V6). */
  iv?: string;
  /** Whether every client check passed (MAC / hash / HMAC, echoes) against the request of this call. */
  verified?: boolean;
  verifyError?: string;
  error?: string;
}

export interface TranscriptPdu {
  type: 'pdu';
  /** 1, 2, 3, ... over the whole transcript. */
  n: number;
  dir: 'c2s' | 's2c';
  conn: number;
  time: string;
  /** `bind`, `bind_ack`, `request`, ...; `invalid` for bytes that are no PDU. */
  ptype: string;
  callId: number | null;
  len: number;
  /** The host closed the connection after writing only these bytes of a PDU (an injected fault). */
  partial?: true;
  hex: string;
  rpc?: Record<string, unknown>;
  kms?: KmsRequestFields | KmsResponseFields;
  error?: string;
}

interface TranscriptFault {
  type: 'fault';
  conn: number | null;
  time: string;
  rule: string;
  action: string;
  level: string;
  detail?: string;
}

export type TranscriptRecord = TranscriptHeader | TranscriptOpen | TranscriptPdu | TranscriptFault;

// ---------------------------------------------------------------------------------------------------
// Decoding one connection's PDUs

function syntaxOf(uuid: string): NdrSyntax | null {
  if (uuid === NDR32_SYNTAX.uuid) return 'ndr32';
  if (uuid === NDR64_SYNTAX.uuid) return 'ndr64';
  return null;
}

/** Guess for a request on a context we did not see negotiated: NDR32 repeats the size at offset 4. */
function guessSyntax(stub: Uint8Array): NdrSyntax {
  if (stub.length < 8) return 'ndr32';
  const dv = new DataView(stub.buffer, stub.byteOffset, stub.byteLength);
  return dv.getUint32(0, true) === dv.getUint32(4, true) ? 'ndr32' : 'ndr64';
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Decodes the KMS message inside a response stub, independently of the client checks (so a tampered
 * answer still shows its fields), then runs the checks to set `verified`.
 */
function decodeKmsResponse(stub: Uint8Array, ndr: NdrSyntax, ctx: RequestContext | null): KmsResponseFields {
  let un: ReturnType<typeof unwrapResponseStub>;
  try {
    un = unwrapResponseStub(stub, ndr);
  } catch (e) {
    return { ndr, hresult: 'n/a', error: errorText(e) };
  }
  const out: KmsResponseFields = { ndr, hresult: hresultHex(un.hresult) };
  const m = un.message;
  if (!m) return out;
  try {
    const version = m.length >= 4 ? u16le(m, 2) : 0;
    out.version = version;
    let body: KmsResponseBody;
    if (version === 4) {
      body = decodeResponseBody(m, 0, m.length).body;
    } else {
      out.iv = hex(m.subarray(4, 20));
      const padded = cbcDecrypt(version === 5 ? V5_SCHEDULE : V6_SCHEDULE, new Uint8Array(16), m.subarray(4));
      const pad = padded[padded.length - 1]!;
      const end = pad >= 1 && pad <= 16 ? padded.length - pad : padded.length;
      const r = decodeResponseBody(padded, 16, end);
      body = r.body;
      if (version === 6 && end >= r.end + 56)
        out.hwid = hex(padded.subarray(r.end + 48, r.end + 56)).toUpperCase();
    }
    out.epid = body.epid;
    out.cmid = body.cmid;
    out.clientTime = fileTimeToIso(body.clientTime);
    out.count = body.currentCount;
    out.activationInterval = body.activationInterval;
    out.renewalInterval = body.renewalInterval;
  } catch (e) {
    out.error = errorText(e);
  }
  if (ctx) {
    try {
      verifyResponse(m, ctx);
      out.verified = true;
    } catch (e) {
      out.verified = false;
      out.verifyError = errorText(e);
    }
  }
  return out;
}

/**
 * Follows one connection in both directions: which contexts were accepted with which transfer syntax
 * (so a request stub is unwrapped the right way) and which request each response answers (so a V5/V6
 * response can be verified with that request's IV, CMID and time).
 */
export class ConnectionDecoder {
  private offered: PresentationContext[] = [];
  private readonly contexts = new Map<number, NdrSyntax>();
  private readonly calls = new Map<number, { ndr: NdrSyntax; ctx: RequestContext | null }>();

  /** `dir` is informational (the PDU type says which side sent it). */
  decode(
    _dir: 'c2s' | 's2c',
    bytes: Uint8Array,
  ): Pick<TranscriptPdu, 'ptype' | 'callId' | 'rpc' | 'kms' | 'error'> {
    let pdu: Pdu;
    try {
      pdu = decodePdu(bytes);
    } catch (e) {
      let ptype = 'invalid';
      let callId: number | null = null;
      if (bytes.length >= 16) {
        const h = readHeader(bytes);
        ptype = ptypeName(h.type);
        callId = h.callId;
      }
      return { ptype, callId, error: errorText(e) };
    }
    const base = { ptype: ptypeName(pdu.type), callId: pdu.callId };
    switch (pdu.type) {
      case PTYPE.BIND:
      case PTYPE.ALTER_CONTEXT:
        this.offered = pdu.contexts;
        return {
          ...base,
          rpc: {
            flags: pdu.flags,
            assocGroupId: pdu.assocGroupId,
            contexts: pdu.contexts.map((c) => ({
              id: c.contextId,
              abstract: c.abstractSyntax.uuid,
              transfer: c.transferSyntaxes.map((t) => `${t.uuid} v${t.version}`),
            })),
          },
        };
      case PTYPE.BIND_ACK:
      case PTYPE.ALTER_CONTEXT_RESP:
        pdu.results.forEach((r, i) => {
          const id = this.offered[i]?.contextId;
          if (id === undefined) return;
          const s = r.result === 0 ? syntaxOf(r.transferSyntax.uuid) : null;
          if (s) this.contexts.set(id, s);
          else if (pdu.type === PTYPE.ALTER_CONTEXT_RESP) this.contexts.delete(id);
        });
        return {
          ...base,
          rpc: {
            flags: pdu.flags,
            maxXmitFrag: pdu.maxXmitFrag,
            maxRecvFrag: pdu.maxRecvFrag,
            assocGroupId: pdu.assocGroupId,
            secondaryAddress: pdu.secondaryAddress,
            results: pdu.results.map((r) => ({
              result: r.result,
              reason: r.reason,
              transfer: `${r.transferSyntax.uuid} v${r.transferSyntax.version}`,
            })),
          },
        };
      case PTYPE.BIND_NAK:
        return { ...base, rpc: { rejectReason: pdu.rejectReason } };
      case PTYPE.FAULT:
        return {
          ...base,
          rpc: { flags: pdu.flags, contextId: pdu.contextId, status: hresultHex(pdu.status) },
        };
      case PTYPE.REQUEST: {
        const ndr = this.contexts.get(pdu.contextId) ?? guessSyntax(pdu.stub);
        const rpc = { flags: pdu.flags, contextId: pdu.contextId, opnum: pdu.opnum };
        const kms: KmsRequestFields = { ndr };
        try {
          const d = decodeRequest(unwrapRequestStub(pdu.stub, ndr), { lenient: true });
          const b = d.body;
          Object.assign(kms, {
            version: d.version,
            applicationId: b.applicationId,
            skuId: b.skuId,
            kmsId: b.kmsId,
            cmid: b.cmid,
            previousCmid: b.previousCmid,
            requiredCount: b.requiredClientCount,
            clientTime: fileTimeToIso(b.clientTime),
            licenseStatus: b.licenseStatus,
            bindingExpiration: b.bindingExpiration,
            vm: b.vmInfo !== 0,
            workstation: b.workstation,
            ...(d.iv ? { iv: hex(d.iv) } : {}),
            integrityOk: d.integrityOk,
          });
          this.calls.set(pdu.callId, {
            ndr,
            ctx: {
              version: d.version,
              minorVersion: b.minorVersion,
              cmid: b.cmid,
              clientTime: b.clientTime,
              iv: d.iv,
              q: d.q,
            },
          });
        } catch (e) {
          kms.error = errorText(e);
          this.calls.set(pdu.callId, { ndr, ctx: null });
        }
        return { ...base, rpc, kms };
      }
      case PTYPE.RESPONSE: {
        const call = this.calls.get(pdu.callId);
        this.calls.delete(pdu.callId);
        const ndr = call?.ndr ?? this.contexts.get(pdu.contextId) ?? 'ndr32';
        return {
          ...base,
          rpc: { flags: pdu.flags, contextId: pdu.contextId },
          kms: decodeKmsResponse(pdu.stub, ndr, call?.ctx ?? null),
        };
      }
      default:
        return base;
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Recording

export interface TranscriptRecorderOptions {
  clock: Clock;
  /** NDJSON file to write (truncated first); written synchronously, line by line. */
  path?: string;
  /** Keep the lines in memory too (`lines()`). */
  memory?: boolean;
}

/** Writes a transcript as the host runs: header, connection opens, PDUs, fault markers. */
export class TranscriptRecorder {
  private readonly clock: Clock;
  private fd: number | null = null;
  private readonly kept: string[] | null;
  private n = 0;
  private readonly conns = new Map<number, { framer: Framer; decoder: ConnectionDecoder; broken: boolean }>();
  private closed = false;

  constructor(opts: TranscriptRecorderOptions) {
    this.clock = opts.clock;
    this.kept = opts.memory || !opts.path ? [] : null;
    if (opts.path) this.fd = openSync(opts.path, 'w');
  }

  private write(rec: TranscriptRecord): void {
    if (this.closed) return;
    const line = `${JSON.stringify(rec)}\n`;
    if (this.fd !== null) writeSync(this.fd, line);
    this.kept?.push(line);
  }

  private now(): string {
    return new Date(this.clock.now()).toISOString();
  }

  header(h: Omit<TranscriptHeader, 'type' | 'format' | 'version' | 'start' | 'excluded'>): void {
    this.write({
      type: 'header',
      format: TRANSCRIPT_FORMAT,
      version: TRANSCRIPT_VERSION,
      ...h,
      start: this.now(),
      excluded: [
        'wall-clock time (times are the host clock)',
        'peer addresses and ports',
        'the listening port',
        'connection close times',
      ],
    });
  }

  open(conn: number): void {
    this.conns.set(conn, {
      framer: new Framer({ maxPduSize: 0xffff }),
      decoder: new ConnectionDecoder(),
      broken: false,
    });
    this.write({ type: 'open', conn, time: this.now() });
  }

  fault(f: FaultFired): void {
    const rec: TranscriptFault = {
      type: 'fault',
      conn: f.connectionId,
      time: new Date(f.time).toISOString(),
      rule: f.rule,
      action: f.action,
      level: f.level,
    };
    if (f.detail) rec.detail = f.detail;
    this.write(rec);
  }

  /** The server's tap: client chunks are framed into PDUs here; server writes are whole PDUs. */
  pdu(dir: 'c2s' | 's2c', conn: number, bytes: Uint8Array): void {
    let c = this.conns.get(conn);
    if (!c) {
      this.open(conn);
      c = this.conns.get(conn)!;
    }
    if (dir === 's2c') {
      this.emitPdu(dir, conn, bytes.slice(), c.decoder);
      return;
    }
    if (c.broken) {
      this.emitPdu(dir, conn, bytes.slice(), c.decoder);
      return;
    }
    let pdus: Uint8Array[] = [];
    try {
      pdus = c.framer.push(bytes.slice());
    } catch {
      // Not a PDU stream any more: record the bytes as they come from here on.
      c.broken = true;
      this.emitPdu(dir, conn, bytes.slice(), c.decoder);
      return;
    }
    for (const p of pdus) this.emitPdu(dir, conn, p, c.decoder);
    if (c.framer.error) c.broken = true;
  }

  private emitPdu(dir: 'c2s' | 's2c', conn: number, bytes: Uint8Array, decoder: ConnectionDecoder): void {
    const frag = bytes.length >= 10 ? u16le(bytes, 8) : 0;
    const partial = dir === 's2c' && frag > bytes.length;
    const decoded = partial
      ? {
          ptype: bytes.length >= 3 ? ptypeName(bytes[2]!) : 'invalid',
          callId: bytes.length >= 16 ? readHeader(bytes).callId : null,
        }
      : decoder.decode(dir, bytes);
    this.n += 1;
    const rec: TranscriptPdu = {
      type: 'pdu',
      n: this.n,
      dir,
      conn,
      time: this.now(),
      ptype: decoded.ptype,
      callId: decoded.callId,
      len: bytes.length,
      ...(partial ? { partial: true as const } : {}),
      hex: hex(bytes),
      ...('rpc' in decoded && decoded.rpc ? { rpc: decoded.rpc } : {}),
      ...('kms' in decoded && decoded.kms ? { kms: decoded.kms } : {}),
      ...('error' in decoded && decoded.error ? { error: decoded.error } : {}),
    };
    this.write(rec);
  }

  /** The lines so far (only when kept in memory). */
  lines(): string[] | null {
    return this.kept ? [...this.kept] : null;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

// ---------------------------------------------------------------------------------------------------
// Reading

export class TranscriptError extends Error {
  override readonly name = 'TranscriptError';
}

/** Parses NDJSON transcript text (or reads a file when given `{ path }`); checks the header and each record. */
export function parseTranscript(input: string | { path: string }): TranscriptRecord[] {
  const text =
    typeof input === 'string'
      ? input
      : readTextBounded(input.path, INPUT_LIMITS.transcript, 'transcript (NDJSON) file', {
          maxLineBytes: INPUT_LIMITS.transcriptLine,
        });
  const where = typeof input === 'string' ? 'transcript' : input.path;
  const out: TranscriptRecord[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      throw new TranscriptError(`${where}:${i + 1}: not JSON`);
    }
    if (typeof rec !== 'object' || rec === null || typeof (rec as { type?: unknown }).type !== 'string') {
      throw new TranscriptError(`${where}:${i + 1}: a record needs a "type"`);
    }
    const r = rec as TranscriptRecord;
    if (out.length === 0 && (r.type !== 'header' || r.format !== TRANSCRIPT_FORMAT)) {
      throw new TranscriptError(
        `${where}:${i + 1}: not a kmslab transcript (the first line must be its header)`,
      );
    }
    if (r.type === 'header' && r.version !== TRANSCRIPT_VERSION) {
      throw new TranscriptError(
        `${where}:${i + 1}: transcript version ${r.version}, this kmslab reads ${TRANSCRIPT_VERSION}`,
      );
    }
    if (r.type === 'pdu') {
      if (
        (r.dir !== 'c2s' && r.dir !== 's2c') ||
        typeof r.conn !== 'number' ||
        !/^([0-9a-f]{2})*$/.test(r.hex ?? '')
      ) {
        throw new TranscriptError(`${where}:${i + 1}: a pdu record needs dir c2s|s2c, conn and hex`);
      }
    }
    out.push(r);
  });
  if (out.length === 0) throw new TranscriptError(`${where}: empty transcript`);
  return out;
}

/** The recorded exchange of one connection, as client PDUs each followed by the host's answers. */
export interface ConnectionScript {
  conn: number;
  /** Host-clock ms when the connection opened. */
  time: number;
  steps: { send: TranscriptPdu; expect: TranscriptPdu[] }[];
  /** Host PDUs written before the client sent anything (none for KMS). */
  greeting: TranscriptPdu[];
  /** Fault markers recorded on this connection. */
  faults: TranscriptFault[];
  /** The host closed this connection on purpose (close-after-bind, bind-nak, close-mid-response). */
  closedByHost: boolean;
}

const CLOSING_ACTIONS = new Set(['close-after-bind', 'bind-nak', 'close-mid-response']);

/**
 * A transcript as a sequence of connection attempts, in recorded order: each either a connection
 * script or a refusal (an injected refuse-connection fault).
 */
export type ConnectionSlot =
  | { kind: 'connection'; script: ConnectionScript }
  | { kind: 'refused'; time: number; rule: string };

export function connectionSlots(records: readonly TranscriptRecord[]): ConnectionSlot[] {
  const slots: ConnectionSlot[] = [];
  const scripts = new Map<number, ConnectionScript>();
  const scriptFor = (conn: number, time: string): ConnectionScript => {
    let s = scripts.get(conn);
    if (!s) {
      s = { conn, time: Date.parse(time), steps: [], greeting: [], faults: [], closedByHost: false };
      scripts.set(conn, s);
      slots.push({ kind: 'connection', script: s });
    }
    return s;
  };
  for (const r of records) {
    if (r.type === 'open') scriptFor(r.conn, r.time);
    else if (r.type === 'fault' && r.level === 'connection')
      slots.push({ kind: 'refused', time: Date.parse(r.time), rule: r.rule });
    else if (r.type === 'fault' && r.conn !== null) {
      const s = scriptFor(r.conn, r.time);
      s.faults.push(r);
      if (CLOSING_ACTIONS.has(r.action)) s.closedByHost = true;
    } else if (r.type === 'pdu') {
      const s = scriptFor(r.conn, r.time);
      if (r.dir === 'c2s') s.steps.push({ send: r, expect: [] });
      else {
        const last = s.steps[s.steps.length - 1];
        if (last) last.expect.push(r);
        else s.greeting.push(r);
      }
    }
  }
  return slots;
}

/** A frame size no KMS PDU reaches; used by readers of replayed streams. */
export const REPLAY_MAX_PDU = Math.max(HOST_MAX_FRAG, 0xffff);
