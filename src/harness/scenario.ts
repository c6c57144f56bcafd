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

import { z } from 'zod';
import { INPUT_LIMITS, readTextBounded } from '../bounded-read.js';
import type { ActivationResult } from '../client/client.js';
import { type DurationInput, parseDuration } from '../host/clock.js';
import { GENUINE_MAX_SKEW_MS, type HostPolicy, parseIntervalMinutes } from '../host/policy.js';
import { randomGuid, SeededRandom } from '../host/random.js';
import { hresultHex, parseHResult } from '../kms/hresult.js';
import { didYouMean, expected, formatIssues } from '../schema.js';
import { type FaultRule, parseFaultRules, resolveTime, type TimeSpec } from './faults.js';
import { applicationId, type LabHost, type LabHostOptions, offsetClock, startLabHost } from './lab-host.js';

// ---------------------------------------------------------------------------------------------------
// The schema: the types below and the validation both come from it.

const show = (v: unknown) => JSON.stringify(v) ?? String(v);

const str = (what = 'a string') => z.string(expected(what));
const boolean = () => z.boolean(expected('a boolean'));
const int = (min: number) =>
  z.number(expected(`an integer ≥ ${min}`)).refine((v) => Number.isInteger(v) && v >= min, {
    error: (i) => `an integer ≥ ${min}, got ${show(i.input)}`,
  });
const numberRecord = (what: string) => z.record(z.string(), z.number(), expected(what));

/** A check run by a function of kmslab (duration, time, HRESULT parsers): its message is the issue. */
function checked<T extends z.ZodType>(schema: T, check: (v: z.output<T>) => unknown) {
  return schema.superRefine((v, ctx) => {
    try {
      check(v);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message, input: v });
    }
  });
}

const durationInput = z.union(
  [z.string(), z.number(), z.record(z.string(), z.unknown())],
  expected('a duration (30s, 4h, 7d) or { days, hours, minutes, ms }'),
) as z.ZodType<DurationInput>;
const duration = (signed = false) => checked(durationInput, (d) => signedDuration(d, signed));
const timeSpec = checked(durationInput as z.ZodType<TimeSpec>, (t) => resolveTime(t, 0));
const interval = checked(
  z.union([z.number(), z.string()], expected('minutes or a duration')),
  parseIntervalMinutes,
);

const policySchema = z.strictObject({
  refuseUnknown: boolean().optional(),
  refuseRetail: boolean().optional(),
  refuseMismatch: boolean().optional(),
  /** Duration (`4h`), or true for a genuine host's 4 hours; null / false for no check. */
  maxClockSkew: z.union([z.boolean(), z.null(), duration()]).optional(),
  /** Minutes as a number, or a duration (`120m`, `2h`). */
  activationInterval: interval.optional(),
  renewalInterval: interval.optional(),
  lenient: boolean().optional(),
  maxRequiredCount: int(1).optional(),
  dedupePreviousCmid: boolean().optional(),
});

const hostSchema = z.strictObject({
  seed: z.union([z.string(), z.number()], expected('a string or number')).optional(),
  /** Start of the manual clock (ISO). */
  start: checked(str('an ISO time'), (v) => {
    if (Number.isNaN(Date.parse(v))) throw new RangeError(`an ISO time, got ${show(v)}`);
  }).optional(),
  clock: z.enum(['manual', 'system'], expected('"manual" or "system"')).optional(),
  policy: policySchema.optional(),
  identity: z
    .strictObject({
      epids: z.record(z.string(), z.string(), expected('an object { pool name: ePID }')).optional(),
      hwid: z
        .string(expected('16 hex digits as a string (quote it in YAML)'))
        .regex(/^(0x)?[0-9a-f]{16}$/i, { error: (i) => `16 hex digits, got ${show(i.input)}` })
        .optional(),
      hostBuild: int(1).optional(),
      lcid: int(1).optional(),
    })
    .optional(),
  profile: z.strictObject({ ndr64: boolean().optional(), btfn: boolean().optional() }).optional(),
});

