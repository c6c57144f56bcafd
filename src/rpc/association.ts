/**
 * The per-connection server state machine of spec a.10, sans-io: bytes in, actions out. The caller
 * owns the socket, the idle timer and the KMS logic:
 *
 *   for (const a of assoc.receive(chunk)) {
 *     if (a.type === 'send') socket.write(a.bytes);
 *     else if (a.type === 'call') socket.write(assoc.respond(a.call, runKms(a.call)));
 *     else if (a.type === 'close') socket.end();
 *     else log[a.level](a.message);
 *   }
 *
 * Actions must be carried out in order (a 'send' after a 'call' answers a later PDU).
 *
 * Where vlmcsd (the reference host of fixtures/vectors/vlmcsd) behaves differently, this follows the
 * spec; each difference is marked "vlmcsd:" below with the capture that shows it.
 */

import { u16le } from '../wire/bytes.js';
import { ProtocolError } from '../wire/errors.js';
import {
  BIND_NAK_REASON,
  DREP_LE,
  HEADER_LENGTH,
  HOST_MAX_FRAG,
  isCoPtype,
  MAX_FRAG_LENGTH,
  NCA_STATUS,
  PFC,
  PTYPE,
  ptypeName,
  RPC_VERSION,
  RPC_VERSION_MINOR,
} from './constants.js';
import {
  BIND_CONTEXTS_AT,
  decodeBindLikeWith,
  decodePdu,
  isPlainBindLike,
  readHeader,
  validateHeader,
} from './decode.js';
import { encodePdu } from './encode.js';
import { CallAssembler, Framer } from './framer.js';
import {
  type CachedContexts,
  type HostProfile,
  type NdrSyntax,
  type NegotiationCache,
  type NegotiationResult,
  negotiate,
  negotiateFragSize,
} from './negotiate.js';
import {
  type AlterContextPdu,
  type BindPdu,
  type GenericPdu,
  makeAlterContextResp,
  makeBindAck,
  makeBindNak,
  makeFault,
  makeResponse,
  type Pdu,
  type RequestPdu,
} from './pdu.js';

/** An association's settings; it keeps the object and never writes it, so associations may share one. */
export interface AssociationOptions {
  profile: HostProfile;
  /** Secondary address put in bind_ack: the listening port as a decimal string, e.g. '1688' (spec a.4). */
  secondaryAddress: string;
  /** Largest PDU accepted (frag_length cap); also caps the max_recv_frag we advertise. */
  maxPduSize: number;
  /** Largest reassembled request stub (spec a.10: e.g. 64 KiB). */
  maxCallSize: number;
  /** A new non-zero association group id, for binds that ask for one (spec a.8). Caller-supplied so it can be seeded. */
  newAssocGroupId: () => number;
  /**
   * The association groups this host has issued, shared by all of a host's connections so a bind on a
   * second connection may join a group issued on the first (spec a.8). Default: a registry of this
   * association's own groups only.
   */
  groups?: AssociationGroups;
  /**
   * Context lists already decoded and negotiated, shared by a host's associations: a bind or
   * alter_context with the same bytes reuses them. Default: none (each is decoded and negotiated).
   */
  negotiations?: NegotiationCache;
}

/**
 * The association group ids a host has issued (spec a.8). KMS keeps no state per group, so a group
 * is only its id; the registry remembers the ids of its last `limit` records (a peer opening connections
 * cannot make it grow without bound), and an id older than those counts as never issued. An id recorded
 * twice takes two of those places (ids are fresh random values: practically never).
 */
export class AssociationGroups {
  /** Issued id → its slot in `ring` (the newest record of it). */
  private readonly issued = new Map<number, number>();
  /** The last `limit` ids recorded, oldest at `next` once full: forgetting the oldest allocates nothing. */
  private readonly ring: number[] = [];
  private next = 0;

  constructor(readonly limit = 4096) {
    if (!Number.isSafeInteger(limit) || limit < 1)
      throw new RangeError(`association group limit ${limit} < 1`);
  }

  record(id: number): void {
    const slot = this.next;
    if (this.ring.length < this.limit) this.ring.push(id);
    else {
      const old = this.ring[slot]!;
      // Forgotten unless recorded again since (then its newer slot keeps it).
      if (this.issued.get(old) === slot) this.issued.delete(old);
      this.ring[slot] = id;
    }
    this.issued.set(id, slot);
    this.next = (slot + 1) % this.limit;
  }

