/**
 * Scenario files (JSON or YAML): host settings, fault rules (which may change over time), and a script
 * of steps (move the clock, run simulated activations, check the host) with expected outcomes. Run
 * in-process against `startLabHost` by `runScenario` / `kmslab scenario run FILE`; `kmslab serve
 * --scenario FILE` applies only the host settings and the initial fault rules.
 *
 * ```yaml
 * name: threshold charging
 * host: { seed: 1, start: 2026-01-01T00:00:00Z }
 * steps:
 *   - activate: { product: Windows 10 Enterprise, machines: 24 }
 *     expect: { hresult: 0xC004F038, activated: false }
 *   - activate: { product: Windows 10 Enterprise }
 *     expect: { activated: true, count: 25 }
 * expect: { counts: { windows: 25 } }
 * ```
 */
import { INPUT_LIMITS, readTextBounded } from '../bounded-read.js';
import type { ActivationResult } from '../client/client.js';
import { type DurationInput, parseDuration } from '../host/clock.js';
import type { HostPolicy } from '../host/policy.js';
import { randomGuid, SeededRandom } from '../host/random.js';
import { hresultHex, parseHResult } from '../kms/hresult.js';
import type { KmsVersion } from '../kms/messages.js';
import { type FaultRule, parseFaultRules, resolveTime, type TimeSpec } from './faults.js';
import { applicationId, type LabHost, type LabHostOptions, offsetClock, startLabHost } from './lab-host.js';

// ---------------------------------------------------------------------------------------------------
// Types

export interface ScenarioPolicy {
  refuseUnknown?: boolean;
  refuseRetail?: boolean;
  refuseMismatch?: boolean;
  /** Duration (`4h`), or true for a genuine host's 4 hours; null / false for no check. */
  maxClockSkew?: DurationInput | boolean | null;
  /** Minutes as a number, or a duration (`120m`, `2h`). */
  activationInterval?: number | string;
  renewalInterval?: number | string;
  lenient?: boolean;
  maxRequiredCount?: number;
  dedupePreviousCmid?: boolean;
}

export interface ScenarioHost {
  seed?: string | number;
  /** Start of the manual clock (ISO). */
  start?: string;
  clock?: 'manual' | 'system';
  policy?: ScenarioPolicy;
  identity?: { epids?: Record<string, string>; hwid?: string; hostBuild?: number; lcid?: number };
  profile?: { ndr64?: boolean; btfn?: boolean };
}

export interface ActivateSpec {
  product?: string;
  sku?: string;
  app?: string;
  kmsId?: string;
  protocol?: KmsVersion;
  requiredCount?: number;
  /** Simulated machines, one after the other (default 1). */
  machines?: number;
  /** Machines of a named group keep their CMIDs: a later step with the same group renews them. */
  group?: string;
  cmid?: string;
  cmids?: string[];
  previousCmid?: string;
  /** Workstation name prefix (default the group name, or PC). */
  workstation?: string;
  /** Requests per machine, on one connection (default 1). */
  requests?: number;
  newConnection?: boolean;
  /** The machines' clocks run this far ahead of the host's (`5h`, `-5h`). */
  clockSkew?: DurationInput;
  ndr64?: boolean;
  btfn?: boolean;
  multiplex?: boolean;
  vm?: boolean;
  licenseStatus?: number;
  timeoutMs?: number;
}

export type NumberExpectation = number | { min?: number; max?: number };

/** Checked against every result of the step (one per machine and request). */
export interface ActivateExpect {
  hresult?: number | string;
  activated?: boolean;
  count?: NumberExpectation;
  /** One count per result, in order. */
  counts?: number[];
  /** The count of the last result. */
  lastCount?: number;
  /** Failure kind of every result (transport, rpc, verification), or null for none. */
  error?: 'transport' | 'rpc' | 'verification' | null;
  /** How many results activated. */
  activatedResults?: number;
}

export interface HistoryCheck {
  from?: TimeSpec;
  to?: TimeSpec;
  wouldActivate?: boolean;
  cmid?: string;
  applicationId?: string;
  /** Number of history rows matching. */
  length: number;
}

