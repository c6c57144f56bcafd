/**
 * Stream → PDUs, and request fragments → calls (spec a.1 reading rule, a.10 reassembly). Sans-io: no
 * sockets or timers; an idle/partial-PDU timeout is the caller's business (`pendingBytes` tells it
 * whether a PDU is half-read).
 */

import { u16le } from '../wire/bytes.js';
import { ProtocolError } from '../wire/errors.js';
import { HEADER_LENGTH, PFC } from './constants.js';
import type { RequestPdu } from './pdu.js';

export interface FramerOptions {
  /** Largest frag_length accepted; a larger one is PDU_TOO_LARGE as soon as the header is in. */
  maxPduSize: number;
  /**
   * Extra check run once per PDU on its 16 header bytes, before waiting for the body (e.g. refuse a
   * connectionless PTYPE at once instead of waiting for 47729 bytes of garbage). Throw a ProtocolError
   * to refuse. `header` starts with the header and may run on past it (the chunk it arrived in, not a
   * copy): read only its first 16 bytes.
   */
  checkHeader?: (header: Uint8Array) => void;
}

/**
 * Cuts a TCP byte stream into whole PDUs by frag_length (u16 LE at offset 8).
 *
 * Chunks are kept as a list, never concatenated on arrival: a PDU that lies inside one chunk is
 * returned as a subarray of it (zero copy); only a PDU spanning chunks is copied. The framer therefore
 * keeps references to pushed chunks until they are consumed: do not reuse or mutate a buffer after
 * pushing it.
 *
 * Errors are sticky: after a bad header the stream cannot be resynchronised. If PDUs were cut from the
 * same push before the bad header, push returns them and keeps the error (see `error`); the next push
 * throws it. Otherwise push throws at once.
 */
export class Framer {
  private readonly maxPduSize: number;
  private readonly checkHeader: ((header: Uint8Array) => void) | undefined;
  private chunks: Uint8Array[] = [];
  private total = 0;
  /** frag_length of the PDU at the head once its header was validated, else 0. */
  private need = 0;
  private failure: ProtocolError | undefined;
  /** The 16 header bytes of the PDU whose header was refused (a copy), for an answer that echoes it. */
  private refused: Uint8Array | null = null;

  constructor(opts: FramerOptions) {
    this.maxPduSize = opts.maxPduSize;
    this.checkHeader = opts.checkHeader;
  }

  /** Bytes received but not yet returned as part of a PDU. */
  get pendingBytes(): number {
    return this.total;
  }

  /**
   * A copy of the 16 header bytes the framer refused (the header check threw, or frag_length was out of
   * range), else null: the caller answers a refused PDU from it (e.g. with the call_id in its own byte
   * order, spec a.2).
   */
  get refusedHeader(): Uint8Array | null {
    return this.refused;
  }

  /** The error that stopped this framer, if any. */
  get error(): ProtocolError | undefined {
    return this.failure;
  }

  push(chunk: Uint8Array): Uint8Array[] {
    if (this.failure) throw this.failure;
    // Nothing pending and the chunk is exactly one PDU (a client waiting for each answer, the usual
    // case): the chunk itself, with no bookkeeping. Anything else takes the general path.
    if (this.total === 0 && chunk.length >= HEADER_LENGTH) {
      let need: number;
      try {
        need = this.validate(chunk);
      } catch (e) {
        if (e instanceof ProtocolError) this.failure = e;
        throw e;
      }
      if (chunk.length === need) return [chunk];
      this.need = need;
    }
    const out: Uint8Array[] = [];
    if (chunk.length === 0) return out;
    this.chunks.push(chunk);
    this.total += chunk.length;
    try {
      for (;;) {
        if (this.need === 0) {
          if (this.total < HEADER_LENGTH) break;
          this.need = this.validate(this.peek(HEADER_LENGTH));
        }
        if (this.total < this.need) break;
        out.push(this.take(this.need));
        this.need = 0;
      }
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      this.failure = e;
      // A failed framer reads nothing more: let go of what it held, so it counts (and keeps) no bytes.
      this.chunks = [];
      this.total = 0;
      this.need = 0;
      if (out.length === 0) throw e;
    }
    return out;
  }

  private validate(header: Uint8Array): number {
    try {
      return this.fragLength(header);
    } catch (e) {
      this.refused = header.slice(0, HEADER_LENGTH);
      throw e;
    }
  }

  private fragLength(header: Uint8Array): number {
    // The caller's header check first: it decides whether frag_length can be read at all (a
    // big-endian PDU's is not little-endian; spec a.2, a.10 validate the header before the length).
    this.checkHeader?.(header);
    const frag = u16le(header, 8);
    if (frag < HEADER_LENGTH) {
      throw new ProtocolError('BAD_FRAG_LENGTH', `frag_length ${frag} < ${HEADER_LENGTH}`, {
        field: 'frag_length',
        offset: 8,
      });
    }
    if (frag > this.maxPduSize) {
      throw new ProtocolError('PDU_TOO_LARGE', `frag_length ${frag} > the ${this.maxPduSize}-byte cap`, {
        field: 'frag_length',
        offset: 8,
        needed: frag,
        available: this.maxPduSize,
      });
    }
    return frag;
  }