  has(id: number): boolean {
    return this.issued.has(id);
  }
}

export type AssociationAction =
  | { type: 'send'; bytes: Uint8Array; pdu: Pdu }
  /** A complete request on an accepted context with opnum 0: run KMS and answer with respond(). */
  | { type: 'call'; call: RpcCall }
  | { type: 'close'; reason: string; error?: ProtocolError }
  /** One log line per bad or noteworthy input. */
  | { type: 'note'; level: 'info' | 'warn'; message: string; pdu?: Pdu };

export interface RpcCall {
  callId: number;
  contextId: number;
  opnum: number;
  syntax: NdrSyntax;
  stub: Uint8Array;
}

export type AssociationState = 'unbound' | 'bound' | 'closed';

const FIRST_LAST = PFC.FIRST_FRAG | PFC.LAST_FRAG;
const RESPONSE_OVERHEAD = 24;

export class Association {
  private readonly opts: AssociationOptions;
  private readonly framer: Framer;
  private readonly assembler: CallAssembler;
  /**
   * The accepted contexts, never written: a bind's is the negotiation's own `accepted` map, an
   * alter_context's a new map that is shared in turn (alteredContexts). So associations that bound and
   * altered alike (the cached negotiations of every client of one kind) share one map.
   */
  private ctx: ReadonlyMap<number, NdrSyntax> = NO_CONTEXTS;
  /** Call ids handed out by 'call' actions and not yet answered or cancelled. */
  private readonly outstanding = new PendingCalls();
  private current: AssociationState = 'unbound';
  private assocGroupId = 0;
  /** The fragment size negotiated at bind: the largest fragment we send and the one we state (spec a.7). */
  private fragSize = HOST_MAX_FRAG;
  private readonly groups: AssociationGroups;

  constructor(opts: AssociationOptions) {
    this.opts = opts;
    this.groups = opts.groups ?? new AssociationGroups();
    this.framer = new Framer({ maxPduSize: opts.maxPduSize, checkHeader: checkHeaderEarly });
    this.assembler = new CallAssembler({ maxCallSize: opts.maxCallSize });
  }

  get state(): AssociationState {
    return this.current;
  }

  private get closed(): boolean {
    return this.current === 'closed';
  }

  /** p_cont_id → transfer syntax of the contexts accepted so far. */
  get contexts(): ReadonlyMap<number, NdrSyntax> {
    return this.ctx;
  }

  /** Bytes of a PDU or of a fragmented call received but not complete (for the caller's idle timer). */
  get pendingBytes(): number {
    return this.framer.pendingBytes + this.assembler.pendingBytes;
  }

  /**
   * Whether a call handed out by a 'call' action still awaits its answer. A call the client orphaned
   * (PTYPE 19) or cancelled is no longer pending; a caller answering asynchronously should check this
   * and not send the response (DCE: an orphaned call gets no reply).
   */
  isPending(callId: number): boolean {
    return this.outstanding.has(callId);
  }

  receive(chunk: Uint8Array): AssociationAction[] {
    const out: AssociationAction[] = [];
    if (this.current === 'closed') return out;
    let pdus: Uint8Array[];
    try {
      pdus = this.framer.push(chunk);
    } catch (e) {
      this.refuseStream(out, asProtocolError(e));
      return out;
    }
    for (const bytes of pdus) {
      this.handle(bytes, out);
      if (this.closed) return out;
    }
    // A bad header after good PDUs in the same chunk: those were handled, now give up.
    const late = this.framer.error;
    if (late) this.refuseStream(out, late);
    return out;
  }

  /**
   * Encodes the response to `call` (spec a.7): flags 0x03, the call's call_id and context id,
   * alloc_hint = stub length. A stub larger than one fragment (never the case for KMS) is split into
   * several response PDUs, returned concatenated.
   */
  respond(call: RpcCall, stub: Uint8Array): Uint8Array {
    this.outstanding.delete(call.callId);
    // Fragment stubs are cut at multiples of 8 so NDR alignment survives reassembly [DCE].
    const room = (this.fragSize - RESPONSE_OVERHEAD) & ~7;
    if (stub.length <= room) return encodeResponsePdu(call.callId, call.contextId, stub);
    const parts: Uint8Array[] = [];
    for (let at = 0; at < stub.length; at += room) {
      const pdu = makeResponse(call.callId, call.contextId, stub.subarray(at, at + room));
      pdu.flags = (at === 0 ? PFC.FIRST_FRAG : 0) | (at + room >= stub.length ? PFC.LAST_FRAG : 0);
      pdu.allocHint = stub.length - at;
      parts.push(encodePdu(pdu));
    }
    return concat(parts);
  }

