/**
 * Fault injection for the lab host. Rules are plain JSON-able objects (so they travel through a
 * scenario file or `POST /faults` unchanged), checked by `parseFaultRules` with errors that name the
 * rule and the field, compiled once, and matched by a pure function (`matchesConditions`). The
 * stateful parts (the per-rule counter and the seeded probability draw) live in `FaultEngine`.
 *
 * Three levels, by the moment a fault acts:
 * - connection: `refuse-connection` (the TCP connection is closed as soon as it is accepted);
 * - bind: `delay-bind`, `close-after-bind`, `bind-nak`, `reject-contexts`. No KMS field is known when a
 *   bind is answered, so these rules can only match `peer`, `nth`, `ruleNth`, `probability`, `window`;
 * - call: everything else, matched against the decoded KMS request as well.
 *
 * On each connection, bind or call every rule of that level is evaluated on its own; all rules that
 * fire are applied together (for a field two rules both set, the earlier rule wins), and each one is
 * reported as a fault event.
 */
import {
  type Catalog,
  defaultCatalog,
  OFFICE2010_APP_ID,
  OFFICE2013_APP_ID,
  WINDOWS_APP_ID,
} from '../catalog/products.js';
import { cbcDecryptInto, cbcEncryptInto } from '../crypto/cbc.js';
import { V5_SCHEDULE, V6_SCHEDULE } from '../crypto/keys.js';
import { type Clock, type DurationInput, parseDuration } from '../host/clock.js';
import { type Random, SeededRandom } from '../host/random.js';
import type { CallInfo } from '../host/service.js';
import { hresultHex, parseHResult } from '../kms/hresult.js';
import type { KmsRequestBody, KmsVersion, NdrSyntax } from '../kms/messages.js';
import { BIND_NAK_REASON, NCA_STATUS } from '../rpc/constants.js';
import type { BindFault, CallFault, FaultSeam, StubRewrite } from '../server/fault-seam.js';
import { type Guid, isGuid } from '../wire/guid.js';

// ---------------------------------------------------------------------------------------------------
// Rules as data

export type FaultLevel = 'connection' | 'bind' | 'call';

/** What a rule does. `ms` are real milliseconds (the server's timers), not host-clock time. */
export type FaultAction =
  /** Answer this HRESULT in the error stub (0xC004F042, 0xC004F06C, 0xC004F039, 0xC004F041, 0x8007000D, any). */
  | { type: 'hresult'; hresult: number | string }
  /** Answer normally, but with this CurrentCount (the pool still counts the client). */
  | { type: 'count'; count: number }
  /** Answer an RPC fault PDU with this NCA status (default nca_s_proto_error 0x1C01000B). */
  | { type: 'rpc-fault'; status?: number | string }
  /** Corrupt the answer: the V4 MAC / V5 hash / V6 HMAC ('mac', 'hmac'), or the ciphertext. */
  | { type: 'tamper'; what?: 'mac' | 'hmac' | 'ciphertext' }
  /** Echo a CMID that differs from the request's. */
  | { type: 'wrong-cmid' }
  /** Echo a client time one second off the request's. */
  | { type: 'wrong-time' }
  /** Hold the answer this long. */
  | { type: 'delay-response'; ms: number }
  /** Write the first half of the answer PDU, then close the connection. */
  | { type: 'close-mid-response' }
  /** Hold the bind_ack this long. */
  | { type: 'delay-bind'; ms: number }
  /** Send the bind_ack, then close the connection. */
  | { type: 'close-after-bind' }
  /** Refuse the bind with a bind_nak (p_reject_reason, default 0 reason_not_specified), then close. */
  | { type: 'bind-nak'; reason?: number }
  /** Reject every presentation context (provider_rejection / proposed_transfer_syntaxes_not_supported). */
  | { type: 'reject-contexts' }
  /** Close every matching connection as soon as it is accepted ("host down"). */
  | { type: 'refuse-connection' };

export type FaultActionType = FaultAction['type'];

const ACTION_LEVEL: Readonly<Record<FaultActionType, FaultLevel>> = {
  hresult: 'call',
  count: 'call',
  'rpc-fault': 'call',
  tamper: 'call',
  'wrong-cmid': 'call',
  'wrong-time': 'call',
  'delay-response': 'call',
  'close-mid-response': 'call',
  'delay-bind': 'bind',
  'close-after-bind': 'bind',
  'bind-nak': 'bind',
  'reject-contexts': 'bind',
  'refuse-connection': 'connection',
};