export interface HostCheck {
  /** Pool counts by application (windows, office2010, office2013, or an application id). */
  counts?: Record<string, number>;
  /** Live CMIDs over all pools. */
  clients?: number;
  history?: HistoryCheck | HistoryCheck[];
  /** Fault markers so far: a total, or by rule name. */
  faultEvents?: number | Record<string, number>;
  /** Activation events so far. */
  activations?: number;
}

export type ScenarioStep = { name?: string } & (
  | { advance: DurationInput }
  | { at: TimeSpec }
  | { faults: FaultRule[] }
  | { reset: true }
  | { activate: ActivateSpec; expect?: ActivateExpect }
  | { check: HostCheck }
);

export interface Scenario {
  name: string;
  description?: string;
  host?: ScenarioHost;
  /** Rules active from the start; a `faults` step replaces them. */
  faults?: FaultRule[];
  steps?: ScenarioStep[];
  /** Checked after the last step. */
  expect?: HostCheck;
}

// ---------------------------------------------------------------------------------------------------
// Validation

export class ScenarioError extends Error {
  override readonly name = 'ScenarioError';
  constructor(readonly errors: string[]) {
    super(`invalid scenario:\n  ${errors.join('\n  ')}`);
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown) => JSON.stringify(v) ?? String(v);

class Checker {
  readonly errors: string[] = [];
  err(at: string, msg: string): void {
    this.errors.push(`${at}: ${msg}`);
  }
  keys(o: Obj, at: string, allowed: readonly string[]): void {
    for (const k of Object.keys(o))
      if (!allowed.includes(k)) this.err(at, `unknown key "${k}" (use ${allowed.join(', ')})`);
  }
  type(o: Obj, k: string, at: string, t: 'string' | 'number' | 'boolean'): void {
    if (o[k] !== undefined && typeof o[k] !== t) this.err(`${at}.${k}`, `a ${t}, got ${show(o[k])}`);
  }
  int(o: Obj, k: string, at: string, min: number): void {
    const v = o[k];
    if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < min))
      this.err(`${at}.${k}`, `an integer ≥ ${min}, got ${show(v)}`);
  }
  duration(o: Obj, k: string, at: string, signed = false): void {
    if (o[k] === undefined) return;
    try {
      signedDuration(o[k] as DurationInput, signed);
    } catch (e) {
      this.err(`${at}.${k}`, (e as Error).message);
    }
  }
}

function signedDuration(d: DurationInput, signed = true): number {
  if (typeof d === 'string' && d.trim().startsWith('-')) {
    if (!signed) throw new RangeError(`a duration after now, got "${d}"`);
    return -parseDuration(d.trim().slice(1));
  }
  return parseDuration(d);
}

const POLICY_KEYS = [
  'refuseUnknown',
  'refuseRetail',
  'refuseMismatch',
  'maxClockSkew',
  'activationInterval',
  'renewalInterval',
  'lenient',
  'maxRequiredCount',
  'dedupePreviousCmid',
];
const ACTIVATE_KEYS = [
  'product',
  'sku',
  'app',
  'kmsId',
  'protocol',
  'requiredCount',
  'machines',
  'group',
  'cmid',
  'cmids',
  'previousCmid',
  'workstation',
  'requests',
  'newConnection',
  'clockSkew',
  'ndr64',
  'btfn',
  'multiplex',
  'vm',
  'licenseStatus',
  'timeoutMs',
];
const EXPECT_KEYS = ['hresult', 'activated', 'count', 'counts', 'lastCount', 'error', 'activatedResults'];
const CHECK_KEYS = ['counts', 'clients', 'history', 'faultEvents', 'activations'];
const STEP_KINDS = ['advance', 'at', 'faults', 'reset', 'activate', 'check'];

