/**
 * fast-check arbitraries for threshold tests: CMIDs, machines, schedules, clock steps, fleets and whole
 * KMS requests (valid, and mutated for negative tests). Bounds are small and every number is an
 * `fc.integer` (biased toward small values and the bounds, shrinking toward the minimum), and CMIDs
 * are GUIDs spelled from small integers, so a shrunk counterexample is a handful of machines and days
 * that reads at a glance: `00000000-0000-4000-8000-000000000003` is machine 3.
 */
import fc from 'fast-check';
import { formatDuration } from '../host/clock.js';
import { encodeRequest } from '../kms/envelope.js';
import type { KmsRequestBody, KmsVersion, NdrSyntax, RequestContext } from '../kms/messages.js';
import { wrapRequestStub } from '../kms/stub.js';
import { fileTimeFromMs } from '../wire/filetime.js';
import { NIL_GUID } from '../wire/guid.js';
import { PRODUCT_CLASSES, type ProductClass, type ProductInfo, productInfo } from './products.js';

export const MINUTE_MS = 60_000;
export const HOUR_MS = 60 * MINUTE_MS;
export const DAY_MS = 24 * HOUR_MS;

/**
 * Gives `value` the text fast-check prints for it in a counterexample (`fc.toStringMethod`), so that a
 * shrunk fleet reads `PC-1 windows-server N=5 from day 0 00:00 on` rather than a page of
 * GUIDs. A spread copy keeps the text (own symbol properties are copied): give the copy its own.
 */
function readable<T extends object>(value: T, text: (v: T) => string): T {
  return Object.assign(value, { [fc.toStringMethod]: () => text(value) });
}

/** A duration unit by unit: `30d 1ms`, `3h 59m 2s 475ms`, `-1h`, `0ms`. */
function durationText(ms: number): string {
  let rest = Math.abs(ms);
  const parts: string[] = [];
  for (const unit of [DAY_MS, HOUR_MS, MINUTE_MS, 1000, 1]) {
    const whole = rest - (rest % unit);
    if (whole !== 0) parts.push(formatDuration(whole));
    rest -= whole;
  }
  return `${ms < 0 ? '-' : ''}${parts.join(' ') || '0ms'}`;
}

/** Day and time of day after the fleet's start: `day 2 05:00`. */
function dayText(ms: number): string {
  const day = Math.floor(ms / DAY_MS);
  const rest = ms - day * DAY_MS;
  const hh = String(Math.floor(rest / HOUR_MS)).padStart(2, '0');
  const mm = String(Math.floor((rest % HOUR_MS) / MINUTE_MS)).padStart(2, '0');
  return `day ${day} ${hh}:${mm}`;
}

/** Machine `n`'s CMID: a valid version-4 GUID whose last group is `n` in hex (n in 0..2^48-1). */
export function cmidOf(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0 || n >= 2 ** 48) throw new RangeError(`cmidOf(${n})`);
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

/** The number `cmidOf` spelled, or null for a CMID it did not make. */
export function cmidNumber(cmid: string): number | null {
  const m = /^00000000-0000-4000-8000-([0-9a-f]{12})$/.exec(cmid.toLowerCase());
  return m ? Number.parseInt(m[1]!, 16) : null;
}

export interface CmidOptions {
  /** Machines are numbered 1..max (default 30). */
  max?: number;
}

/** One CMID: machine 1..max. */
export function cmid(opts: CmidOptions = {}): fc.Arbitrary<string> {
  return fc.integer({ min: 1, max: opts.max ?? 30 }).map(cmidOf);
}

export interface CmidsOptions extends CmidOptions {
  minLength?: number;
  maxLength?: number;
  /** true: no CMID twice (default); false: duplicates allowed (a machine asking again). */
  distinct?: boolean;
}

export function cmids(opts: CmidsOptions = {}): fc.Arbitrary<string[]> {
  const max = opts.max ?? 30;
  const constraints = { minLength: opts.minLength ?? 0, maxLength: Math.min(opts.maxLength ?? 30, max) };
  const n = fc.integer({ min: 1, max });
  return (
    opts.distinct === false
      ? fc.array(n, { ...constraints, maxLength: opts.maxLength ?? 30 })
      : fc.uniqueArray(n, constraints)
  ).map((xs) => xs.map(cmidOf));
}

export function productClass(classes: readonly ProductClass[] = PRODUCT_CLASSES): fc.Arbitrary<ProductClass> {
  return fc.constantFrom(...classes);
}

/** A machine: its CMID, its product and the RequiredClientCount it sends (from the catalog). */
export interface Machine extends ProductInfo {
  /** 1, 2, 3, ...: the number in its CMID and its workstation name (PC-3). */
  id: number;
  cmid: string;
  workstation: string;
}

const machineText = (m: Machine): string => `${m.workstation} ${m.productClass} N=${m.requiredCount}`;