/**
 * Which events: a 1-based number, a list of them, or a range `{ from, to, every }` (inclusive;
 * `every: 3` takes from, from+3, ...).
 */
export type NthSpec = number | number[] | { from?: number; to?: number; every?: number };

/**
 * A point in host-clock time: a duration after the host's start (`'3d'`, `'1d12h'`, a number of ms,
 * `{ days: 3 }`) or an absolute ISO-8601 time (`'2026-01-04T00:00:00Z'`).
 */
export type TimeSpec = DurationInput;

/** Every field given must hold (AND); a list means any of its values (OR). */
export interface FaultMatch {
  /** Application id, or `windows`, `office2010`, `office2013` (call rules only). */
  application?: string | string[];
  /** KMS counted id (GUID) or the catalog name of a KMS id (call rules only). */
  kmsId?: string | string[];
  /** SKU (activation id) GUID or catalog product name (call rules only). */
  sku?: string | string[];
  /** Client machine id (call rules only). */
  cmid?: string | string[];
  /** KMS protocol major version 4, 5 or 6 (call rules only). */
  protocol?: number | number[];
  /** Client address `127.0.0.1`, address and port `127.0.0.1:50000`, or a pattern with `*`. */
  peer?: string | string[];
  /**
   * Global counter: the n-th KMS request the host decoded (call rules), or the n-th connection it
   * accepted (connection and bind rules), since the host started or was reset.
   */
  nth?: NthSpec;
  /** Per-rule counter: the n-th time this rule's other conditions (but probability) held since it was set. */
  ruleNth?: NthSpec;
  /** Fire with this probability (0..1), drawn from a generator seeded by the host seed and the rule. */
  probability?: number;
  /** Host-clock window [from, to): from inclusive, to exclusive; either end may be left open. */
  window?: { from?: TimeSpec; to?: TimeSpec };
}

export interface FaultRule {
  /** Shown in events, history and transcripts; default `<action type>#<index>`. */
  name?: string;
  match?: FaultMatch;
  action: FaultAction;
}

/** "Host down from `from` to `to`" (host-clock times, relative to the start or absolute). */
export function hostDown(from: TimeSpec, to: TimeSpec, name = 'host-down'): FaultRule {
  return { name, match: { window: { from, to } }, action: { type: 'refuse-connection' } };
}

// ---------------------------------------------------------------------------------------------------
// Validation

export class FaultRuleError extends Error {
  override readonly name = 'FaultRuleError';
  constructor(readonly errors: string[]) {
    super(`invalid fault rules:\n  ${errors.join('\n  ')}`);
  }
}

const MATCH_KEYS = [
  'application',
  'kmsId',
  'sku',
  'cmid',
  'protocol',
  'peer',
  'nth',
  'ruleNth',
  'probability',
  'window',
] as const;
const KMS_KEYS = new Set(['application', 'kmsId', 'sku', 'cmid', 'protocol']);
const ACTION_KEYS: Record<FaultActionType, string[]> = {
  hresult: ['hresult'],
  count: ['count'],
  'rpc-fault': ['status'],
  tamper: ['what'],
  'wrong-cmid': [],
  'wrong-time': [],
  'delay-response': ['ms'],
  'close-mid-response': [],
  'delay-bind': ['ms'],
  'close-after-bind': [],
  'bind-nak': ['reason'],
  'reject-contexts': [],
  'refuse-connection': [],
};
/** Longest injected delay: a lab should not hang for longer by accident. */
const MAX_FAULT_DELAY_MS = 10 * 60_000;

const APP_ALIASES: Record<string, Guid> = {
  windows: WINDOWS_APP_ID,
  office2010: OFFICE2010_APP_ID,
  office2013: OFFICE2013_APP_ID,
  'office2013+': OFFICE2013_APP_ID,
  office: OFFICE2013_APP_ID,
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  return JSON.stringify(v) ?? String(v);
}

/**
 * Checks and normalises rules: GUIDs lower-case, product and KMS id names resolved to GUIDs,
 * application aliases resolved, HRESULTs and statuses as numbers, a name on every rule. Throws
 * FaultRuleError listing every problem (not just the first).
 */