  /** Encodes a 32-byte fault for `call` (spec a.9); flags 0x23 unless `didNotExecute` is false. */
  fault(call: RpcCall, status: number, didNotExecute = true): Uint8Array {
    this.outstanding.delete(call.callId);
    return encodePdu(makeFault(call.callId, call.contextId, status, didNotExecute));
  }

  // -------------------------------------------------------------------------------------------------

  private handle(bytes: Uint8Array, out: AssociationAction[]): void {
    // A context list this host negotiated before (NegotiationCache): only the header is read.
    const cache = this.opts.negotiations;
    const cacheable = cache !== undefined && isPlainBindLike(bytes);
    if (cacheable) {
      const hit = cache.get(bytes.subarray(BIND_CONTEXTS_AT), this.opts.profile);
      if (hit !== undefined) {
        const pdu = decodeBindLikeWith(bytes, hit);
        if (pdu.type === PTYPE.BIND) this.onBind(pdu, out, hit.negotiation);
        else this.onAlterContext(pdu, out, hit.negotiation);
        return;
      }
    }
    let pdu: Pdu;
    try {
      pdu = decodePdu(bytes);
    } catch (e) {
      const err = asProtocolError(e);
      const h = readHeader(bytes); // the framer guarantees 16 bytes
      if (err.code === 'BAD_RPC_VERSION' && h.type === PTYPE.BIND) {
        // Spec a.5: rpc_vers ≠ 5 → bind_nak reason 4 with versions {5.0}, then close.
        // vlmcsd: answers a normal bind_ack carrying rpc_vers 4 and keeps the connection
        // (bad-bad-rpc-version).
        this.note(out, 'warn', `bind with rpc_vers ${h.rpcVersion}.${h.rpcVersionMinor}: bind_nak 4`);
        this.send(out, makeBindNak(h.callId, BIND_NAK_REASON.PROTOCOL_VERSION_NOT_SUPPORTED));
        this.close(out, 'unsupported RPC version', err);
        return;
      }
      this.fail(out, err);
      return;
    }
    switch (pdu.type) {
      case PTYPE.BIND:
        this.onBind(pdu, out, this.negotiateAndRemember(pdu, cacheable ? bytes : null));
        return;
      case PTYPE.ALTER_CONTEXT:
        this.onAlterContext(pdu, out, this.negotiateAndRemember(pdu, cacheable ? bytes : null));
        return;
      case PTYPE.REQUEST:
        this.onRequest(pdu, out);
        return;
      case PTYPE.CO_CANCEL:
      case PTYPE.ORPHANED:
        this.onCancel(pdu, out);
        return;
      case PTYPE.AUTH3:
        // Spec a.2: not used by KMS, has no reply: ignore.
        this.note(out, 'info', `auth3 (call ${pdu.callId}) ignored`, pdu);
        return;
      default:
        // response, fault, bind_ack, bind_nak, alter_context_resp, shutdown: server-to-client PDUs
        // (spec a.10 "other: close").
        this.fail(
          out,
          new ProtocolError('BAD_PTYPE', `${ptypeName(pdu.type)} is a server-to-client PDU`, {
            field: 'PTYPE',
          }),
          pdu,
        );
    }
  }

  /**
   * The negotiation of a decoded bind or alter_context (spec a.4), remembered in the host's cache when
   * `cacheable` gives its bytes (the answer may still be a bind_nak or fault: negotiation is pure).
   */
  private negotiateAndRemember(
    pdu: BindPdu | AlterContextPdu,
    cacheable: Uint8Array | null,
  ): NegotiationResult {
    const negotiation = negotiate(pdu.contexts, this.opts.profile);
    if (cacheable !== null && this.opts.negotiations !== undefined) {
      const value: CachedContexts = { contexts: pdu.contexts, negotiation };
      if (pdu.reserved !== undefined) value.reserved = pdu.reserved;
      if (pdu.trailing !== undefined) value.trailing = pdu.trailing;
      this.opts.negotiations.put(cacheable.subarray(BIND_CONTEXTS_AT), this.opts.profile, value);
    }
    return negotiation;
  }

