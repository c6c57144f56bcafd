/**
 * Fault injection for the lab host: the harness's side of the one fault seam (src/server/fault-seam.ts).
 * Rules are plain JSON-able objects (so they travel through a scenario file or `POST /faults`
 * unchanged), checked by `parseFaultRules` with errors that name the rule and the field, compiled
 * once, and matched by a pure function (`matchesConditions`). The stateful parts (the per-rule counter
 * and the seeded probability draw) live in `FaultEngine`, which implements FaultSeam.
 *
 * Each action is one descriptor (FAULT_ACTIONS): its type, its interception point (accept, bind,
 * result, stub, delivery), the zod schema of its fields, a description, and `apply`, which changes the
 * outcome at that point. The point gives the level, by the moment a fault acts:
 * - connection (accept): `refuse-connection`, the TCP connection is closed as soon as it is accepted;
 * - bind: `delay-bind`, `close-after-bind`, `bind-nak`, `reject-contexts`. No KMS field is known when a
 *   bind is answered, so these rules can only match `peer`, `nth`, `ruleNth`, `probability`, `window`;
 * - call (result, stub, delivery): everything else, matched against the decoded KMS request as well.
 *
 * On each connection, bind or call every rule of that level is evaluated on its own; all rules that
 * fire are applied together (for a field two rules both set, the earlier rule wins), and each one is
 * reported as a fault event.
 */

import { z } from 'zod';
import {
  type Catalog,
  defaultCatalog,
  OFFICE2010_APP_ID,
  OFFICE2013_APP_ID,
  WINDOWS_APP_ID,
} from '../catalog/products.js';
import { type Clock, type DurationInput, parseDuration } from '../host/clock.js';
import { type Random, SeededRandom } from '../host/random.js';
import type { CallInfo, CallShaping } from '../host/service.js';
import { hresultHex, parseHResult } from '../kms/hresult.js';
import type { KmsRequestBody } from '../kms/messages.js';
import { BIND_NAK_REASON, NCA_STATUS } from '../rpc/constants.js';
import type { BindFault, CallFault, Delivery, FaultSeam, StubRewrite } from '../server/fault-seam.js';
import { type Guid, isGuid } from '../wire/guid.js';
import { tamperStub } from './tamper.js';

// ---------------------------------------------------------------------------------------------------
// Actions: one descriptor each (the recipe for a new one is in CONTRIBUTING.md, "Adding a fault")

export type FaultLevel = 'connection' | 'bind' | 'call';

/**
 * Where an action acts: the interception points of src/server/fault-seam.ts. Its level (which
 * conditions a rule can match) follows from it: accept → connection, bind → bind, result / stub /
 * delivery → call.
 */
export type FaultPoint = 'accept' | 'bind' | 'result' | 'stub' | 'delivery';

const LEVEL_OF: Readonly<Record<FaultPoint, FaultLevel>> = {
  accept: 'connection',
  bind: 'bind',
  result: 'call',
  stub: 'call',
  delivery: 'call',
};

/**
 * What an action's `apply` changes at its point. Every rule that fires on one connection, bind or
 * call applies to the same target, in rule order: a field two rules both set keeps the earlier
 * rule's value (so `apply` sets with `??=`).
 */
interface PointTarget {
  accept: { refuse: boolean };
  bind: BindFault;
  /** Carried out by the host: the imposed decision, the echoes, an RPC fault in place of the answer. */
  result: CallShaping;
  stub: Pick<CallFault, 'stub'>;
  delivery: Delivery;
}

/** What `apply` reads besides the action: the decoded request, at the call points. */
type PointInput<P extends FaultPoint> = P extends 'accept' | 'bind' ? null : KmsRequestBody;

interface ActionSpec<T extends string, P extends FaultPoint, F extends z.ZodRawShape> {
  type: T;
  point: P;
  /** What the client sees, one sentence (docs/harness.md's action table says the same). */
  description: string;
  /** The action's keys besides `type`, each with its check, default and normalisation. */
  fields: F;
  /** The `detail` of the action's fault events, when it has a parameter. */
  detail?: (a: z.output<z.ZodObject<F>>) => string;
  apply: (a: z.output<z.ZodObject<F>>, into: PointTarget[P], input: PointInput<P>) => void;
}

interface ActionDescriptor<T extends string, P extends FaultPoint, F extends z.ZodRawShape>
  extends ActionSpec<T, P, F> {
  level: FaultLevel;
  /** The whole action object: `{ type, ...fields }`, no other key. */
  schema: z.ZodObject<{ type: z.ZodLiteral<T> } & F, z.core.$strict>;
}