export function parseFaultRules(input: unknown, catalog: Catalog = defaultCatalog()): FaultRule[] {
  const errors: string[] = [];
  let list: unknown[];
  if (Array.isArray(input)) list = input;
  else if (isObject(input) && Array.isArray(input['faults'])) list = input['faults'] as unknown[];
  else
    throw new FaultRuleError([`fault rules must be a list (or { "faults": [...] }), got ${describe(input)}`]);
  const out: FaultRule[] = [];
  const names = new Set<string>();
  list.forEach((raw, i) => {
    const rule = parseRule(raw, i, catalog, errors);
    if (!rule) return;
    if (names.has(rule.name!)) errors.push(`${where(i, rule.name)}: the name "${rule.name}" is used twice`);
    names.add(rule.name!);
    out.push(rule);
  });
  if (errors.length > 0) throw new FaultRuleError(errors);
  return out;
}

/** Like parseFaultRules, but returns the errors instead of throwing. */
export function validateFaultRules(
  input: unknown,
  catalog?: Catalog,
): { ok: true; rules: FaultRule[] } | { ok: false; errors: string[] } {
  try {
    return { ok: true, rules: parseFaultRules(input, catalog) };
  } catch (e) {
    if (e instanceof FaultRuleError) return { ok: false, errors: e.errors };
    throw e;
  }
}

function where(i: number, name?: unknown): string {
  return typeof name === 'string' ? `faults[${i}] ("${name}")` : `faults[${i}]`;
}

function parseRule(raw: unknown, i: number, catalog: Catalog, errors: string[]): FaultRule | null {
  if (!isObject(raw)) {
    errors.push(`${where(i)}: a rule is an object { name?, match?, action }, got ${describe(raw)}`);
    return null;
  }
  const at = where(i, raw['name']);
  const before = errors.length;
  for (const k of Object.keys(raw)) {
    if (k !== 'name' && k !== 'match' && k !== 'action')
      errors.push(`${at}: unknown key "${k}" (use name, match, action)`);
  }
  if (raw['name'] !== undefined && (typeof raw['name'] !== 'string' || raw['name'].trim() === '')) {
    errors.push(`${at}.name: a non-empty string`);
  }
  const action = parseAction(raw['action'], `${at}.action`, errors);
  const level = action ? ACTION_LEVEL[action.type] : null;
  const match = parseMatch(raw['match'], `${at}.match`, catalog, errors);
  if (level && level !== 'call' && isObject(raw['match'])) {
    for (const k of Object.keys(raw['match'])) {
      if (KMS_KEYS.has(k)) {
        errors.push(
          `${at}.match.${k}: action "${action!.type}" acts on the ${level}, before any KMS request is read, so it can only match peer, nth, ruleNth, probability and window`,
        );
      }
    }
  }
  if (errors.length > before || !action) return null;
  const name = typeof raw['name'] === 'string' ? raw['name'].trim() : `${action.type}#${i}`;
  return match && Object.keys(match).length > 0 ? { name, match, action } : { name, action };
}