const activateSchema = z
  .strictObject({
    product: str().optional(),
    sku: str().optional(),
    app: str().optional(),
    kmsId: str().optional(),
    protocol: z
      .union([z.literal(4), z.literal(5), z.literal(6)], { error: (i) => `4, 5 or 6, got ${show(i.input)}` })
      .optional(),
    requiredCount: int(0).optional(),
    /** Simulated machines, one after the other (default 1). */
    machines: int(1).optional(),
    /** Machines of a named group keep their CMIDs: a later step with the same group renews them. */
    group: str().optional(),
    cmid: str().optional(),
    cmids: z.array(z.string(), expected('a list of GUIDs')).optional(),
    previousCmid: str().optional(),
    /** Workstation name prefix (default the group name, or PC). */
    workstation: str().optional(),
    /** Requests per machine, on one connection (default 1). */
    requests: int(1).optional(),
    newConnection: boolean().optional(),
    /** The machines' clocks run this far ahead of the host's (`5h`, `-5h`). */
    clockSkew: duration(true).optional(),
    ndr64: boolean().optional(),
    btfn: boolean().optional(),
    multiplex: boolean().optional(),
    vm: boolean().optional(),
    licenseStatus: int(0).optional(),
    timeoutMs: int(1).optional(),
  })
  // Run even when a field above failed, so every problem of the step is listed at once.
  .superRefine(
    (a, ctx) => {
      const n = a.machines;
      if (Array.isArray(a.cmids) && typeof n === 'number' && n !== a.cmids.length)
        ctx.addIssue({
          code: 'custom',
          path: ['cmids'],
          message: `${a.cmids.length} CMIDs for ${n} machines`,
        });
      if (a.cmid !== undefined && n !== undefined && n !== 1)
        ctx.addIssue({ code: 'custom', path: ['cmid'], message: 'one CMID is for one machine; use cmids' });
    },
    { when: () => true },
  );

/** Parses with `schema`, passing its issues on (paths relative to here), for a hand-made dispatch. */
function forward<T extends z.ZodType>(schema: T, v: unknown, ctx: z.RefinementCtx): z.output<T> {
  const r = schema.safeParse(v, { reportInput: true });
  if (r.success) return r.data;
  for (const i of r.error.issues) ctx.addIssue({ ...i } as z.core.$ZodRawIssue);
  return z.NEVER;
}

/** One object, or a list of them (a union would only say "Invalid input" for a bad one). */
const oneOrMany = <T extends z.ZodType>(schema: T) =>
  z
    .unknown()
    .transform((v, ctx): z.output<T> | z.output<T>[] =>
      Array.isArray(v) ? forward(z.array(schema), v, ctx) : forward(schema, v, ctx),
    );

const numberExpectation = z.union(
  [z.number(), z.strictObject({ min: z.number().optional(), max: z.number().optional() })],
  expected('a number or { min, max }'),
);

/** Checked against every result of the step (one per machine and request). */
const activateExpectSchema = z.strictObject({
  hresult: checked(
    z.union([z.string(), z.number()], expected('an HRESULT such as 0xC004F038')),
    parseHResult,
  ).optional(),
  activated: boolean().optional(),
  count: numberExpectation.optional(),
  /** One count per result, in order. */
  counts: z.array(z.number(), expected('a list of numbers')).optional(),
  /** The count of the last result. */
  lastCount: int(0).optional(),
  /** Failure kind of every result (transport, rpc, verification), or null for none. */
  error: z
    .union([z.enum(['transport', 'rpc', 'verification']), z.null()], {
      error: () => 'transport, rpc, verification, or null',
    })
    .optional(),
  /** How many results activated. */
  activatedResults: int(0).optional(),
});

const historyCheckSchema = z.strictObject({
  from: timeSpec.optional(),
  to: timeSpec.optional(),
  wouldActivate: boolean().optional(),
  cmid: str().optional(),
  applicationId: str().optional(),
  /** Number of history rows matching. */
  length: z.number({ error: () => 'the number of matching rows is required' }),
});

const hostCheckSchema = z.strictObject({
  /** Pool counts by application (windows, office2010, office2013, or an application id). */
  counts: numberRecord('an object { windows: 25, office2013: 5, ... }').optional(),
  /** Live CMIDs over all pools. */
  clients: int(0).optional(),
  history: oneOrMany(historyCheckSchema).optional(),
  /** Fault markers so far: a total, or by rule name. */
  faultEvents: z
    .union([z.number(), z.record(z.string(), z.number())], expected('a number, or { rule name: number }'))
    .optional(),
  /** Activation events so far. */
  activations: int(0).optional(),
});

/** Fault rules are the faults module's own: its parser checks them and gives them their type. */
const faultRules = z.unknown().transform((v, ctx): FaultRule[] => {
  try {
    return parseFaultRules(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message, input: v });
    return z.NEVER;
  }
});

const name = { name: str().optional() };
const STEP_SCHEMAS = {
  advance: z.strictObject({ ...name, advance: duration() }),
  at: z.strictObject({ ...name, at: timeSpec }),
  faults: z.strictObject({ ...name, faults: faultRules }),
  reset: z.strictObject({ ...name, reset: z.literal(true, expected('true')) }),
  activate: z.strictObject({ ...name, activate: activateSchema, expect: activateExpectSchema.optional() }),
  check: z.strictObject({ ...name, check: hostCheckSchema }),
} as const;
const STEP_KINDS = Object.keys(STEP_SCHEMAS) as (keyof typeof STEP_SCHEMAS)[];