  private onBind(pdu: BindPdu, out: AssociationAction[], negotiation: NegotiationResult): void {
    if (this.current === 'bound') {
      // Spec a.5 / a.10: a second bind is a protocol error: bind_nak reason 0, then close.
      this.note(out, 'warn', `second bind (call ${pdu.callId}) on a bound connection: bind_nak 0`, pdu);
      this.send(out, makeBindNak(pdu.callId, BIND_NAK_REASON.NOT_SPECIFIED));
      this.close(out, 'second bind', new ProtocolError('BAD_STATE', 'bind on a bound connection'));
      return;
    }
    if ((pdu.flags & FIRST_LAST) !== FIRST_LAST) {
      // Spec a.10: fragmented binds essentially never occur; close.
      this.fail(out, fragmentedError('bind', pdu.flags), pdu);
      return;
    }
    if (pdu.authVerifier) {
      // Spec a.5: auth_length > 0 → bind_nak reason 8. The connection stays unbound; the client may
      // bind again without authentication. (No vlmcsd capture: its probe set auth only on a request.)
      this.note(out, 'warn', `bind (call ${pdu.callId}) with auth_length > 0: bind_nak 8`, pdu);
      this.send(out, makeBindNak(pdu.callId, BIND_NAK_REASON.AUTHENTICATION_TYPE_NOT_RECOGNIZED));
      return;
    }
    if (pdu.assocGroupId !== 0 && !this.groups.has(pdu.assocGroupId)) {
      // Spec a.8: a non-zero assoc_group_id joins an existing group, and this host never issued this
      // one: bind_nak reason 0, as Samba's server answers (after Windows); the connection stays
      // unbound, so the client may bind again asking for a new group.
      // vlmcsd: ignores the id and answers its own per-connection group.
      const id = `0x${pdu.assocGroupId.toString(16).padStart(8, '0')}`;
      this.note(
        out,
        'warn',
        `bind (call ${pdu.callId}) names association group ${id}, never issued: bind_nak 0`,
        pdu,
      );
      this.send(out, makeBindNak(pdu.callId, BIND_NAK_REASON.NOT_SPECIFIED));
      return;
    }
    if (pdu.contexts.length === 0) {
      // DCE p_reject_reason 5 (default_context_not_supported) is the answer to a bind proposing no
      // context; the connection stays unbound (spec a.5: a refused bind gets a bind_nak).
      // vlmcsd: closes the connection without an answer (bad-bind-zero-contexts).
      this.note(out, 'warn', `bind (call ${pdu.callId}) without presentation contexts: bind_nak 5`, pdu);
      this.send(out, makeBindNak(pdu.callId, BIND_NAK_REASON.DEFAULT_CONTEXT_NOT_SUPPORTED));
      return;
    }
    const { results, accepted } = negotiation;
    if (pdu.assocGroupId !== 0)
      this.assocGroupId = pdu.assocGroupId; // spec a.8: joins the group
    else {
      this.assocGroupId = this.opts.newAssocGroupId() >>> 0 || 1;
      this.groups.record(this.assocGroupId);
    }
    // Spec a.7: one fragment size for both directions, max(2048, min(client xmit, client recv, ours)).
    this.fragSize = negotiateFragSize(
      pdu.maxXmitFrag,
      pdu.maxRecvFrag,
      Math.min(HOST_MAX_FRAG, this.opts.maxPduSize),
    );
    // Spec a.4 / a.7: flags 0x03 | the bind's PFC_CONC_MPX; both frag fields the negotiated size.
    // vlmcsd: copies the bind's flag byte and echoes the client's frag sizes (identical bytes for the
    // 0x13 / 0x03 binds and the 5840 sizes in the captures) and leaves the pad byte uninitialised,
    // which we send as 0.
    const ack = makeBindAck(pdu.callId, FIRST_LAST | (pdu.flags & PFC.CONC_MPX), {
      maxXmitFrag: this.fragSize,
      maxRecvFrag: this.fragSize,
      assocGroupId: this.assocGroupId,
      secondaryAddress: this.opts.secondaryAddress,
      results,
    });
    this.ctx = accepted;
    this.current = 'bound';
    this.send(out, ack);
  }