function parseAction(raw: unknown, at: string, errors: string[]): FaultAction | null {
  if (!isObject(raw)) {
    errors.push(
      `${at}: an object { type, ... } with type one of ${Object.keys(ACTION_LEVEL).join(', ')}; got ${describe(raw)}`,
    );
    return null;
  }
  const type = raw['type'];
  if (typeof type !== 'string' || !(type in ACTION_LEVEL)) {
    errors.push(`${at}.type: one of ${Object.keys(ACTION_LEVEL).join(', ')}; got ${describe(type)}`);
    return null;
  }
  const t = type as FaultActionType;
  const allowed = ACTION_KEYS[t];
  for (const k of Object.keys(raw)) {
    if (k !== 'type' && !allowed.includes(k)) {
      errors.push(`${at}: "${t}" takes ${allowed.length ? allowed.join(', ') : 'no other key'}, not "${k}"`);
    }
  }
  const ms = (): number => {
    const v = raw['ms'];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_FAULT_DELAY_MS) {
      errors.push(`${at}.ms: whole milliseconds 0..${MAX_FAULT_DELAY_MS}, got ${describe(v)}`);
      return 0;
    }
    return v;
  };
  switch (t) {
    case 'hresult': {
      const v = raw['hresult'];
      if (typeof v !== 'number' && typeof v !== 'string') {
        errors.push(`${at}.hresult: an HRESULT such as "0xC004F042" or a number`);
        return null;
      }
      try {
        return { type: t, hresult: parseHResult(v) };
      } catch (e) {
        errors.push(`${at}.hresult: ${(e as Error).message}`);
        return null;
      }
    }
    case 'count': {
      const v = raw['count'];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
        errors.push(`${at}.count: an integer 0..4294967295, got ${describe(v)}`);
        return null;
      }
      return { type: t, count: v };
    }
    case 'rpc-fault': {
      const v = raw['status'];
      if (v === undefined) return { type: t, status: NCA_STATUS.PROTO_ERROR };
      try {
        if (typeof v !== 'number' && typeof v !== 'string') throw new RangeError('not a number');
        return { type: t, status: parseHResult(v) };
      } catch {
        errors.push(`${at}.status: an NCA status such as "0x1C010003" or a number, got ${describe(v)}`);
        return null;
      }
    }
    case 'tamper': {
      const v = raw['what'] ?? 'mac';
      if (v !== 'mac' && v !== 'hmac' && v !== 'ciphertext') {
        errors.push(`${at}.what: "mac", "hmac" or "ciphertext", got ${describe(v)}`);
        return null;
      }
      return { type: t, what: v };
    }
    case 'delay-response':
    case 'delay-bind':
      return { type: t, ms: ms() };
    case 'bind-nak': {
      const v = raw['reason'] ?? BIND_NAK_REASON.NOT_SPECIFIED;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff) {
        errors.push(
          `${at}.reason: a p_reject_reason 0..65535 (e.g. 1 temporary_congestion), got ${describe(v)}`,
        );
        return null;
      }
      return { type: t, reason: v };
    }
    default:
      return { type: t } as FaultAction;
  }
}

function listOf(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [v];
}

function parseMatch(raw: unknown, at: string, catalog: Catalog, errors: string[]): FaultMatch | null {
  if (raw === undefined) return {};
  if (!isObject(raw)) {
    errors.push(`${at}: an object with any of ${MATCH_KEYS.join(', ')}; got ${describe(raw)}`);
    return null;
  }
  const m: FaultMatch = {};
  for (const k of Object.keys(raw)) {
    if (!(MATCH_KEYS as readonly string[]).includes(k)) {
      errors.push(`${at}: unknown key "${k}" (use ${MATCH_KEYS.join(', ')})`);
    }
  }
  const strings = (k: string, resolve: (s: string) => string | null, what: string): string[] | undefined => {
    const v = raw[k];
    if (v === undefined) return undefined;
    const out: string[] = [];
    const items = listOf(v);
    if (items.length === 0)
      errors.push(`${at}.${k}: an empty list matches nothing; leave the key out instead`);
    for (const item of items) {
      const r = typeof item === 'string' ? resolve(item.trim()) : null;
      if (r === null) errors.push(`${at}.${k}: ${what}, got ${describe(item)}`);
      else out.push(r);
    }
    return out;
  };
  const guidOr = (lookup: (s: string) => Guid | null) => (s: string) => {
    const g = s.replace(/^\{(.*)\}$/, '$1').toLowerCase();
    return isGuid(g) ? g : lookup(s);
  };
  const application = strings(
    'application',
    guidOr((s) => APP_ALIASES[s.toLowerCase()] ?? null),
    'an application id GUID or windows, office2010, office2013',
  );
  if (application) m.application = application;
  const kmsId = strings(
    'kmsId',
    guidOr((s) => catalog.kmsIds.find((k) => k.name.toLowerCase() === s.toLowerCase())?.id ?? null),
    'a KMS id GUID or a catalog KMS id name',
  );
  if (kmsId) m.kmsId = kmsId;
  const sku = strings(
    'sku',
    guidOr((s) => {
      try {
        return catalog.findSku(s).id;
      } catch {
        return null;
      }
    }),
    'a SKU GUID or a catalog product name',
  );
  if (sku) m.sku = sku;
  const cmid = strings(
    'cmid',
    guidOr(() => null),
    'a CMID GUID',
  );
  if (cmid) m.cmid = cmid;
  const peer = strings(
    'peer',
    (s) => (s.length > 0 ? s : null),
    'an address, address:port, or a pattern with *',
  );
  if (peer) m.peer = peer;
  if (raw['protocol'] !== undefined) {
    const items = listOf(raw['protocol']);
    if (items.length === 0 || !items.every((p) => p === 4 || p === 5 || p === 6)) {
      errors.push(`${at}.protocol: 4, 5, 6 or a list of them, got ${describe(raw['protocol'])}`);
    } else m.protocol = items as number[];
  }
  for (const k of ['nth', 'ruleNth'] as const) {
    if (raw[k] === undefined) continue;
    const v = raw[k];
    const ok = (n: unknown) => typeof n === 'number' && Number.isInteger(n) && n >= 1;
    if (ok(v)) m[k] = v as number;
    else if (Array.isArray(v) && v.length > 0 && v.every(ok)) m[k] = v as number[];
    else if (
      isObject(v) &&
      Object.keys(v).every((x) => x === 'from' || x === 'to' || x === 'every') &&
      Object.values(v).every(ok)
    ) {
      m[k] = v as { from?: number; to?: number; every?: number };
    } else {
      errors.push(`${at}.${k}: a number ≥ 1, a list of them, or { from, to, every }; got ${describe(v)}`);
    }
  }
  if (raw['probability'] !== undefined) {
    const p = raw['probability'];
    if (typeof p !== 'number' || !(p >= 0 && p <= 1))
      errors.push(`${at}.probability: a number 0..1, got ${describe(p)}`);
    else m.probability = p;
  }
  if (raw['window'] !== undefined) {
    const w = raw['window'];
    if (
      !isObject(w) ||
      Object.keys(w).some((x) => x !== 'from' && x !== 'to') ||
      (w['from'] === undefined && w['to'] === undefined)
    ) {
      errors.push(
        `${at}.window: { from?, to? } with durations after the start ("3d") or ISO times; got ${describe(w)}`,
      );
    } else {
      const win: { from?: TimeSpec; to?: TimeSpec } = {};
      for (const e of ['from', 'to'] as const) {
        if (w[e] === undefined) continue;
        try {
          resolveTime(w[e] as TimeSpec, 0);
          win[e] = w[e] as TimeSpec;
        } catch (err) {
          errors.push(`${at}.window.${e}: ${(err as Error).message}`);
        }
      }
      m.window = win;
    }
  }
  return m;
}