function checkHost(c: Checker, h: unknown, at: string): void {
  if (!isObj(h)) {
    c.err(at, `an object, got ${show(h)}`);
    return;
  }
  c.keys(h, at, ['seed', 'start', 'clock', 'policy', 'identity', 'profile']);
  if (h['seed'] !== undefined && typeof h['seed'] !== 'string' && typeof h['seed'] !== 'number')
    c.err(`${at}.seed`, 'a string or number');
  if (h['start'] !== undefined && Number.isNaN(Date.parse(String(h['start']))))
    c.err(`${at}.start`, `an ISO time, got ${show(h['start'])}`);
  if (h['clock'] !== undefined && h['clock'] !== 'manual' && h['clock'] !== 'system')
    c.err(`${at}.clock`, '"manual" or "system"');
  const p = h['policy'];
  if (p !== undefined) {
    if (!isObj(p)) c.err(`${at}.policy`, 'an object');
    else {
      c.keys(p, `${at}.policy`, POLICY_KEYS);
      for (const k of ['refuseUnknown', 'refuseRetail', 'refuseMismatch', 'lenient', 'dedupePreviousCmid'])
        c.type(p, k, `${at}.policy`, 'boolean');
      c.int(p, 'maxRequiredCount', `${at}.policy`, 1);
      if (typeof p['maxClockSkew'] !== 'boolean' && p['maxClockSkew'] !== null)
        c.duration(p, 'maxClockSkew', `${at}.policy`);
      for (const k of ['activationInterval', 'renewalInterval']) {
        if (p[k] === undefined) continue;
        try {
          minutes(p[k] as number | string);
        } catch (e) {
          c.err(`${at}.policy.${k}`, (e as Error).message);
        }
      }
    }
  }
  const id = h['identity'];
  if (id !== undefined) {
    if (!isObj(id)) c.err(`${at}.identity`, 'an object');
    else {
      c.keys(id, `${at}.identity`, ['epids', 'hwid', 'hostBuild', 'lcid']);
      if (
        id['hwid'] !== undefined &&
        (typeof id['hwid'] !== 'string' || !/^(0x)?[0-9a-f]{16}$/i.test(id['hwid']))
      ) {
        c.err(`${at}.identity.hwid`, `16 hex digits as a string (quote it in YAML), got ${show(id['hwid'])}`);
      }
      c.int(id, 'hostBuild', `${at}.identity`, 1);
      c.int(id, 'lcid', `${at}.identity`, 1);
      if (id['epids'] !== undefined && !isObj(id['epids']))
        c.err(`${at}.identity.epids`, 'an object { pool name: ePID }');
    }
  }
  const pr = h['profile'];
  if (pr !== undefined) {
    if (!isObj(pr)) c.err(`${at}.profile`, 'an object { ndr64, btfn }');
    else {
      c.keys(pr, `${at}.profile`, ['ndr64', 'btfn']);
      c.type(pr, 'ndr64', `${at}.profile`, 'boolean');
      c.type(pr, 'btfn', `${at}.profile`, 'boolean');
    }
  }
}

function checkNumberExpectation(c: Checker, v: unknown, at: string): void {
  if (typeof v === 'number') return;
  if (
    isObj(v) &&
    Object.keys(v).every((k) => k === 'min' || k === 'max') &&
    Object.values(v).every((x) => typeof x === 'number')
  )
    return;
  c.err(at, `a number or { min, max }, got ${show(v)}`);
}