/** Machine `id` of class `c`; prints as `PC-3 windows-server N=5` in a counterexample. */
export function machineOf(id: number, c: ProductClass): Machine {
  return readable({ id, cmid: cmidOf(id), workstation: `PC-${id}`, ...productInfo(c) }, machineText);
}

export interface MachineOptions extends CmidOptions {
  classes?: readonly ProductClass[];
}

export function machine(opts: MachineOptions = {}): fc.Arbitrary<Machine> {
  return fc
    .tuple(fc.integer({ min: 1, max: opts.max ?? 30 }), productClass(opts.classes))
    .map(([id, c]) => machineOf(id, c));
}

/**
 * When a machine talks to the host: its first contact, and (churn) when it leaves the fleet for good.
 * Between the two it follows the KMS client's own timers (see `playFleet`): a retry every
 * VLActivationInterval (2 h) until activated, then a renewal every VLRenewalInterval (7 days).
 */
export interface Schedule {
  /** ms after the fleet's start. */
  firstContact: number;
  /** ms after the fleet's start when it stops asking, or null (stays to the end). */
  leaves: number | null;
}

export interface ScheduleOptions {
  /** First contacts fall in days 0..days-1 (default 7), on the hour. */
  days?: number;
}

export function schedule(opts: ScheduleOptions = {}): fc.Arbitrary<Schedule> {
  const days = opts.days ?? 7;
  return fc
    .record({
      day: fc.integer({ min: 0, max: days - 1 }),
      hour: fc.integer({ min: 0, max: 23 }),
      stay: fc.option(fc.integer({ min: 1, max: 40 }), { nil: null, freq: 4 }),
    })
    .map(({ day, hour, stay }) => {
      const firstContact = day * DAY_MS + hour * HOUR_MS;
      return { firstContact, leaves: stay === null ? null : firstContact + stay * DAY_MS };
    });
}

export type FleetMachine = Machine & Schedule;

export interface Fleet {
  /** The fleet runs for this many virtual days from its start. */
  days: number;
  /** Distinct machines, numbered 1..n. */
  machines: FleetMachine[];
}

export interface FleetOptions {
  /** Default 30 (enough for Windows clients to reach 25). */
  maxMachines?: number;
  minMachines?: number;
  /** Default 10 virtual days. */
  maxDays?: number;
  classes?: readonly ProductClass[];
  /** fast-check's size of the machine list (default 'small', about ten; 'max' for up to maxMachines). */
  size?: fc.SizeForArbitrary;
}

/**
 * A fleet over virtual days: machines numbered from 1, each with its product and schedule. First
 * contacts fall within the fleet's days. (Built without `chain`, so both the days and the machines
 * shrink.)
 */
export function fleet(opts: FleetOptions = {}): fc.Arbitrary<Fleet> {
  const maxDays = opts.maxDays ?? 10;
  return fc
    .record({
      days: fc.integer({ min: 1, max: maxDays }),
      machines: fc.array(fc.tuple(productClass(opts.classes), schedule({ days: maxDays })), {
        minLength: opts.minMachines ?? 0,
        maxLength: opts.maxMachines ?? 30,
        ...(opts.size !== undefined ? { size: opts.size } : {}),
      }),
    })
    .map(({ days, machines }) => ({
      days,
      machines: machines.map(([c, s], i) => {
        // A first contact past the fleet's end moves into its last day (same hour).
        const late = Math.floor(s.firstContact / DAY_MS) - (days - 1);
        const shift = late > 0 ? late * DAY_MS : 0;
        return readable(
          {
            ...machineOf(i + 1, c),
            firstContact: s.firstContact - shift,
            leaves: s.leaves === null ? null : s.leaves - shift,
          },
          (m) =>
            `${machineText(m)} from ${dayText(m.firstContact)} ${m.leaves === null ? 'on' : `until ${dayText(m.leaves)}`}`,
        );
      }),
    }));
}

/** One step of the host clock: forward, a jump (either way: someone set the clock), or nothing. */
export type ClockStep = { kind: 'advance'; ms: number } | { kind: 'jump'; ms: number };

/** Durations that matter to a KMS host, to be drawn often: the intervals and both sides of 30 days. */
const NOTABLE_MS = [0, 1, 2 * HOUR_MS, DAY_MS, 7 * DAY_MS, 30 * DAY_MS - 1, 30 * DAY_MS, 30 * DAY_MS + 1];

export interface ClockOptions {
  /** Largest advance, default 40 days. */
  maxAdvanceMs?: number;
  /** Largest jump either way, default 40 days; 0 for a clock that only moves forward. */
  maxJumpMs?: number;
}