function defineAction<const T extends string, P extends FaultPoint, F extends z.ZodRawShape>(
  spec: ActionSpec<T, P, F>,
): ActionDescriptor<T, P, F> {
  const shape = { type: z.literal(spec.type), ...spec.fields } as { type: z.ZodLiteral<T> } & F;
  return { ...spec, level: LEVEL_OF[spec.point], schema: z.strictObject(shape) };
}

/** A field check whose every failure says what is wanted and what was given. */
const wanted = (what: string) => ({
  error: (iss: { input?: unknown }) => `${what}, got ${describe(iss.input)}`,
});

const intIn = (lo: number, hi: number, what: string) => {
  const e = wanted(what);
  return z.number(e).int(e).min(lo, e).max(hi, e);
};

/** An HRESULT or NCA status: a number, or a string such as "0xC004F042" (normalised to a number). */
const statusCode = (what: string) =>
  z.union([z.number(), z.string()], { error: what }).transform((v, ctx) => {
    try {
      return parseHResult(v);
    } catch (e) {
      ctx.issues.push({ code: 'custom', message: (e as Error).message, input: v });
      return z.NEVER;
    }
  });

/** Longest injected delay: a lab should not hang for longer by accident. */
const MAX_FAULT_DELAY_MS = 10 * 60_000;
/** `ms` are real milliseconds (the server's edge clock), not host-clock time. */
const delayMs = intIn(0, MAX_FAULT_DELAY_MS, `whole milliseconds 0..${MAX_FAULT_DELAY_MS}`);

/**
 * Every action, in the order error messages list them. An optional field given as null takes its
 * default, as rule files always could.
 */
const FAULT_ACTIONS = [
  defineAction({
    type: 'hresult',
    point: 'result',
    description:
      'answer this HRESULT in the error stub (0xC004F042, 0xC004F06C, 0xC004F039, 0xC004F041, 0x8007000D, any); the pool does not count the client',
    fields: { hresult: statusCode('an HRESULT such as "0xC004F042" or a number') },
    detail: (a) => hresultHex(a.hresult),
    apply: (a, r) => {
      r.hresult ??= a.hresult;
    },
  }),
  defineAction({
    type: 'count',
    point: 'result',
    description: 'answer normally, but with this CurrentCount (the pool still counts the client)',
    fields: { count: intIn(0, 0xffffffff, 'an integer 0..4294967295') },
    detail: (a) => `count ${a.count}`,
    apply: (a, r) => {
      r.count ??= a.count;
    },
  }),
  defineAction({
    type: 'rpc-fault',
    point: 'result',
    description:
      'answer an RPC fault PDU with this NCA status (default nca_s_proto_error 0x1C01000B); the request is still counted, as failed',
    fields: {
      status: z
        .union([z.number(), z.string()], wanted('an NCA status such as "0x1C010003" or a number'))
        .optional()
        .transform((v, ctx) => {
          if (v === undefined) return NCA_STATUS.PROTO_ERROR;
          try {
            return parseHResult(v);
          } catch {
            ctx.issues.push({
              code: 'custom',
              message: `an NCA status such as "0x1C010003" or a number, got ${describe(v)}`,
              input: v,
            });
            return z.NEVER;
          }
        }),
    },
    detail: (a) => `status ${hresultHex(a.status)}`,
    apply: (a, r) => {
      r.ncaStatus ??= a.status;
    },
  }),
  defineAction({
    type: 'tamper',
    point: 'stub',
    description:
      "corrupt the answer: the V4 MAC / V5 hash / V6 HMAC ('mac', 'hmac'), or the ciphertext (V4: its MAC)",
    fields: {
      what: z
        .enum(['mac', 'hmac', 'ciphertext'], wanted('"mac", "hmac" or "ciphertext"'))
        .nullish()
        .transform((v) => v ?? 'mac'),
    },
    detail: (a) => a.what,
    apply: (a, s) => {
      const what = a.what === 'ciphertext' ? 'ciphertext' : 'mac';
      const rewrite: StubRewrite = (stub, protocol, ndr) => tamperStub(stub, what, protocol, ndr);
      s.stub ??= rewrite;
    },
  }),
  defineAction({
    type: 'wrong-cmid',
    point: 'result',
    description: "echo a CMID that differs from the request's (the answer is signed with it)",
    fields: {},
    apply: (_, r, req) => {
      r.cmid ??= flipGuid(req.cmid);
    },
  }),
  defineAction({
    type: 'wrong-time',
    point: 'result',
    description: "echo a client time one second off the request's (V6 keys its HMAC with it)",
    fields: {},
    apply: (_, r, req) => {
      r.clientTime ??= req.clientTime + 10_000_000n;
    },
  }),
  defineAction({
    type: 'delay-response',
    point: 'delivery',
    description: 'hold the answer this long; later input on the connection waits behind it',
    fields: { ms: delayMs },
    detail: (a) => `${a.ms} ms`,
    apply: (a, d) => {
      d.delayMs ??= a.ms;
    },
  }),
  defineAction({
    type: 'close-mid-response',
    point: 'delivery',
    description:
      'write the first half of the answer PDU, then close the connection (the request was counted)',
    fields: {},
    apply: (_, d) => {
      d.closeMidResponse = true;
    },
  }),
  defineAction({
    type: 'delay-bind',
    point: 'bind',
    description: 'hold the bind_ack this long',
    fields: { ms: delayMs },
    detail: (a) => `${a.ms} ms`,
    apply: (a, b) => {
      b.delayMs ??= a.ms;
    },
  }),
  defineAction({
    type: 'close-after-bind',
    point: 'bind',
    description: 'send the bind_ack, then close the connection',
    fields: {},
    apply: (_, b) => {
      b.closeAfterBind = true;
    },
  }),
  defineAction({
    type: 'bind-nak',
    point: 'bind',
    description:
      'refuse the bind with a bind_nak (p_reject_reason, default 0 reason_not_specified), then close',
    fields: {
      reason: intIn(0, 0xffff, 'a p_reject_reason 0..65535 (e.g. 1 temporary_congestion)')
        .nullish()
        .transform((v) => v ?? BIND_NAK_REASON.NOT_SPECIFIED),
    },
    detail: (a) => `reason ${a.reason}`,
    apply: (a, b) => {
      b.bindNak ??= a.reason;
    },
  }),
  defineAction({
    type: 'reject-contexts',
    point: 'bind',
    description:
      'reject every presentation context (provider_rejection / proposed_transfer_syntaxes_not_supported); a request sent anyway gets nca_s_unk_if',
    fields: {},
    apply: (_, b) => {
      b.rejectContexts = true;
    },
  }),
  defineAction({
    type: 'refuse-connection',
    point: 'accept',
    description: 'close every matching connection as soon as it is accepted ("host down")',
    fields: {},
    apply: (_, c) => {
      c.refuse = true;
    },
  }),
] as const;