function checkHostCheck(c: Checker, v: unknown, at: string): void {
  if (!isObj(v)) {
    c.err(at, `an object with any of ${CHECK_KEYS.join(', ')}`);
    return;
  }
  c.keys(v, at, CHECK_KEYS);
  if (v['counts'] !== undefined) {
    if (!isObj(v['counts']) || !Object.values(v['counts']).every((x) => typeof x === 'number')) {
      c.err(`${at}.counts`, 'an object { windows: 25, office2013: 5, ... }');
    }
  }
  c.int(v, 'clients', at, 0);
  c.int(v, 'activations', at, 0);
  const fe = v['faultEvents'];
  if (
    fe !== undefined &&
    typeof fe !== 'number' &&
    !(isObj(fe) && Object.values(fe).every((x) => typeof x === 'number'))
  ) {
    c.err(`${at}.faultEvents`, 'a number, or { rule name: number }');
  }
  if (v['history'] !== undefined) {
    const list = Array.isArray(v['history']) ? v['history'] : [v['history']];
    list.forEach((h, i) => {
      const hat = `${at}.history${Array.isArray(v['history']) ? `[${i}]` : ''}`;
      if (!isObj(h)) {
        c.err(hat, 'an object { from?, to?, wouldActivate?, cmid?, applicationId?, length }');
        return;
      }
      c.keys(h, hat, ['from', 'to', 'wouldActivate', 'cmid', 'applicationId', 'length']);
      if (typeof h['length'] !== 'number') c.err(`${hat}.length`, 'the number of matching rows is required');
      c.type(h, 'wouldActivate', hat, 'boolean');
      for (const k of ['from', 'to']) {
        if (h[k] === undefined) continue;
        try {
          resolveTime(h[k] as TimeSpec, 0);
        } catch (e) {
          c.err(`${hat}.${k}`, (e as Error).message);
        }
      }
    });
  }
}

function checkStep(c: Checker, s: unknown, at: string): void {
  if (!isObj(s)) {
    c.err(at, `a step object with one of ${STEP_KINDS.join(', ')}`);
    return;
  }
  const kinds = Object.keys(s).filter((k) => STEP_KINDS.includes(k));
  if (kinds.length !== 1) {
    c.err(at, `exactly one of ${STEP_KINDS.join(', ')}; got ${kinds.length ? kinds.join(' and ') : 'none'}`);
    return;
  }
  const kind = kinds[0]!;
  c.keys(s, at, ['name', kind, ...(kind === 'activate' ? ['expect'] : [])]);
  c.type(s, 'name', at, 'string');
  switch (kind) {
    case 'advance':
      c.duration(s, 'advance', at);
      break;
    case 'at':
      try {
        resolveTime(s['at'] as TimeSpec, 0);
      } catch (e) {
        c.err(`${at}.at`, (e as Error).message);
      }
      break;
    case 'faults':
      try {
        parseFaultRules(s['faults']);
      } catch (e) {
        c.err(`${at}.faults`, (e as Error).message);
      }
      break;
    case 'reset':
      if (s['reset'] !== true) c.err(`${at}.reset`, 'true');
      break;
    case 'check':
      checkHostCheck(c, s['check'], `${at}.check`);
      break;
    case 'activate': {
      const a = s['activate'];
      const aat = `${at}.activate`;
      if (!isObj(a)) {
        c.err(aat, 'an object (product, machines, group, ...)');
        break;
      }
      c.keys(a, aat, ACTIVATE_KEYS);
      for (const k of ['product', 'sku', 'app', 'kmsId', 'cmid', 'previousCmid', 'group', 'workstation'])
        c.type(a, k, aat, 'string');
      for (const k of ['newConnection', 'ndr64', 'btfn', 'multiplex', 'vm']) c.type(a, k, aat, 'boolean');
      c.int(a, 'machines', aat, 1);
      c.int(a, 'requests', aat, 1);
      c.int(a, 'requiredCount', aat, 0);
      c.int(a, 'licenseStatus', aat, 0);
      c.int(a, 'timeoutMs', aat, 1);
      if (a['protocol'] !== undefined && ![4, 5, 6].includes(a['protocol'] as number))
        c.err(`${aat}.protocol`, '4, 5 or 6');
      c.duration(a, 'clockSkew', aat, true);
      if (a['cmids'] !== undefined) {
        if (!Array.isArray(a['cmids']) || !a['cmids'].every((x) => typeof x === 'string'))
          c.err(`${aat}.cmids`, 'a list of GUIDs');
        else if (a['machines'] !== undefined && a['machines'] !== a['cmids'].length) {
          c.err(`${aat}.cmids`, `${a['cmids'].length} CMIDs for ${a['machines']} machines`);
        }
      }
      if (a['cmid'] !== undefined && a['machines'] !== undefined && a['machines'] !== 1)
        c.err(`${aat}.cmid`, 'one CMID is for one machine; use cmids');
      const e = s['expect'];
      if (e !== undefined) {
        const eat = `${at}.expect`;
        if (!isObj(e)) {
          c.err(eat, `an object with any of ${EXPECT_KEYS.join(', ')}`);
          break;
        }
        c.keys(e, eat, EXPECT_KEYS);
        if (e['hresult'] !== undefined) {
          try {
            parseHResult(e['hresult'] as string | number);
          } catch (err) {
            c.err(`${eat}.hresult`, (err as Error).message);
          }
        }
        c.type(e, 'activated', eat, 'boolean');
        if (e['count'] !== undefined) checkNumberExpectation(c, e['count'], `${eat}.count`);
        if (
          e['counts'] !== undefined &&
          (!Array.isArray(e['counts']) || !e['counts'].every((x) => typeof x === 'number'))
        ) {
          c.err(`${eat}.counts`, 'a list of numbers');
        }
        c.int(e, 'lastCount', eat, 0);
        c.int(e, 'activatedResults', eat, 0);
        if (
          e['error'] !== undefined &&
          e['error'] !== null &&
          !['transport', 'rpc', 'verification'].includes(e['error'] as string)
        ) {
          c.err(`${eat}.error`, 'transport, rpc, verification, or null');
        }
      }
      break;
    }
  }
}