/** How far to move: a notable duration, whole hours, or any ms (biased small). */
export function duration(maxMs = 40 * DAY_MS): fc.Arbitrary<number> {
  return fc.oneof(
    fc.constantFrom(...NOTABLE_MS.filter((d) => d <= maxMs)),
    fc.integer({ min: 0, max: Math.floor(maxMs / HOUR_MS) }).map((h) => h * HOUR_MS),
    fc.integer({ min: 0, max: maxMs }),
  );
}

export function clockStep(opts: ClockOptions = {}): fc.Arbitrary<ClockStep> {
  const advance = duration(opts.maxAdvanceMs).map(
    (ms): ClockStep => readable({ kind: 'advance', ms }, (c) => `advance ${durationText(c.ms)}`),
  );
  const maxJump = opts.maxJumpMs ?? 40 * DAY_MS;
  if (maxJump === 0) return advance;
  const jump = fc
    .tuple(fc.boolean(), duration(maxJump))
    .map(
      ([back, ms]): ClockStep =>
        readable({ kind: 'jump', ms: back ? -ms : ms }, (c) => `jump ${durationText(c.ms)}`),
    );
  return fc.oneof({ arbitrary: advance, weight: 4 }, { arbitrary: jump, weight: 1 });
}

/** A client clock off from the host's: mostly exact, else up to ±maxMs (default 6 h, past the 4 h limit). */
export function clockSkew(maxMs = 6 * HOUR_MS): fc.Arbitrary<number> {
  return fc.oneof(
    { arbitrary: fc.constant(0), weight: 3 },
    { arbitrary: fc.integer({ min: -maxMs, max: maxMs }), weight: 1 },
  );
}

/** One request of a host script: which machine asks, and how far off its clock is. */
export interface RequestStep {
  kind: 'request';
  machine: Machine;
  /** Client clock minus host clock, ms. */
  skewMs: number;
}

export type HostStep = RequestStep | ClockStep;

export interface HostStepsOptions extends MachineOptions, ClockOptions {
  minLength?: number;
  maxLength?: number;
  /**
   * fast-check's size of the step list (default: its global `baseSize`, 'small': about ten steps).
   * 'max' draws lengths up to maxLength, which reaching 25 Windows machines needs.
   */
  size?: fc.SizeForArbitrary;
  /** Skew the clients' clocks (default true). */
  skew?: boolean;
}

/**
 * A host script: requests from machines 1..max (each machine keeps one product, so the same CMID is
 * always the same machine) mixed with clock steps.
 */
export function hostSteps(opts: HostStepsOptions = {}): fc.Arbitrary<HostStep[]> {
  const max = opts.max ?? 30;
  const classes = opts.classes ?? PRODUCT_CLASSES;
  return fc.array(productClass(classes), { minLength: max, maxLength: max }).chain((productOf) => {
    const request = fc
      .tuple(fc.integer({ min: 1, max }), opts.skew === false ? fc.constant(0) : clockSkew())
      .map(
        ([id, skewMs]): HostStep =>
          readable(
            { kind: 'request', machine: machineOf(id, productOf[id - 1]!), skewMs },
            (r) =>
              `request from ${machineText(r.machine)}${r.skewMs ? ` (clock ${durationText(r.skewMs)})` : ''}`,
          ),
      );
    return fc.array(fc.oneof({ arbitrary: request, weight: 3 }, { arbitrary: clockStep(opts), weight: 1 }), {
      minLength: opts.minLength ?? 0,
      maxLength: opts.maxLength ?? 60,
      ...(opts.size !== undefined ? { size: opts.size } : {}),
    });
  });
}

// ---------------------------------------------------------------------------------------------------
// Whole KMS requests

/** A request as it goes on the wire, with what a client keeps to verify the answer. */
export interface KmsRequest {
  version: KmsVersion;
  ndr: NdrSyntax;
  body: KmsRequestBody;
  /** The KMS message (V4: body + MAC; V5/V6: version, IV, ciphertext). */
  message: Uint8Array;
  /** The NDR stub of the RequestActivation call. */
  stub: Uint8Array;
  context: RequestContext;
}

export interface KmsRequestOptions extends MachineOptions {
  versions?: readonly KmsVersion[];
  ndr?: readonly NdrSyntax[];
  /** Host time the client clock is drawn around (default 2026-01-01T00:00:00Z). */
  at?: number;
}

function describeRequest(r: { version: number; ndr: string; body: KmsRequestBody }, extra = ''): string {
  return `KMS V${r.version} ${r.ndr} request from ${r.body.workstation} (${r.body.cmid}, N=${r.body.requiredClientCount})${extra}`;
}

export function kmsRequestOf(body: KmsRequestBody, ndr: NdrSyntax, iv: Uint8Array): KmsRequest {
  const { message, context } = encodeRequest(body, { random: () => iv });
  const r = {
    version: body.majorVersion as KmsVersion,
    ndr,
    body,
    message,
    stub: wrapRequestStub(message, ndr),
    context,
  };
  return readable(r, describeRequest);
}