type AnyDescriptor = (typeof FAULT_ACTIONS)[number];

/** What a rule does, as written (in code, a scenario file or `POST /faults`). */
export type FaultAction = z.input<AnyDescriptor['schema']>;
export type FaultActionType = FaultAction['type'];

/** The descriptor of each action type. */
const ACTION_OF: ReadonlyMap<string, AnyDescriptor> = new Map(FAULT_ACTIONS.map((d) => [d.type, d]));
const ACTION_TYPES = FAULT_ACTIONS.map((d) => d.type).join(', ');

/** The actions a rule can name, with their level, interception point and description. */
export function faultActions(): {
  type: FaultActionType;
  level: FaultLevel;
  point: FaultPoint;
  description: string;
}[] {
  return FAULT_ACTIONS.map((d) => ({
    type: d.type,
    level: d.level,
    point: d.point,
    description: d.description,
  }));
}

/** Carries out a fired rule's action on the target of its point (the one place actions are dispatched). */
function applyAction<P extends FaultPoint>(
  r: CompiledRule,
  into: PointTarget[P],
  input: PointInput<P>,
): void {
  (r.descriptor.apply as (a: unknown, into: unknown, input: unknown) => void)(r.action, into, input);
}

function actionDetail(r: CompiledRule): string | undefined {
  const detail = r.descriptor.detail as ((a: unknown) => string) | undefined;
  return detail?.(r.action);
}