/** Checks a parsed scenario object; throws ScenarioError listing every problem. */
export function parseScenario(input: unknown, where = 'scenario'): Scenario {
  const c = new Checker();
  if (!isObj(input)) throw new ScenarioError([`${where}: an object with name, host, faults, steps, expect`]);
  c.keys(input, where, ['name', 'description', 'host', 'faults', 'steps', 'expect']);
  if (typeof input['name'] !== 'string' || input['name'].trim() === '')
    c.err(`${where}.name`, 'a name is required');
  c.type(input, 'description', where, 'string');
  if (input['host'] !== undefined) checkHost(c, input['host'], `${where}.host`);
  let faults: FaultRule[] | undefined;
  if (input['faults'] !== undefined) {
    try {
      faults = parseFaultRules(input['faults']);
    } catch (e) {
      c.err(`${where}.faults`, (e as Error).message);
    }
  }
  if (input['steps'] !== undefined) {
    if (!Array.isArray(input['steps'])) c.err(`${where}.steps`, 'a list of steps');
    else {
      for (const [i, st] of input['steps'].entries()) checkStep(c, st, `${where}.steps[${i}]`);
    }
  }
  if (input['expect'] !== undefined) checkHostCheck(c, input['expect'], `${where}.expect`);
  if (c.errors.length > 0) throw new ScenarioError(c.errors);
  const s = input as unknown as Scenario;
  return faults ? { ...s, faults } : s;
}

/** Reads and checks a scenario file (YAML by extension .yaml / .yml, else JSON). */
export async function loadScenario(path: string): Promise<Scenario> {
  const text = readTextBounded(path, INPUT_LIMITS.scenario, 'scenario file');
  let data: unknown;
  try {
    if (/\.ya?ml$/i.test(path)) {
      const { parse } = await import('yaml');
      data = parse(text);
    } else data = JSON.parse(text);
  } catch (e) {
    throw new ScenarioError([`${path}: ${(e as Error).message}`]);
  }
  return parseScenario(data, path);
}

// ---------------------------------------------------------------------------------------------------
// Host settings

function minutes(v: number | string): number {
  const ms =
    typeof v === 'number' || /^\d+$/.test(String(v).trim()) ? Number(v) * 60_000 : parseDuration(String(v));
  const m = Math.floor(ms / 60_000);
  if (m < 1) throw new RangeError(`interval "${v}" is under one minute`);
  return m;
}

/** A genuine host's skew limit (spec f.5). */
const GENUINE_SKEW_MS = 4 * 3600_000;