/** Valid requests of every version and syntax, from machines of every class, with the client clock skewed. */
export function kmsRequest(opts: KmsRequestOptions = {}): fc.Arbitrary<KmsRequest> {
  const at = opts.at ?? Date.UTC(2026, 0, 1);
  return fc
    .record({
      machine: machine(opts),
      version: fc.constantFrom(...(opts.versions ?? ([6, 5, 4] as const))),
      ndr: fc.constantFrom(...(opts.ndr ?? (['ndr32', 'ndr64'] as const))),
      skew: clockSkew(),
      vm: fc.boolean(),
      licenseStatus: fc.integer({ min: 0, max: 6 }),
      iv: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    })
    .map(({ machine: m, version, ndr, skew, vm, licenseStatus, iv }) =>
      kmsRequestOf(
        {
          minorVersion: 0,
          majorVersion: version,
          vmInfo: vm ? 1 : 0,
          licenseStatus,
          bindingExpiration: 43_200,
          applicationId: m.applicationId,
          skuId: m.skuId,
          kmsId: m.kmsId,
          cmid: m.cmid,
          requiredClientCount: m.requiredCount,
          clientTime: fileTimeFromMs(at + skew),
          previousCmid: NIL_GUID,
          workstation: m.workstation,
        },
        ndr,
        iv,
      ),
    );
}

/**
 * What a host must do with a mutated request (docs/host.md section 2): `fault`: an RPC fault
 * nca_s_fault_ndr, nothing counted; `invalid-data`: a response carrying 0x8007000D, nothing counted;
 * `counted`: answered and counted as usual (a longer message is accepted).
 */
export type MutationExpectation = 'fault' | 'invalid-data' | 'counted';

export type Mutation =
  | 'truncated'
  | 'bad-version'
  | 'integrity'
  | 'required-count'
  | 'stub-length'
  | 'trailing-bytes';

export interface MutatedKmsRequest extends KmsRequest {
  mutation: Mutation;
  expect: MutationExpectation;
}

const MUTATIONS: readonly Mutation[] = [
  'truncated',
  'bad-version',
  'integrity',
  'required-count',
  'stub-length',
  'trailing-bytes',
];

function mutate(r: KmsRequest, mutation: Mutation, n: number): MutatedKmsRequest {
  let message = r.message;
  let stub: Uint8Array | null = null;
  let body = r.body;
  let expect: MutationExpectation = 'invalid-data';
  switch (mutation) {
    case 'truncated':
      // 4 bytes (the version) up to one byte short of the smallest message of its version (spec b.1).
      message = message.slice(0, 4 + (n % ((r.version === 4 ? 252 : 260) - 4)));
      break;
    case 'bad-version': {
      message = message.slice();
      // MinorVer 1..255, or MajorVer 7 (spec c.0).
      if (n % 2 === 0) message[0] = 1 + (n % 255);
      else message[2] = 7;
      break;
    }
    case 'integrity': {
      message = message.slice();
      if (r.version === 4) {
        // Any byte of the body or the MAC: the MAC no longer matches (spec c.3).
        const i = n % message.length;
        message[i] = message[i]! ^ 0x01;
      } else {
        // A bit of the second-to-last ciphertext block under the pad: CBC flips that bit of the last
        // plaintext block, so the 04 04 04 04 pad fails (spec c.4).
        const i = message.length - 32 + 12 + (n % 4);
        message[i] = message[i]! ^ 0x01;
      }
      break;
    }
    case 'required-count': {
      body = { ...r.body, requiredClientCount: 1001 + (n % 100_000) };
      const again = kmsRequestOf(body, r.ndr, r.context.iv ?? new Uint8Array(16));
      message = again.message;
      break;
    }
    case 'stub-length': {
      // The stub's size field says more bytes than the stub holds (spec b.1).
      const s = wrapRequestStub(message, r.ndr);
      stub = s.slice(0, s.length - 1 - (n % 8));
      expect = 'fault';
      break;
    }
    case 'trailing-bytes':
      message = new Uint8Array([...message, ...new Uint8Array(1 + (n % 64))]);
      expect = 'counted';
      break;
  }
  const out = { ...r, body, message, stub: stub ?? wrapRequestStub(message, r.ndr), mutation, expect };
  return readable(out, (o) => describeRequest(o, `, mutated: ${mutation}`));
}

/** Valid requests broken in one way each, with what a host must answer (see MutationExpectation). */
export function mutatedKmsRequest(opts: KmsRequestOptions = {}): fc.Arbitrary<MutatedKmsRequest> {
  return fc
    .tuple(kmsRequest(opts), fc.constantFrom(...MUTATIONS), fc.integer({ min: 0, max: 1_000_000 }))
    .map(([r, m, n]) => mutate(r, m, n));
}