const ISO_RE = /^\d{4}-\d{2}-\d{2}/;

/** A TimeSpec as ms since the Unix epoch: ISO strings are absolute, everything else is after `origin`. */
export function resolveTime(t: TimeSpec, origin: number): number {
  if (typeof t === 'string' && ISO_RE.test(t.trim())) {
    const v = Date.parse(t);
    if (Number.isNaN(v)) throw new RangeError(`bad ISO time "${t}"`);
    return v;
  }
  return origin + parseDuration(t);
}

// ---------------------------------------------------------------------------------------------------
// Compiled rules and the pure matcher

export interface CompiledRule {
  index: number;
  name: string;
  level: FaultLevel;
  action: FaultAction;
  rule: FaultRule;
  application: ReadonlySet<string> | null;
  kmsId: ReadonlySet<string> | null;
  sku: ReadonlySet<string> | null;
  cmid: ReadonlySet<string> | null;
  protocol: ReadonlySet<number> | null;
  peer: readonly RegExp[] | null;
  nth: ((n: number) => boolean) | null;
  ruleNth: ((n: number) => boolean) | null;
  probability: number | null;
  /** Absolute host-clock ms; null ends are open. */
  window: { from: number | null; to: number | null } | null;
}

/** The facts a rule is matched against. `request` is present for calls only. */
export interface FaultSubject {
  level: FaultLevel;
  peer: string;
  /** Host-clock ms. */
  time: number;
  /** The global counter (see FaultMatch.nth). */
  nth: number;
  request?: {
    applicationId: Guid;
    kmsId: Guid;
    skuId: Guid;
    cmid: Guid;
    protocol: number;
  };
}

export function nthMatcher(spec: NthSpec): (n: number) => boolean {
  if (typeof spec === 'number') return (n) => n === spec;
  if (Array.isArray(spec)) {
    const set = new Set(spec);
    return (n) => set.has(n);
  }
  const from = spec.from ?? 1;
  const to = spec.to ?? Number.POSITIVE_INFINITY;
  const every = spec.every ?? 1;
  return (n) => n >= from && n <= to && (n - from) % every === 0;
}