export function scenarioPolicy(p: ScenarioPolicy = {}): Partial<HostPolicy> {
  const out: Partial<HostPolicy> = {};
  for (const k of [
    'refuseUnknown',
    'refuseRetail',
    'refuseMismatch',
    'lenient',
    'dedupePreviousCmid',
  ] as const) {
    if (p[k] !== undefined) out[k] = p[k];
  }
  if (p.maxRequiredCount !== undefined) out.maxRequiredCount = p.maxRequiredCount;
  if (p.maxClockSkew === true) out.maxClockSkewMs = GENUINE_SKEW_MS;
  else if (p.maxClockSkew === false || p.maxClockSkew === null) out.maxClockSkewMs = null;
  else if (p.maxClockSkew !== undefined) out.maxClockSkewMs = parseDuration(p.maxClockSkew);
  if (p.activationInterval !== undefined) out.activationInterval = minutes(p.activationInterval);
  if (p.renewalInterval !== undefined) out.renewalInterval = minutes(p.renewalInterval);
  return out;
}

/** The startLabHost options a scenario's host settings and initial faults give. */
export function scenarioLabOptions(s: Scenario): LabHostOptions {
  const h = s.host ?? {};
  const o: LabHostOptions = {};
  if (h.seed !== undefined) o.seed = h.seed;
  if (h.start !== undefined) o.start = h.start;
  if (h.clock !== undefined) o.clock = h.clock;
  if (h.policy) o.policy = scenarioPolicy(h.policy);
  if (h.identity) o.identity = { ...h.identity };
  if (h.profile) o.profile = { ndr64: h.profile.ndr64 !== false, btfn: h.profile.btfn !== false };
  if (s.faults) o.faults = s.faults;
  return o;
}

// ---------------------------------------------------------------------------------------------------
// Running

export interface ExpectationResult {
  /** 1-based step number, or 'final' for the scenario's own expect block. */
  step: number | 'final';
  label: string;
  passed: boolean;
  expected: unknown;
  actual: unknown;
}

export interface ScenarioReport {
  name: string;
  passed: boolean;
  expectations: ExpectationResult[];
  /** A step that could not run (the scenario stops there). */
  error?: string;
}

export interface RunScenarioOptions {
  /** Record a transcript of the run (path, or true to keep it in memory: `report.transcript`). */
  record?: string | true;
  /** More startLabHost options (they win over the scenario's). */
  host?: LabHostOptions;
  /** Called with the host once it runs (e.g. to watch its events). */
  onHost?: (host: LabHost) => void;
}

function summarize(values: unknown[]): string {
  const counts = new Map<string, number>();
  for (const v of values) {
    const k = typeof v === 'string' ? v : show(v);
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => (n > 1 ? `${n}× ${k}` : k)).join(', ');
}

function numberOk(v: number | null | undefined, e: NumberExpectation): boolean {
  if (v === null || v === undefined) return false;
  if (typeof e === 'number') return v === e;
  return (e.min === undefined || v >= e.min) && (e.max === undefined || v <= e.max);
}

function stepLabel(i: number, s: ScenarioStep): string {
  if (s.name) return s.name;
  if ('activate' in s) {
    const a = s.activate;
    const what = a.product ?? a.sku ?? a.kmsId ?? 'default product';
    return `activate ${a.machines ?? (a.cmids?.length || 1)}× ${what}${a.group ? ` (${a.group})` : ''}`;
  }
  if ('check' in s) return 'check';
  return Object.keys(s).find((k) => k !== 'name') ?? `step ${i}`;
}

interface Machine {
  cmid: string;
  workstation: string;
}