  private onAlterContext(
    pdu: AlterContextPdu,
    out: AssociationAction[],
    negotiation: NegotiationResult,
  ): void {
    if (this.current !== 'bound') {
      // Spec a.10: a protocol error: fault nca_s_proto_error, then close.
      this.refuseUnbound(out, pdu, 0, 'alter_context');
      return;
    }
    if ((pdu.flags & FIRST_LAST) !== FIRST_LAST) {
      this.fail(out, fragmentedError('alter_context', pdu.flags), pdu);
      return;
    }
    if (pdu.authVerifier) {
      this.fail(out, new ProtocolError('AUTH_NOT_SUPPORTED', 'alter_context with auth_length > 0'), pdu);
      return;
    }
    this.ctx = alteredContexts(this.ctx, pdu, negotiation);
    // Spec a.4: alter_context_resp has flags 0x03 and an empty secondary address; spec a.7: the
    // fragment size stays the one negotiated at bind.
    // vlmcsd: its 2 pad bytes are left over from the previous port string (e.g. "17").
    const resp = makeAlterContextResp(pdu.callId, FIRST_LAST, {
      maxXmitFrag: this.fragSize,
      maxRecvFrag: this.fragSize,
      assocGroupId: this.assocGroupId,
      secondaryAddress: '',
      results: negotiation.results,
    });
    this.send(out, resp);
  }

  private onRequest(pdu: RequestPdu, out: AssociationAction[]): void {
    if (this.current !== 'bound') {
      // Spec a.10: request requires BOUND: fault nca_s_proto_error, then close.
      // vlmcsd: answers a fault nca_s_unk_if and keeps the connection (bad-request-before-bind).
      this.refuseUnbound(out, pdu, pdu.contextId, 'request');
      return;
    }
    if (pdu.authVerifier) {
      // Spec a.1: KMS is unauthenticated and the bind negotiated no security context, so a request
      // carrying an auth verifier cannot be honoured: fault nca_s_proto_error, stay connected.
      // vlmcsd: ignores auth_length, runs the call and echoes auth_length 16 in a response that has
      // no auth trailer (bad-auth-length-set).
      this.assembler.cancel(pdu.callId);
      this.note(out, 'warn', `request (call ${pdu.callId}) with auth_length > 0: fault proto_error`, pdu);
      this.send(out, makeFault(pdu.callId, pdu.contextId, NCA_STATUS.PROTO_ERROR));
      return;
    }
    let call: RequestPdu | null;
    try {
      // Spec a.10: fragments are buffered until PFC_LAST_FRAG; no reply before.
      // vlmcsd: answers a first fragment at once and copies its flags 0x01 into the response
      // (bad-request-not-last-frag).
      call = this.assembler.add(pdu);
    } catch (e) {
      this.fail(out, asProtocolError(e), pdu);
      return;
    }
    if (call === null) return;
    const syntax = this.ctx.get(call.contextId);
    if (syntax === undefined) {
      // Spec a.9: fault nca_s_unk_if, flags 0x23, echoing call_id and p_cont_id.
      // vlmcsd: writes call_id 2 into every fault, p_cont_id 0, and uninitialised cancel_count /
      // reserved bytes (bad-request-wrong-ctx).
      this.note(
        out,
        'warn',
        `request (call ${call.callId}) on unknown context ${call.contextId}: fault`,
        pdu,
      );
      this.send(out, makeFault(call.callId, call.contextId, NCA_STATUS.UNK_IF));
      return;
    }
    if (call.opnum !== 0) {
      // Spec a.9: opnum ≠ 0 → fault nca_s_op_rng_error.
      // vlmcsd: ignores the opnum and runs RequestActivation (bad-request-wrong-opnum).
      this.note(out, 'warn', `request (call ${call.callId}) with opnum ${call.opnum}: fault`, pdu);
      this.send(out, makeFault(call.callId, call.contextId, NCA_STATUS.OP_RNG_ERROR));
      return;
    }
    this.outstanding.add(call.callId);
    out.push({
      type: 'call',
      call: { callId: call.callId, contextId: call.contextId, opnum: call.opnum, syntax, stub: call.stub },
    });
  }