function peerPattern(p: string): RegExp {
  const body = p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${body}$`, 'i');
}

/** The address part of `host:port` / `[v6]:port` peers. */
function peerAddress(peer: string): string {
  const v6 = /^\[([^\]]+)\]:\d+$/.exec(peer);
  if (v6) return v6[1]!;
  const i = peer.lastIndexOf(':');
  return i > 0 && peer.indexOf(':') === i ? peer.slice(0, i) : peer.replace(/:\d+$/, '');
}

/** Compiles validated rules; window times given as durations are taken after `origin`. */
export function compileRules(rules: readonly FaultRule[], origin: number): CompiledRule[] {
  return rules.map((rule, index) => {
    const m = rule.match ?? {};
    const set = <T>(v: T | T[] | undefined): ReadonlySet<T> | null =>
      v === undefined ? null : new Set(listOf(v) as T[]);
    return {
      index,
      name: rule.name ?? `${rule.action.type}#${index}`,
      level: ACTION_LEVEL[rule.action.type],
      action: rule.action,
      rule,
      application: set(m.application),
      kmsId: set(m.kmsId),
      sku: set(m.sku),
      cmid: set(m.cmid),
      protocol: set(m.protocol),
      peer: m.peer === undefined ? null : listOf(m.peer).map((p) => peerPattern(String(p))),
      nth: m.nth === undefined ? null : nthMatcher(m.nth),
      ruleNth: m.ruleNth === undefined ? null : nthMatcher(m.ruleNth),
      probability: m.probability ?? null,
      window: m.window
        ? {
            from: m.window.from === undefined ? null : resolveTime(m.window.from, origin),
            to: m.window.to === undefined ? null : resolveTime(m.window.to, origin),
          }
        : null,
    };
  });
}

/**
 * The pure part of matching: level, KMS fields, peer, global counter and time window. The per-rule
 * counter and the probability are the engine's (they need state).
 */