  /**
   * At least the first n pending bytes (n ≤ total), without consuming them: the first chunk itself
   * when it holds them (the header check reads only its first 16 bytes; no view object per PDU).
   */
  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length >= n) return first;
    return this.gather(n, false);
  }

  /** Consumes and returns the first n pending bytes (n ≤ total). */
  private take(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length === n) {
      // A chunk that is exactly one PDU (the usual case) is handed on as it is.
      this.chunks.shift();
      this.total -= n;
      return first;
    }
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      this.total -= n;
      return first.subarray(0, n);
    }
    return this.gather(n, true);
  }

  private gather(n: number, consume: boolean): Uint8Array {
    const out = new Uint8Array(n);
    let filled = 0;
    let i = 0;
    while (filled < n) {
      const c = this.chunks[i]!;
      const k = Math.min(c.length, n - filled);
      out.set(c.subarray(0, k), filled);
      filled += k;
      if (consume && k < c.length) this.chunks[i] = c.subarray(k);
      else i++;
    }
    if (consume) {
      // Chunks fully used are the first i ones (a partly used one stayed at index i).
      this.chunks.splice(0, i);
      this.total -= n;
    }
    return out;
  }
}

export interface CallAssemblerOptions {
  /** Cap on the stub bytes of one call, and on all calls being reassembled together. */
  maxCallSize: number;
  /** Cap on calls being reassembled at once (default 8; without PFC_CONC_MPX a client has only one). */
  maxPendingCalls?: number;
}

interface PendingCall {
  first: RequestPdu;
  parts: Uint8Array[];
  size: number;
}

/** An assembler's calls until its first fragmented call: KMS requests fit one fragment, so usually for good. */
const NO_CALLS: ReadonlyMap<number, PendingCall> = new Map();

/**
 * Reassembles fragmented requests (spec a.10): fragments with the same call_id from PFC_FIRST_FRAG to
 * PFC_LAST_FRAG, stubs concatenated. The first fragment's context id and opnum apply to the call.
 *
 * The reassembled RequestPdu is the first fragment with the whole stub, flags | PFC_LAST_FRAG and
 * alloc_hint = the whole stub length. A single-fragment request is returned as is.
 */
export class CallAssembler {
  private readonly maxCallSize: number;
  private readonly maxPendingCalls: number;
  /** NO_CALLS (never written) until a call is reassembled: no Map per connection that never needs one. */
  private calls = NO_CALLS as Map<number, PendingCall>;
  private buffered = 0;

  constructor(opts: CallAssemblerOptions) {
    this.maxCallSize = opts.maxCallSize;
    this.maxPendingCalls = opts.maxPendingCalls ?? 8;
  }

  /** Calls with fragments received but no last fragment yet. */
  get pendingCalls(): number {
    return this.calls.size;
  }

  /** Stub bytes held for calls not yet complete. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /**
   * Adds one request fragment. Returns the complete request on its last fragment, else null. Throws
   * BAD_FRAGMENT for a continuation without a first fragment or a second first fragment for a call in
   * progress, PDU_TOO_LARGE when a call (or all pending calls together) exceed the caps.
   */
  add(req: RequestPdu): RequestPdu | null {
    const first = (req.flags & PFC.FIRST_FRAG) !== 0;
    const last = (req.flags & PFC.LAST_FRAG) !== 0;
    const pending = this.calls.get(req.callId);
    if (first) {
      if (pending) {
        this.cancel(req.callId);
        throw fragmentError(req.callId, 'a new first fragment while the call is being reassembled');
      }
      if (last) {
        this.checkSize(req.callId, req.stub.length, 0);
        return req;
      }
      this.checkSize(req.callId, req.stub.length, req.stub.length);
      if (this.calls.size >= this.maxPendingCalls) {
        throw new ProtocolError(
          'PDU_TOO_LARGE',
          `more than ${this.maxPendingCalls} calls being reassembled`,
          {
            field: 'call_id',
          },
        );
      }
      if (this.calls === NO_CALLS) this.calls = new Map();
      this.calls.set(req.callId, { first: req, parts: [req.stub], size: req.stub.length });
      this.buffered += req.stub.length;
      return null;
    }
    if (!pending) throw fragmentError(req.callId, 'a continuation fragment without a first fragment');
    this.checkSize(req.callId, pending.size + req.stub.length, req.stub.length);
    pending.parts.push(req.stub);
    pending.size += req.stub.length;
    this.buffered += req.stub.length;
    if (!last) return null;
    this.calls.delete(req.callId);
    this.buffered -= pending.size;
    const stub = new Uint8Array(pending.size);
    let at = 0;
    for (const p of pending.parts) {
      stub.set(p, at);
      at += p.length;
    }
    return { ...pending.first, flags: pending.first.flags | PFC.LAST_FRAG, allocHint: stub.length, stub };
  }

  /** Drops a call being reassembled (co_cancel / orphaned). Returns whether there was one. */
  cancel(callId: number): boolean {
    const p = this.calls.get(callId);
    if (!p) return false;
    this.calls.delete(callId);
    this.buffered -= p.size;
    return true;
  }

  /** `callSize`: the call's stub so far; `added`: bytes this fragment adds to the reassembly buffers. */
  private checkSize(callId: number, callSize: number, added: number): void {
    if (callSize > this.maxCallSize || this.buffered + added > this.maxCallSize) {
      const needed = Math.max(callSize, this.buffered + added);
      this.cancel(callId);
      throw new ProtocolError(
        'PDU_TOO_LARGE',
        `call ${callId}: ${needed} stub bytes > cap ${this.maxCallSize}`,
        {
          field: 'stub',
          needed,
          available: this.maxCallSize,
        },
      );
    }
  }
}

function fragmentError(callId: number, what: string): ProtocolError {
  return new ProtocolError('BAD_FRAGMENT', `call ${callId}: ${what}`, { field: 'pfc_flags' });
}