  private onCancel(pdu: GenericPdu, out: AssociationAction[]): void {
    // Spec a.10: drop the pending call buffer for call_id, no reply.
    const buffered = this.assembler.cancel(pdu.callId);
    const dispatched = this.outstanding.delete(pdu.callId);
    const dropped = buffered || dispatched;
    this.note(
      out,
      'info',
      `${ptypeName(pdu.type)} for call ${pdu.callId}${dropped ? ': call dropped' : ': no such call'}`,
      pdu,
    );
  }

  private send(out: AssociationAction[], pdu: Pdu): void {
    out.push({ type: 'send', bytes: encodePdu(pdu), pdu });
  }

  private note(out: AssociationAction[], level: 'info' | 'warn', message: string, pdu?: Pdu): void {
    out.push(pdu ? { type: 'note', level, message, pdu } : { type: 'note', level, message });
  }

  private close(out: AssociationAction[], reason: string, error?: ProtocolError): void {
    this.current = 'closed';
    out.push(error ? { type: 'close', reason, error } : { type: 'close', reason });
  }

  /**
   * A request or alter_context on an unbound connection (spec a.10, a.9): the client is told why with
   * a fault nca_s_proto_error for its call, then the connection closes.
   */
  private refuseUnbound(out: AssociationAction[], pdu: Pdu, contextId: number, what: string): void {
    const error = new ProtocolError('BAD_STATE', `${what} (call ${pdu.callId}) before bind`);
    this.note(out, 'warn', `${error.code}: ${error.message}: fault proto_error`, pdu);
    this.send(out, makeFault(pdu.callId, contextId, NCA_STATUS.PROTO_ERROR));
    this.close(out, error.message, error);
  }

  /**
   * The framer refused the stream. A big-endian PDU (spec a.2: kmslab reads little-endian only) is
   * answered first, from its header: a bind gets bind_nak reason 6 (user_data_not_readable), a request
   * or alter_context a fault nca_s_proto_error, with the call_id read in the PDU's own byte order. The
   * connection closes either way: nothing after can be framed.
   */
  private refuseStream(out: AssociationAction[], error: ProtocolError): void {
    const h = error.code === 'BAD_DREP' ? this.framer.refusedHeader : null;
    if (!h) {
      this.fail(out, error);
      return;
    }
    const type = h[2]!;
    const callId = ((h[12]! << 24) | (h[13]! << 16) | (h[14]! << 8) | h[15]!) >>> 0;
    const what = `big-endian ${ptypeName(type)} (call ${callId}; packed_drep ${toHex(h.subarray(4, 8))})`;
    if (type === PTYPE.BIND) {
      this.note(out, 'warn', `BAD_DREP: ${what}: only little-endian is supported: bind_nak 6`);
      this.send(out, makeBindNak(callId, BIND_NAK_REASON.USER_DATA_NOT_READABLE));
    } else if (type === PTYPE.REQUEST || type === PTYPE.ALTER_CONTEXT) {
      this.note(out, 'warn', `BAD_DREP: ${what}: only little-endian is supported: fault proto_error`);
      this.send(out, makeFault(callId, 0, NCA_STATUS.PROTO_ERROR));
    } else {
      this.note(out, 'warn', `BAD_DREP: ${what}: only little-endian is supported`);
    }
    this.close(out, `${what}: not little-endian`, error);
  }

  /** One note and a close for input we cannot go on after. */
  private fail(out: AssociationAction[], error: ProtocolError, pdu?: Pdu): void {
    this.note(out, 'warn', `${error.code}: ${error.message}`, pdu);
    this.close(out, error.message, error);
  }
}

const NO_CONTEXTS: ReadonlyMap<number, NdrSyntax> = new Map();

/** Adds one accepted context to the map `this` (a Map.forEach callback with its thisArg: no closure). */
function addContext(this: Map<number, NdrSyntax>, syntax: NdrSyntax, id: number): void {
  this.set(id, syntax);
}

/** The last context table each alter_context negotiation produced, and from which table. */
const ALTERED = new WeakMap<
  NegotiationResult,
  { from: ReadonlyMap<number, NdrSyntax>; to: ReadonlyMap<number, NdrSyntax> }
>();

/**
 * The contexts after an alter_context (spec a.10): an element with the same p_cont_id replaces the old
 * context, so a rejected one removes it. The result depends only on `from` and on the element list,
 * which a cached negotiation stands for, so it is memoised per negotiation.
 */