export function matchesConditions(rule: CompiledRule, s: FaultSubject): boolean {
  if (rule.level !== s.level) return false;
  if (rule.peer && !rule.peer.some((re) => re.test(s.peer) || re.test(peerAddress(s.peer)))) return false;
  if (rule.nth && !rule.nth(s.nth)) return false;
  if (rule.window) {
    if (rule.window.from !== null && s.time < rule.window.from) return false;
    if (rule.window.to !== null && s.time >= rule.window.to) return false;
  }
  const kms = rule.application || rule.kmsId || rule.sku || rule.cmid || rule.protocol;
  if (kms) {
    const r = s.request;
    if (!r) return false;
    if (rule.application && !rule.application.has(r.applicationId)) return false;
    if (rule.kmsId && !rule.kmsId.has(r.kmsId)) return false;
    if (rule.sku && !rule.sku.has(r.skuId)) return false;
    if (rule.cmid && !rule.cmid.has(r.cmid)) return false;
    if (rule.protocol && !rule.protocol.has(r.protocol)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------
// The engine

/** One rule firing: what the event stream and the transcript show. */
export interface FaultFired {
  type: 'fault';
  /** Host-clock ms. */
  time: number;
  rule: string;
  action: FaultActionType;
  level: FaultLevel;
  /** null for a refused connection (it never got an id). */
  connectionId: number | null;
  peer: string;
  /** Call faults: the request's CMID and KMS protocol. */
  cmid?: Guid;
  protocol?: number;
  /** hresult / count / status / delay / reason the action used, when it has one. */
  detail?: string;
}

export interface FaultEngineOptions {
  /** Seeds the probability draws (each rule has its own stream, from its position and name). */
  seed: string | number;
  clock: Clock;
  /** Host start (host-clock ms): `window` durations are taken after it. Default: `clock.now()`. */
  origin?: number;
  catalog?: Catalog;
  onFault?: (f: FaultFired) => void;
}

interface RuleState {
  compiled: CompiledRule;
  seen: number;
  random: Random | null;
}

export class FaultEngine implements FaultSeam {
  readonly origin: number;
  private readonly seed: string;
  private readonly clock: Clock;
  private readonly catalog: Catalog;
  private readonly listeners = new Set<(f: FaultFired) => void>();
  private current: FaultRule[] = [];
  private states: RuleState[] = [];
  private calls = 0;
  private connections = 0;
  /** Live peer → connection number, so a bind finds the attempt counter of its connection. */
  private readonly attemptOf = new Map<string, number>();

  constructor(opts: FaultEngineOptions) {
    this.seed = String(opts.seed);
    this.clock = opts.clock;
    this.origin = opts.origin ?? opts.clock.now();
    this.catalog = opts.catalog ?? defaultCatalog();
    if (opts.onFault) this.listeners.add(opts.onFault);
  }

  onFault(fn: (f: FaultFired) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** The active rules, normalised (names filled in, GUIDs resolved). */
  get rules(): FaultRule[] {
    return structuredClone(this.current);
  }

  /**
   * Replaces every rule (validated; throws FaultRuleError) and restarts the per-rule counters and
   * draws. The global counters keep running.
   */
  setRules(input: unknown): FaultRule[] {
    const rules = parseFaultRules(input, this.catalog);
    this.current = rules;
    this.states = compileRules(rules, this.origin).map((compiled) => ({
      compiled,
      seen: 0,
      random:
        compiled.probability === null
          ? null
          : new SeededRandom(`${this.seed}/faults/${compiled.index}/${compiled.name}`),
    }));
    return this.rules;
  }

  /** Back to the start: global counters, per-rule counters and draws (what `host.reset()` does). */
  resetCounters(): void {
    this.calls = 0;
    this.connections = 0;
    this.attemptOf.clear();
    this.setRules(this.current);
  }

  /** Evaluates every rule of the subject's level; returns the ones that fire, in rule order. */
  private fire(subject: FaultSubject): CompiledRule[] {
    const fired: CompiledRule[] = [];
    for (const st of this.states) {
      const r = st.compiled;
      if (!matchesConditions(r, subject)) continue;
      st.seen += 1;
      if (r.ruleNth && !r.ruleNth(st.seen)) continue;
      if (st.random && !(st.random.float() < r.probability!)) continue;
      fired.push(r);
    }
    return fired;
  }

  private report(r: CompiledRule, base: Omit<FaultFired, 'type' | 'rule' | 'action' | 'level'>): void {
    const f: FaultFired = { type: 'fault', rule: r.name, action: r.action.type, level: r.level, ...base };
    const detail = actionDetail(r.action);
    if (detail) f.detail = detail;
    for (const fn of this.listeners) fn(f);
  }

  /** Connection level: false refuses the connection. */
  accept(peer: string): boolean {
    this.connections += 1;
    this.attemptOf.set(peer, this.connections);
    if (this.attemptOf.size > 4096) this.attemptOf.delete(this.attemptOf.keys().next().value!);
    const time = this.clock.now();
    const fired = this.fire({ level: 'connection', peer, time, nth: this.connections });
    for (const r of fired) this.report(r, { time, connectionId: null, peer });
    return fired.length === 0;
  }

  /** Bind level. */
  bind(info: { peer: string; connectionId: number }): BindFault | null {
    const time = this.clock.now();
    const nth = this.attemptOf.get(info.peer) ?? info.connectionId;
    const fired = this.fire({ level: 'bind', peer: info.peer, time, nth });
    if (fired.length === 0) return null;
    const f: BindFault = { name: fired.map((r) => r.name).join('+') };
    for (const r of fired) {
      const a = r.action;
      if (a.type === 'delay-bind') f.delayMs ??= a.ms;
      else if (a.type === 'close-after-bind') f.closeAfterBind = true;
      else if (a.type === 'bind-nak') f.bindNak ??= a.reason ?? 0;
      else if (a.type === 'reject-contexts') f.rejectContexts = true;
      this.report(r, { time, connectionId: info.connectionId, peer: info.peer });
    }
    return f;
  }

  /** Call level. */
  call(req: KmsRequestBody, info: CallInfo): CallFault | null {
    this.calls += 1;
    const time = this.clock.now();
    const fired = this.fire({
      level: 'call',
      peer: info.peer,
      time,
      nth: this.calls,
      request: {
        applicationId: req.applicationId,
        kmsId: req.kmsId,
        skuId: req.skuId,
        cmid: req.cmid,
        protocol: info.protocol,
      },
    });
    if (fired.length === 0) return null;
    const f = callFaultOf(fired, req);
    for (const r of fired) {
      this.report(r, {
        time,
        connectionId: info.connectionId,
        peer: info.peer,
        cmid: req.cmid,
        protocol: info.protocol,
      });
    }
    return f;
  }
}

/** Merges the actions of the call rules that fired (earlier rules win a field both set). */
function callFaultOf(fired: readonly CompiledRule[], req: KmsRequestBody): CallFault {
  const name = fired.map((r) => r.name).join('+');
  const f: CallFault = {
    name,
    result: { label: name, reason: `fault ${name}` },
    stub: null,
    delivery: { name },
  };
  const result = f.result;
  for (const r of fired) {
    const a = r.action;
    switch (a.type) {
      case 'hresult':
        result.hresult ??= parseHResult(a.hresult);
        break;
      case 'count':
        result.count ??= a.count;
        break;
      case 'rpc-fault':
        result.ncaStatus ??= a.status === undefined ? NCA_STATUS.PROTO_ERROR : parseHResult(a.status);
        break;
      case 'tamper': {
        const what = a.what === 'ciphertext' ? 'ciphertext' : 'mac';
        const rewrite: StubRewrite = (stub, protocol, ndr) => tamperStub(stub, what, protocol, ndr);
        f.stub ??= rewrite;
        break;
      }
      case 'wrong-cmid':
        result.cmid ??= flipGuid(req.cmid);
        break;
      case 'wrong-time':
        result.clientTime ??= req.clientTime + 10_000_000n;
        break;
      case 'delay-response':
        f.delivery.delayMs ??= a.ms;
        break;
      case 'close-mid-response':
        f.delivery.closeMidResponse = true;
        break;
      default:
        break;
    }
  }
  return f;
}

function flipGuid(g: Guid): Guid {
  // Flip the last byte: a different, still well-formed CMID.
  return g.slice(0, -2) + (Number.parseInt(g.slice(-2), 16) ^ 0xff).toString(16).padStart(2, '0');
}

const ZERO_IV = new Uint8Array(16);

/**
 * Damages the KMS message of an encoded response stub (spec b.2) by one bit, as the host's encoder
 * once did: byte-identical to what a host with a faulty MAC or cipher would send.
 * - 'mac': V4 the first MAC byte (c.3); V5 the last byte of the Hash (c.5); V6 the first byte of the
 *   HMAC (c.6). V5/V6 damage the plaintext: the message is decrypted in the zero-IV view (c.4),
 *   flipped and encrypted again, which rebuilds the ciphertext chain the encoder would have written.
 * - 'ciphertext': the ciphertext byte 20 from the message's end (V4, which has none: the MAC).
 */
export function tamperStub(
  stub: Uint8Array,
  what: 'mac' | 'ciphertext',
  protocol: KmsVersion,
  ndr: NdrSyntax,
): Uint8Array {
  const m = ndr === 'ndr32' ? 12 : 24;
  const len = (stub[0]! | (stub[1]! << 8) | (stub[2]! << 16) | (stub[3]! << 24)) >>> 0;
  if (len < 36 || m + len > stub.length) return stub;
  if (protocol === 4) {
    stub[m + len - 16]! ^= 0x01;
    return stub;
  }
  if (what === 'ciphertext') {
    stub[m + len - 20]! ^= 0x01;
    return stub;
  }
  const ks = protocol === 5 ? V5_SCHEDULE : V6_SCHEDULE;
  const n = len - 4;
  if (n % 16 !== 0) return stub;
  const plain = new Uint8Array(n);
  cbcDecryptInto(ks, ZERO_IV, stub, m + 4, n, plain, 0);
  // PIDSize, at offset 4 of the base response (c.2), which starts after the first block.
  const pidSize = (plain[20]! | (plain[21]! << 8) | (plain[22]! << 16) | (plain[23]! << 24)) >>> 0;
  const at = protocol === 5 ? 107 + pidSize : 132 + pidSize;
  if (at >= n) return stub;
  plain[at]! ^= 0x01;
  cbcEncryptInto(ks, ZERO_IV, plain, 0, n, stub, m + 4);
  return stub;
}

function actionDetail(a: FaultAction): string | undefined {
  switch (a.type) {
    case 'hresult':
      return hresultHex(parseHResult(a.hresult));
    case 'count':
      return `count ${a.count}`;
    case 'rpc-fault':
      return `status ${hresultHex(a.status === undefined ? NCA_STATUS.PROTO_ERROR : parseHResult(a.status))}`;
    case 'tamper':
      return a.what ?? 'mac';
    case 'delay-response':
    case 'delay-bind':
      return `${a.ms} ms`;
    case 'bind-nak':
      return `reason ${a.reason ?? 0}`;
    default:
      return undefined;
  }
}