/** Runs a scenario in a fresh lab host; never throws for a failing expectation (see the report). */
export async function runScenario(
  input: Scenario | string,
  opts: RunScenarioOptions = {},
): Promise<ScenarioReport & { transcript?: string[] }> {
  const s = typeof input === 'string' ? await loadScenario(input) : parseScenario(input);
  const report: ScenarioReport & { transcript?: string[] } = {
    name: s.name,
    passed: false,
    expectations: [],
  };
  const host = await startLabHost({
    ...scenarioLabOptions(s),
    ...(opts.record !== undefined ? { record: opts.record } : {}),
    ...opts.host,
  });
  opts.onHost?.(host);
  const groups = new Map<string, Machine[]>();
  const expect = (
    step: number | 'final',
    label: string,
    passed: boolean,
    expected: unknown,
    actual: unknown,
  ) => report.expectations.push({ step, label, passed, expected, actual });

  const check = (step: number | 'final', label: string, c: HostCheck) => {
    const at = (what: string) => (label ? `${label}: ${what}` : what);
    for (const [app, want] of Object.entries(c.counts ?? {})) {
      expect(step, at(`${app} count`), host.count(app) === want, want, host.count(app));
    }
    if (c.clients !== undefined) {
      const n = host.clients().length;
      expect(step, at(`live clients`), n === c.clients, c.clients, n);
    }
    for (const h of c.history === undefined ? [] : Array.isArray(c.history) ? c.history : [c.history]) {
      const rows = host.history({
        ...(h.from !== undefined ? { from: resolveTime(h.from, host.origin) } : {}),
        ...(h.to !== undefined ? { to: resolveTime(h.to, host.origin) } : {}),
        ...(h.wouldActivate !== undefined ? { wouldActivate: h.wouldActivate } : {}),
        ...(h.cmid !== undefined ? { cmid: h.cmid } : {}),
        ...(h.applicationId !== undefined ? { applicationId: h.applicationId } : {}),
      });
      const { length, ...q } = h;
      expect(step, at(`history ${show(q)}`), rows.length === length, length, rows.length);
    }
    if (c.faultEvents !== undefined) {
      const faults = host.events.all('fault');
      if (typeof c.faultEvents === 'number') {
        expect(step, at(`fault events`), faults.length === c.faultEvents, c.faultEvents, faults.length);
      } else {
        for (const [rule, want] of Object.entries(c.faultEvents)) {
          const n = faults.filter((f) => f.rule === rule).length;
          expect(step, at(`fault events of "${rule}"`), n === want, want, n);
        }
      }
    }
    if (c.activations !== undefined) {
      const n = host.events.all('activation').length;
      expect(step, at(`activation events`), n === c.activations, c.activations, n);
    }
  };

  const machinesFor = (i: number, a: ActivateSpec): Machine[] => {
    const n = a.cmids?.length ?? a.machines ?? 1;
    const prefix = (a.workstation ?? a.group ?? 'PC').toUpperCase();
    const list: Machine[] = a.group ? (groups.get(a.group) ?? []) : [];
    for (let k = list.length; k < n; k++) {
      list.push({
        cmid: randomGuid(new SeededRandom(`${host.seed}/scenario/${a.group ?? `step${i}`}/${k}`)),
        workstation: `${prefix}-${String(k + 1).padStart(2, '0')}`,
      });
    }
    if (a.group) groups.set(a.group, list);
    const chosen = list.slice(0, n).map((m) => ({ ...m }));
    if (a.cmids) for (const [k, c] of a.cmids.entries()) chosen[k]!.cmid = c;
    if (a.cmid) chosen[0]!.cmid = a.cmid;
    return chosen;
  };

  try {
    const steps = s.steps ?? [];
    for (let idx = 0; idx < steps.length; idx++) {
      const step = steps[idx]!;
      const i = idx + 1;
      const label = stepLabel(i, step);
      try {
        if ('advance' in step) await host.advance(step.advance);
        else if ('at' in step) await host.setTime(resolveTime(step.at, host.origin));
        else if ('faults' in step) host.setFaults(step.faults);
        else if ('reset' in step) await host.reset();
        else if ('check' in step) check(i, label, step.check);
        else if ('activate' in step) {
          const a = step.activate;
          const results: ActivationResult[] = [];
          const skew = a.clockSkew === undefined ? 0 : signedDuration(a.clockSkew);
          const machines = machinesFor(i, a);
          for (let k = 0; k < machines.length; k++) {
            const m = machines[k]!;
            const r = await host.activate({
              ...(a.product !== undefined ? { product: a.product } : {}),
              ...(a.sku !== undefined ? { sku: a.sku } : {}),
              ...(a.app !== undefined ? { app: applicationId(a.app) } : {}),
              ...(a.kmsId !== undefined ? { kmsId: a.kmsId } : {}),
              ...(a.protocol !== undefined ? { protocol: a.protocol } : {}),
              ...(a.requiredCount !== undefined ? { requiredCount: a.requiredCount } : {}),
              ...(a.previousCmid !== undefined ? { previousCmid: a.previousCmid } : {}),
              ...(a.ndr64 !== undefined ? { ndr64: a.ndr64 } : {}),
              ...(a.btfn !== undefined ? { btfn: a.btfn } : {}),
              ...(a.multiplex !== undefined ? { multiplex: a.multiplex } : {}),
              ...(a.vm !== undefined ? { vm: a.vm } : {}),
              ...(a.licenseStatus !== undefined ? { licenseStatus: a.licenseStatus } : {}),
              timeoutMs: a.timeoutMs ?? 5000,
              cmid: m.cmid,
              workstation: m.workstation,
              random: new SeededRandom(`${host.seed}/scenario-client/${i}/${k}`),
              clock: offsetClock(host.clock, skew),
              requests: a.requests ?? 1,
              newConnection: a.newConnection ?? false,
            });
            results.push(...r);
          }
          const e = step.expect ?? {};
          if (e.hresult !== undefined) {
            const want = parseHResult(e.hresult);
            expect(
              i,
              `${label}: hresult`,
              results.every((r) => r.hresult === want),
              hresultHex(want),
              summarize(results.map((r) => hresultHex(r.hresult))),
            );
          }
          if (e.activated !== undefined) {
            expect(
              i,
              `${label}: activated`,
              results.every((r) => r.activated === e.activated),
              e.activated,
              summarize(results.map((r) => r.activated)),
            );
          }
          if (e.count !== undefined) {
            const want = e.count;
            expect(
              i,
              `${label}: count`,
              results.every((r) => numberOk(r.count, want)),
              want,
              summarize(results.map((r) => r.count)),
            );
          }
          if (e.counts !== undefined) {
            const got = results.map((r) => r.count);
            expect(i, `${label}: counts`, show(got) === show(e.counts), e.counts, got);
          }
          if (e.lastCount !== undefined) {
            const got = results[results.length - 1]?.count ?? null;
            expect(i, `${label}: last count`, got === e.lastCount, e.lastCount, got);
          }
          if (e.error !== undefined) {
            const got = results.map((r) => r.error?.kind ?? null);
            expect(
              i,
              `${label}: error`,
              got.every((g) => g === e.error),
              e.error,
              summarize(got),
            );
          }
          if (e.activatedResults !== undefined) {
            const n = results.filter((r) => r.activated).length;
            expect(i, `${label}: activated results`, n === e.activatedResults, e.activatedResults, n);
          }
        }
      } catch (err) {
        report.error = `step ${i} (${label}): ${(err as Error).message}`;
        break;
      }
    }
    if (!report.error && s.expect) check('final', '', s.expect);
  } finally {
    const t = host.transcript();
    await host.close();
    if (t) report.transcript = t;
  }
  report.passed = !report.error && report.expectations.every((e) => e.passed);
  return report;
}

/** One line per expectation, ✓ or ✗, then a summary line. */
export function formatScenarioReport(r: ScenarioReport): string {
  const lines = [`scenario: ${r.name}`];
  for (const e of r.expectations) {
    const where = e.step === 'final' ? 'final' : `step ${e.step}`;
    lines.push(
      e.passed
        ? `  ✓ ${where}: ${e.label}`
        : `  ✗ ${where}: ${e.label}: expected ${show(e.expected)}, got ${typeof e.actual === 'string' ? e.actual : show(e.actual)}`,
    );
  }
  if (r.error) lines.push(`  ✗ ${r.error}`);
  const failed = r.expectations.filter((e) => !e.passed).length;
  lines.push(
    r.passed
      ? `PASS ${r.name}: ${r.expectations.length} expectations met`
      : `FAIL ${r.name}: ${failed} of ${r.expectations.length} expectations failed${r.error ? ', and a step could not run' : ''}`,
  );
  return lines.join('\n');
}
