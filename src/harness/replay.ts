/**
 * Replaying transcripts, both ways:
 *
 * - `replayTranscript` plays the recorded client side against any host and reports where the host's
 *   answers differ from the recorded ones: PDU types, call ids, bind results, fault statuses,
 *   HRESULTs and decoded KMS fields. What is random by nature is not compared (association group ids,
 *   V5/V6 IVs and ciphertext, the random values inside it); the ePID and HwId are compared apart, as
 *   "identity" differences, since another host legitimately has another identity.
 * - `serveTranscript` plays the recorded host side to a client under test: each client PDU is answered
 *   with the PDUs the host sent after the corresponding recorded client PDU, with the call_id patched
 *   to the client's.
 */
import net from 'node:net';
import { Framer } from '../rpc/framer.js';
import { fromHex } from '../wire/utf16.js';
import {
  ConnectionDecoder,
  type ConnectionScript,
  connectionSlots,
  parseTranscript,
  REPLAY_MAX_PDU,
  type TranscriptPdu,
  type TranscriptRecord,
} from './transcript.js';

export interface ReplayOptions {
  host: string;
  port: number;
  /** How long to wait for each answer (and for a refused or closing connection). Default 5000 ms. */
  timeoutMs?: number;
  /**
   * Sets the target's clock to the recorded host time before each client PDU (e.g. a lab host's
   * `setTime`, or `POST /clock/set` on its control API). Without it the target keeps its own time.
   */
  setClock?: (ms: number) => Promise<unknown> | unknown;
  /** Count ePID / HwId differences as differences. Default false. */
  strictIdentity?: boolean;
}

export interface ReplayDifference {
  /** Recorded connection id. */
  conn: number;
  /** Transcript record number (`n`) of the recorded host PDU, or of the client PDU for missing answers. */
  n: number | null;
  ptype: string;
  field: string;
  recorded: unknown;
  replayed: unknown;
}

export interface ReplayReport {
  target: string;
  connections: number;
  refusedConnections: number;
  pdusSent: number;
  pdusCompared: number;
  differences: ReplayDifference[];
  /** ePID / HwId differences: not failures unless `strictIdentity`. */
  identityDifferences: ReplayDifference[];
  /** What was not compared, and why. */
  ignored: string[];
  notes: string[];
  ok: boolean;
}

const IGNORED = [
  'association group ids (random per connection)',
  "the bind_ack's secondary address (the host's listening port)",
  'V5/V6 response IVs and ciphertext, and the random values inside them (Rand2, R)',
  'hex bytes and lengths (the decoded fields are compared instead)',
  'timing (injected delays are not measured)',
];

/** Reads PDUs from a socket with a deadline. */
class PduReader {
  private readonly framer = new Framer({ maxPduSize: REPLAY_MAX_PDU });
  private readonly queue: Uint8Array[] = [];
  private waiter: (() => void) | null = null;
  closed = false;
  broken: string | null = null;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      try {
        this.queue.push(...this.framer.push(chunk));
      } catch (e) {
        this.broken = (e as Error).message;
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {
      this.closed = true;
      this.wake();
    });
  }

  /** Bytes of a PDU that was cut off (the host closed mid-PDU). */
  get pendingBytes(): number {
    return this.framer.pendingBytes;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiter = null;
        resolve();
      }, ms);
      this.waiter = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /** The next PDU, or null when the connection closed or the time ran out. */
  async next(timeoutMs: number): Promise<Uint8Array | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const p = this.queue.shift();
      if (p) return p;
      if (this.closed || this.broken) return null;
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await this.wait(left);
    }
  }

  /** PDUs already received and not read. */
  drain(): Uint8Array[] {
    return this.queue.splice(0);
  }

  /** Waits for the host to close; false on timeout. */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await this.wait(left);
    }
    return true;
  }
}