/** A step has exactly one kind (its key); the kind's own schema checks the rest. */
const stepSchema = z
  .record(z.string(), z.unknown(), expected(`a step object with one of ${STEP_KINDS.join(', ')}`))
  .transform((s, ctx) => {
    const kinds = STEP_KINDS.filter((k) => k in s);
    if (kinds.length !== 1) {
      const unknown = Object.keys(s).filter((k) => k !== 'name' && k !== 'expect' && !(k in STEP_SCHEMAS));
      const hint = unknown.length === 1 ? didYouMean(unknown[0]!, STEP_KINDS, (k) => JSON.stringify(k)) : '';
      ctx.addIssue({
        code: 'custom',
        message: `exactly one of ${STEP_KINDS.join(', ')}; got ${kinds.length ? kinds.join(' and ') : 'none'}${hint}`,
      });
      return z.NEVER;
    }
    return forward(STEP_SCHEMAS[kinds[0]!], s, ctx) as ScenarioStep;
  });

const scenarioSchema = z.strictObject({
  name: z
    .string({ error: () => 'a name is required' })
    .trim()
    .min(1, { error: 'a name is required' }),
  description: str().optional(),
  host: hostSchema.optional(),
  /** Rules active from the start; a `faults` step replaces them. */
  faults: faultRules.optional(),
  steps: z.array(stepSchema, expected('a list of steps')).optional(),
  /** Checked after the last step. */
  expect: hostCheckSchema.optional(),
});

export type ScenarioPolicy = z.input<typeof policySchema>;
export type ScenarioHost = z.input<typeof hostSchema>;
export type ActivateSpec = z.output<typeof activateSchema>;
export type NumberExpectation = z.output<typeof numberExpectation>;
export type ActivateExpect = z.output<typeof activateExpectSchema>;
export type HistoryCheck = z.output<typeof historyCheckSchema>;
export type HostCheck = z.output<typeof hostCheckSchema>;
export type ScenarioStep = {
  [K in keyof typeof STEP_SCHEMAS]: z.output<(typeof STEP_SCHEMAS)[K]>;
}[keyof typeof STEP_SCHEMAS];
export type Scenario = z.output<typeof scenarioSchema>;

// ---------------------------------------------------------------------------------------------------
// Validation

export class ScenarioError extends Error {
  override readonly name = 'ScenarioError';
  constructor(readonly errors: string[]) {
    super(`invalid scenario:\n  ${errors.join('\n  ')}`);
  }
}

function signedDuration(d: DurationInput, signed = true): number {
  if (typeof d === 'string' && d.trim().startsWith('-')) {
    if (!signed) throw new RangeError(`a duration after now, got "${d}"`);
    return -parseDuration(d.trim().slice(1));
  }
  return parseDuration(d);
}

/** Every key a schema object at `path` allows, for the "did you mean" of an unknown key. */
function knownKeys(path: readonly PropertyKey[]): string[] {
  const named = path.filter((p) => typeof p === 'string') as string[];
  const last = named[named.length - 1];
  const shapes: Record<string, z.ZodObject> = {
    host: hostSchema,
    policy: policySchema,
    activate: activateSchema as unknown as z.ZodObject,
    expect: path[0] === 'steps' ? activateExpectSchema : hostCheckSchema,
    check: hostCheckSchema,
    history: historyCheckSchema,
    identity: hostSchema.shape.identity.unwrap(),
    profile: hostSchema.shape.profile.unwrap(),
  };
  if (last === undefined) return Object.keys(scenarioSchema.shape);
  const shape = shapes[last]?.shape;
  return shape ? Object.keys(shape) : [];
}

/** Checks a parsed scenario object; throws ScenarioError listing every problem. */
export function parseScenario(input: unknown, where = 'scenario'): Scenario {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw new ScenarioError([`${where}: an object with name, host, faults, steps, expect`]);
  const r = scenarioSchema.safeParse(input, { reportInput: true });
  if (r.success) return r.data;
  const label = (path: readonly PropertyKey[]) =>
    where + path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
  throw new ScenarioError(formatIssues(r.error.issues, label, knownKeys));
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
  if (p.maxClockSkew === true) out.maxClockSkewMs = GENUINE_MAX_SKEW_MS;
  else if (p.maxClockSkew === false || p.maxClockSkew === null) out.maxClockSkewMs = null;
  else if (p.maxClockSkew !== undefined) out.maxClockSkewMs = parseDuration(p.maxClockSkew);
  if (p.activationInterval !== undefined) out.activationInterval = parseIntervalMinutes(p.activationInterval);
  if (p.renewalInterval !== undefined) out.renewalInterval = parseIntervalMinutes(p.renewalInterval);
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