/** Checks and normalises an action through its descriptor; null (with the problems in `errors`) if it is bad. */
function parseAction(
  raw: unknown,
  at: string,
  errors: string[],
): { action: FaultAction; descriptor: AnyDescriptor } | null {
  if (!isObject(raw)) {
    errors.push(`${at}: an object { type, ... } with type one of ${ACTION_TYPES}; got ${describe(raw)}`);
    return null;
  }
  const type = raw['type'];
  const descriptor = typeof type === 'string' ? ACTION_OF.get(type) : undefined;
  if (descriptor === undefined) {
    errors.push(`${at}.type: one of ${ACTION_TYPES}; got ${describe(type)}`);
    return null;
  }
  const r = descriptor.schema.safeParse(raw);
  if (r.success) return { action: r.data as FaultAction, descriptor };
  const allowed = Object.keys(descriptor.fields);
  const fieldErrors: string[] = [];
  const seen = new Set<string>();
  for (const iss of r.error.issues) {
    if (iss.code === 'unrecognized_keys') {
      for (const k of iss.keys) {
        errors.push(
          `${at}: "${descriptor.type}" takes ${allowed.length ? allowed.join(', ') : 'no other key'}, not "${k}"`,
        );
      }
      continue;
    }
    const path = iss.path.map(String).join('.');
    // One message per field (a value can fail several checks of the same field).
    if (seen.has(path)) continue;
    seen.add(path);
    fieldErrors.push(`${at}.${path}: ${iss.message}`);
  }
  errors.push(...fieldErrors);
  return null;
}

// ---------------------------------------------------------------------------------------------------
// Rules as data

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
  const parsed = parseAction(raw['action'], `${at}.action`, errors);
  const level = parsed ? parsed.descriptor.level : null;
  const match = parseMatch(raw['match'], `${at}.match`, catalog, errors);
  if (level && level !== 'call' && isObject(raw['match'])) {
    for (const k of Object.keys(raw['match'])) {
      if (KMS_KEYS.has(k)) {
        errors.push(
          `${at}.match.${k}: action "${parsed!.descriptor.type}" acts on the ${level}, before any KMS request is read, so it can only match peer, nth, ruleNth, probability and window`,
        );
      }
    }
  }
  if (errors.length > before || !parsed) return null;
  const action = parsed.action;
  const name = typeof raw['name'] === 'string' ? raw['name'].trim() : `${action.type}#${i}`;
  return match && Object.keys(match).length > 0 ? { name, match, action } : { name, action };
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
  /** Where its action acts, and the descriptor that carries it out. */
  point: FaultPoint;
  descriptor: AnyDescriptor;
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
    const descriptor = ACTION_OF.get(rule.action.type);
    if (descriptor === undefined)
      throw new FaultRuleError([`faults[${index}].action.type: ${rule.action.type}?`]);
    return {
      index,
      name: rule.name ?? `${rule.action.type}#${index}`,
      level: descriptor.level,
      point: descriptor.point,
      descriptor,
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
    const detail = actionDetail(r);
    if (detail) f.detail = detail;
    for (const fn of this.listeners) fn(f);
  }

  /** Connection level: false refuses the connection. */
  accept(peer: string): boolean {
    this.connections += 1;
    this.attemptOf.set(peer, this.connections);
    if (this.attemptOf.size > 4096) this.attemptOf.delete(this.attemptOf.keys().next().value!);
    if (this.states.length === 0) return true;
    const time = this.clock.now();
    const fired = this.fire({ level: 'connection', peer, time, nth: this.connections });
    const into = { refuse: false };
    for (const r of fired) {
      applyAction<'accept'>(r, into, null);
      this.report(r, { time, connectionId: null, peer });
    }
    return !into.refuse;
  }

  /** Bind level. */
  bind(info: { peer: string; connectionId: number }): BindFault | null {
    if (this.states.length === 0) return null;
    const time = this.clock.now();
    const nth = this.attemptOf.get(info.peer) ?? info.connectionId;
    const fired = this.fire({ level: 'bind', peer: info.peer, time, nth });
    if (fired.length === 0) return null;
    const f: BindFault = { name: fired.map((r) => r.name).join('+') };
    for (const r of fired) {
      applyAction<'bind'>(r, f, null);
      this.report(r, { time, connectionId: info.connectionId, peer: info.peer });
    }
    return f;
  }

  /** Call level. */
  call(req: KmsRequestBody, info: CallInfo): CallFault | null {
    this.calls += 1;
    if (this.states.length === 0) return null;
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
    const name = fired.map((r) => r.name).join('+');
    const f: CallFault = {
      name,
      result: { label: name, reason: `fault ${name}` },
      stub: null,
      delivery: { name },
    };
    for (const r of fired) {
      if (r.point === 'result') applyAction<'result'>(r, f.result, req);
      else if (r.point === 'delivery') applyAction<'delivery'>(r, f.delivery, req);
      else applyAction<'stub'>(r, f, req);
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

function flipGuid(g: Guid): Guid {
  // Flip the last byte: a different, still well-formed CMID.
  return g.slice(0, -2) + (Number.parseInt(g.slice(-2), 16) ^ 0xff).toString(16).padStart(2, '0');
}