function connect(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`connecting to ${host}:${port}: timeout`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

type Decoded = ReturnType<ConnectionDecoder['decode']>;

const RPC_COMPARED: Record<string, string[]> = {
  bind_ack: ['flags', 'maxXmitFrag', 'maxRecvFrag', 'results'],
  alter_context_resp: ['flags', 'maxXmitFrag', 'maxRecvFrag', 'results'],
  bind_nak: ['rejectReason'],
  fault: ['flags', 'contextId', 'status'],
  response: ['flags', 'contextId'],
};
const KMS_COMPARED = [
  'hresult',
  'version',
  'cmid',
  'clientTime',
  'count',
  'activationInterval',
  'renewalInterval',
  'verified',
  'verifyError',
  'error',
];
const KMS_IDENTITY = ['epid', 'hwid'];

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Compares a recorded host PDU with the replayed one (both decoded the same way). */
function comparePdu(
  conn: number,
  rec: TranscriptPdu,
  got: Decoded,
): { differences: ReplayDifference[]; identity: ReplayDifference[] } {
  const differences: ReplayDifference[] = [];
  const identity: ReplayDifference[] = [];
  const diff = (field: string, recorded: unknown, replayed: unknown, into = differences) => {
    if (!same(recorded, replayed)) into.push({ conn, n: rec.n, ptype: rec.ptype, field, recorded, replayed });
  };
  diff('ptype', rec.ptype, got.ptype);
  if (rec.ptype !== got.ptype) return { differences, identity };
  diff('callId', rec.callId, got.callId);
  for (const k of RPC_COMPARED[rec.ptype] ?? []) diff(`rpc.${k}`, rec.rpc?.[k], got.rpc?.[k]);
  if (rec.ptype === 'response') {
    const a = (rec.kms ?? {}) as Record<string, unknown>;
    const b = (got.kms ?? {}) as Record<string, unknown>;
    diff('kms.hresult', a['hresult'], b['hresult']);
    // A different HRESULT explains every other field (an error answer carries none): report it alone.
    if (same(a['hresult'], b['hresult'])) {
      for (const k of KMS_COMPARED) if (k !== 'hresult') diff(`kms.${k}`, a[k], b[k]);
      for (const k of KMS_IDENTITY) diff(`kms.${k}`, a[k], b[k], identity);
    }
  }
  return { differences, identity };
}

/** Plays the recorded client side against `opts.host:opts.port`; see the file comment. */
export async function replayTranscript(
  input: readonly TranscriptRecord[] | string | { path: string },
  opts: ReplayOptions,
): Promise<ReplayReport> {
  const records = Array.isArray(input)
    ? (input as TranscriptRecord[])
    : parseTranscript(input as string | { path: string });
  const timeoutMs = opts.timeoutMs ?? 5000;
  const target = `${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port}`;
  const report: ReplayReport = {
    target,
    connections: 0,
    refusedConnections: 0,
    pdusSent: 0,
    pdusCompared: 0,
    differences: [],
    identityDifferences: [],
    ignored: [...IGNORED],
    notes: [],
    ok: false,
  };
  const times = records.filter(
    (r): r is TranscriptPdu => r.type === 'pdu' && r.dir === 'c2s' && r.kms !== undefined,
  );
  const clientTimes = times
    .map((r) => (r.kms as { clientTime?: string }).clientTime)
    .filter((t): t is string => !!t);
  if (clientTimes.length > 0) {
    report.notes.push(
      `requests are replayed verbatim, so they carry the recorded client times (${clientTimes[0]} .. ${clientTimes[clientTimes.length - 1]}); a target that checks clock skew against a different clock answers 0xC004F06C`,
    );
  }
  if (!opts.setClock) {
    report.notes.push(
      "the target's clock was not set to the recorded times (no setClock / --control): time-dependent counts may differ",
    );
  }

  for (const slot of connectionSlots(records)) {
    if (slot.kind === 'refused') {
      report.refusedConnections += 1;
      await opts.setClock?.(slot.time);
      let socket: net.Socket;
      try {
        socket = await connect(opts.host, opts.port, timeoutMs);
      } catch {
        continue; // refused at the TCP level: as recorded
      }
      const reader = new PduReader(socket);
      if (!(await reader.closedWithin(timeoutMs))) {
        report.differences.push({
          conn: 0,
          n: null,
          ptype: 'connection',
          field: 'refused',
          recorded: true,
          replayed: false,
        });
      }
      socket.destroy();
      continue;
    }
    report.connections += 1;
    await replayConnection(slot.script, opts, timeoutMs, report);
  }
  if (report.identityDifferences.length > 0) {
    const answers = new Set(report.identityDifferences.map((d) => `${d.conn}/${d.n}`)).size;
    const note = `ePID / HwId differ in ${answers} answer(s): the target has another identity`;
    if (opts.strictIdentity) report.differences.push(...report.identityDifferences);
    else report.ignored.push(`${note} (counted only with strictIdentity / --strict-identity)`);
  }
  report.ok = report.differences.length === 0;
  return report;
}

async function replayConnection(
  script: ConnectionScript,
  opts: ReplayOptions,
  timeoutMs: number,
  report: ReplayReport,
): Promise<void> {
  const conn = script.conn;
  const missing = (n: number | null, ptype: string, field: string, recorded: unknown, replayed: unknown) =>
    report.differences.push({ conn, n, ptype, field, recorded, replayed });
  await opts.setClock?.(script.time);
  let socket: net.Socket;
  try {
    socket = await connect(opts.host, opts.port, timeoutMs);
  } catch (e) {
    missing(null, 'connection', 'connect', 'accepted', `failed: ${(e as Error).message}`);
    return;
  }
  const reader = new PduReader(socket);
  const decoder = new ConnectionDecoder();
  try {
    for (const step of script.steps) {
      for (const extra of reader.drain()) {
        const d = decoder.decode('s2c', extra);
        missing(step.send.n, d.ptype, 'unexpected PDU', null, d.ptype);
      }
      if (reader.closed) {
        missing(step.send.n, step.send.ptype, 'connection', 'open', 'closed by the target');
        return;
      }
      await opts.setClock?.(Date.parse(step.send.time));
      const bytes = fromHex(step.send.hex);
      decoder.decode('c2s', bytes);
      socket.write(bytes);
      report.pdusSent += 1;
      for (const exp of step.expect) {
        if (exp.partial) {
          // The host cut this PDU short and closed: the target should close too, without a whole PDU.
          const got = await reader.next(timeoutMs);
          if (got) {
            const d = decoder.decode('s2c', got);
            missing(exp.n, exp.ptype, 'partial', 'closed mid-PDU', `a whole ${d.ptype}`);
          } else if (!reader.closed) {
            missing(exp.n, exp.ptype, 'partial', 'closed mid-PDU', 'no answer, connection open');
          }
          report.pdusCompared += 1;
          return;
        }
        const got = await reader.next(timeoutMs);
        if (!got) {
          missing(
            exp.n,
            exp.ptype,
            'missing',
            exp.ptype,
            reader.closed ? 'connection closed' : `no answer within ${timeoutMs} ms`,
          );
          return;
        }
        const d = decoder.decode('s2c', got);
        const c = comparePdu(conn, exp, d);
        report.differences.push(...c.differences);
        report.identityDifferences.push(...c.identity);
        report.pdusCompared += 1;
      }
    }
    if (script.closedByHost && !(await reader.closedWithin(timeoutMs))) {
      missing(null, 'connection', 'closed by host', true, false);
    }
    for (const extra of reader.drain()) {
      const d = decoder.decode('s2c', extra);
      missing(null, d.ptype, 'unexpected PDU', null, d.ptype);
    }
  } finally {
    socket.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------
// Serving the recorded host side

export interface ServeTranscriptOptions {
  host?: string;
  /** Default 0 (ephemeral). */
  port?: number;
  /** Called for each client PDU that does not have the recorded PDU type. */
  onMismatch?: (m: { conn: number; expected: string; got: string }) => void;
}

/** `await using served = await serveTranscript(...)` closes it at the end of the block. */
export interface ServedTranscript extends AsyncDisposable {
  host: string;
  port: number;
  stats: { connections: number; answered: number; mismatches: number; beyondTranscript: number };
  close(): Promise<void>;
}

function patchCallId(bytes: Uint8Array, callId: number): Uint8Array {
  const out = bytes.slice();
  if (out.length >= 16)
    new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(12, callId >>> 0, true);
  return out;
}

/**
 * Serves the recorded host side: the k-th incoming connection plays the k-th recorded connection
 * attempt (a refused one is closed at once). Each client PDU is answered with the host PDUs recorded
 * after the matching client PDU, call_id patched. Connections beyond the transcript are closed.
 *
 * The KMS answers are the recorded bytes, so they only verify for a client that sends the recorded
 * requests again (same CMID, time and, for V5/V6, IV): a seeded client on a manual clock.
 */
export async function serveTranscript(
  input: readonly TranscriptRecord[] | string | { path: string },
  opts: ServeTranscriptOptions = {},
): Promise<ServedTranscript> {
  const records = Array.isArray(input)
    ? (input as TranscriptRecord[])
    : parseTranscript(input as string | { path: string });
  const slots = connectionSlots(records);
  const stats = { connections: 0, answered: 0, mismatches: 0, beyondTranscript: 0 };
  const sockets = new Set<net.Socket>();
  let next = 0;
  const server = net.createServer((socket) => {
    const slot = slots[next++];
    stats.connections += 1;
    if (!slot || slot.kind === 'refused') {
      if (!slot) stats.beyondTranscript += 1;
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const script = slot.script;
    const framer = new Framer({ maxPduSize: REPLAY_MAX_PDU });
    let i = 0;
    for (const g of script.greeting) socket.write(fromHex(g.hex));
    socket.on('data', (chunk: Buffer) => {
      let pdus: Uint8Array[];
      try {
        pdus = framer.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const pdu of pdus) {
        const step = script.steps[i++];
        if (!step) {
          socket.end();
          return;
        }
        const callId = new DataView(pdu.buffer, pdu.byteOffset, pdu.byteLength).getUint32(12, true);
        const got = pdu[2]!;
        const expected = fromHex(step.send.hex)[2];
        if (got !== expected) {
          stats.mismatches += 1;
          opts.onMismatch?.({ conn: script.conn, expected: step.send.ptype, got: String(got) });
        }
        for (const out of step.expect) {
          const bytes = patchCallId(fromHex(out.hex), callId);
          stats.answered += 1;
          if (out.partial) {
            socket.write(bytes, () => socket.destroy());
            return;
          }
          socket.write(bytes);
        }
        if (i === script.steps.length && script.closedByHost) {
          socket.end();
          return;
        }
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: opts.host ?? '127.0.0.1', port: opts.port ?? 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as net.AddressInfo;
  let closed = false;
  const served: ServedTranscript = {
    host: addr.address,
    port: addr.port,
    stats,
    async close() {
      if (closed) return;
      closed = true;
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
    [Symbol.asyncDispose]: () => served.close(),
  };
  return served;
}