function alteredContexts(
  from: ReadonlyMap<number, NdrSyntax>,
  pdu: AlterContextPdu,
  negotiation: NegotiationResult,
): ReadonlyMap<number, NdrSyntax> {
  const memo = ALTERED.get(negotiation);
  if (memo !== undefined && memo.from === from) return memo.to;
  const to = new Map(from);
  for (const c of pdu.contexts) to.delete(c.contextId);
  negotiation.accepted.forEach(addContext, to);
  ALTERED.set(negotiation, { from, to });
  return to;
}

/**
 * A set of call ids that is nearly always empty or holds one (a client waits for each answer): the
 * first id in a field, a Set only for a client that pipelines calls.
 */
class PendingCalls {
  private one = -1;
  private more: Set<number> | undefined;

  has(id: number): boolean {
    return id === this.one || this.more?.has(id) === true;
  }

  add(id: number): void {
    if (this.has(id)) return;
    if (this.one === -1) this.one = id;
    else {
      this.more ??= new Set();
      this.more.add(id);
    }
  }

  delete(id: number): boolean {
    if (id === this.one) {
      this.one = -1;
      return true;
    }
    return this.more?.delete(id) === true;
  }
}

/**
 * Run by the framer on each header before it waits for the body, so garbage is refused at once
 * instead of after frag_length bytes (spec a.10 validates the header first). A bind with a wrong
 * rpc_vers is let through: it is answered by a bind_nak once whole.
 */
function checkHeaderEarly(header: Uint8Array): void {
  // Fast accept of a well-formed header (every PDU of a normal conversation); the checks are those of
  // validateHeader, which runs for anything else and decides the error.
  if (
    header[0] === RPC_VERSION &&
    isCoPtype(header[2]!) &&
    (header[4]! & 0xf0) === 0x10 &&
    u16le(header, 8) >= HEADER_LENGTH
  ) {
    return;
  }
  const h = readHeader(header);
  try {
    validateHeader(h);
  } catch (e) {
    if (e instanceof ProtocolError && e.code === 'BAD_RPC_VERSION' && h.type === PTYPE.BIND) return;
    throw e;
  }
}

function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
}

function fragmentedError(what: string, flags: number): ProtocolError {
  return new ProtocolError('BAD_FRAGMENT', `fragmented ${what} (pfc_flags 0x${flags.toString(16)})`, {
    field: 'pfc_flags',
  });
}

function asProtocolError(e: unknown): ProtocolError {
  if (e instanceof ProtocolError) return e;
  throw e;
}

/**
 * `encodePdu(makeResponse(callId, contextId, stub))` written directly: the 24-byte response header
 * (rpc_vers 5.0, flags 0x03, little-endian drep, frag_length, auth_length 0, call_id, alloc_hint = stub
 * length, p_cont_id, cancel_count 0, reserved 0), then the stub. Out-of-range values take encodePdu
 * for its errors.
 */
function encodeResponsePdu(callId: number, contextId: number, stub: Uint8Array): Uint8Array {
  const total = RESPONSE_OVERHEAD + stub.length;
  if (
    total > MAX_FRAG_LENGTH ||
    !Number.isInteger(callId) ||
    callId < 0 ||
    callId > 0xffffffff ||
    !Number.isInteger(contextId) ||
    contextId < 0 ||
    contextId > 0xffff
  ) {
    return encodePdu(makeResponse(callId, contextId, stub));
  }
  const out = new Uint8Array(total);
  out[0] = RPC_VERSION;
  out[1] = RPC_VERSION_MINOR;
  out[2] = PTYPE.RESPONSE;
  out[3] = FIRST_LAST;
  out[4] = DREP_LE[0];
  out[5] = DREP_LE[1];
  out[6] = DREP_LE[2];
  out[7] = DREP_LE[3];
  out[8] = total;
  out[9] = total >>> 8;
  // 10..11 auth_length 0
  out[12] = callId;
  out[13] = callId >>> 8;
  out[14] = callId >>> 16;
  out[15] = callId >>> 24;
  const n = stub.length;
  out[16] = n;
  out[17] = n >>> 8;
  out[18] = n >>> 16;
  out[19] = n >>> 24;
  out[20] = contextId;
  out[21] = contextId >>> 8;
  // 22 cancel_count 0, 23 reserved 0
  out.set(stub, RESPONSE_OVERHEAD);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
