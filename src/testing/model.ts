/**
 * The reference count model: what a KMS host's count pools hold and report, as a pure function of the
 * requests the host has seen. Written separately from src/host/pool.ts, as plainly as possible (arrays,
 * filters, a sort), so that it can serve as an oracle for the host and for users' own tools. The rules
 * and their sources are listed in docs/testing.md ("The count model").
 */

export type PoolName = 'windows' | 'office2010' | 'office2013';
export const POOL_NAMES: readonly PoolName[] = ['windows', 'office2010', 'office2013'];

const DAY_MS = 24 * 60 * 60 * 1000;
/** A CMID stays counted 30 days after its last request (Microsoft: "the 30-day period starts again"). */
export const RETENTION_MS = 30 * DAY_MS;
/** RequiredClientCount above this is refused with 0x8007000D and not counted (host policy default). */
export const MAX_REQUIRED_COUNT = 1000;

const APPLICATION_POOLS: Readonly<Record<string, PoolName>> = {
  '55c92734-d682-4d71-983e-d6ec3f16059f': 'windows',
  '59a52881-a989-479d-af46-f275c6370663': 'office2010',
  '0ff1ce15-a989-479d-af46-f275c6370663': 'office2013',
};

/** The pool an application id counts in: its own, or Windows' for an id the host does not know. */
export function poolNameOf(applicationId: string): PoolName {
  return APPLICATION_POOLS[applicationId.toLowerCase()] ?? 'windows';
}

/** One request as the host saw it. */
export interface SeenRequest {
  cmid: string;
  applicationId: string;
  /** Carried for the caller's bookkeeping; the default (permissive) policy counts every KMS id. */
  kmsId?: string;
  /** N_Policy the client sent. */
  requiredCount: number;
  /** Host time of the request, ms since the epoch. */
  time: number;
}

/** One CMID in a pool. */
export interface ModelEntry {
  cmid: string;
  firstSeen: number;
  lastSeen: number;
  /** The RequiredClientCount of its latest request. */
  requiredCount: number;
}

export interface ModelPool {
  /** What a new request would be told, minus the requester: the live CMIDs the capacity allows. */
  count: number;
  /** Twice the highest RequiredClientCount among the live CMIDs (0 when empty). */
  capacity: number;
  /** The live CMIDs, least recently seen first. */
  entries: ModelEntry[];
}

export interface CountModel {
  now: number;
  pools: Record<PoolName, ModelPool>;
  /** `pools[p].count` for one pool (default Windows). */
  count(pool?: PoolName): number;
  /** The count each request in the input was told (0 for a refused one), in input order. */
  answers: number[];
  /**
   * What one more request at `now` (or its own `time`) would be told, and whether that activates it:
   * count ≥ RequiredClientCount. Refused requests (RequiredClientCount > 1000) get 0 and false.
   */
  wouldActivate(req: Omit<SeenRequest, 'time'> & { time?: number }): { count: number; activated: boolean };
}

/** Least recently seen first; ties by the earlier first request, then by the smaller CMID. */
function byAge(a: ModelEntry, b: ModelEntry): number {
  if (a.lastSeen !== b.lastSeen) return a.lastSeen - b.lastSeen;
  if (a.firstSeen !== b.firstSeen) return a.firstSeen - b.firstSeen;
  return a.cmid < b.cmid ? -1 : a.cmid > b.cmid ? 1 : 0;
}

function live(entries: readonly ModelEntry[], now: number): ModelEntry[] {
  // Still counted at exactly lastSeen + 30 days, gone 1 ms later.
  return entries.filter((e) => e.lastSeen >= now - RETENTION_MS);
}

function capacityOf(entries: readonly ModelEntry[]): number {
  return 2 * Math.max(0, ...entries.map((e) => e.requiredCount));
}

/** One request against one pool's entries: the new entries and the count the requester is told. */
function apply(entries: readonly ModelEntry[], r: SeenRequest): { entries: ModelEntry[]; count: number } {
  const cmid = r.cmid.toLowerCase();
  const kept = live(entries, r.time);
  const known = kept.find((e) => e.cmid === cmid);
  const me: ModelEntry = {
    cmid,
    firstSeen: known ? known.firstSeen : r.time,
    lastSeen: r.time,
    requiredCount: r.requiredCount,
  };
  const others = kept.filter((e) => e.cmid !== cmid).sort(byAge);
  // The requester is always kept; the least recently seen others go while the cache is over capacity.
  const capacity = capacityOf([...others, me]);
  const room = Math.max(0, capacity - 1);
  const next = [...others.slice(Math.max(0, others.length - room)), me];
  return { entries: next, count: next.length };
}

function emptyPools(): Record<PoolName, ModelEntry[]> {
  return { windows: [], office2010: [], office2013: [] };
}

function summarize(entries: readonly ModelEntry[], now: number): ModelPool {
  const l = live(entries, now).sort(byAge);
  const capacity = capacityOf(l);
  // A pool over its capacity (its highest-N CMID just aged out) keeps the most recently seen.
  const kept = l.slice(Math.max(0, l.length - capacity));
  return { count: kept.length, capacity, entries: kept };
}

/**
 * The model: replays `requests` in the order given (the order the host received them, whatever their
 * times say, as a host whose clock was set back would) and describes the pools at `now`.
 */
export function countModel(requests: readonly SeenRequest[], now: number): CountModel {
  const pools = emptyPools();
  const answers: number[] = [];
  for (const r of requests) {
    if (r.requiredCount > MAX_REQUIRED_COUNT) {
      answers.push(0);
      continue;
    }
    const name = poolNameOf(r.applicationId);
    const step = apply(pools[name], r);
    pools[name] = step.entries;
    answers.push(step.count);
  }
  const described = {
    windows: summarize(pools.windows, now),
    office2010: summarize(pools.office2010, now),
    office2013: summarize(pools.office2013, now),
  };
  return {
    now,
    pools: described,
    count: (pool = 'windows') => described[pool].count,
    answers,
    wouldActivate(req) {
      if (req.requiredCount > MAX_REQUIRED_COUNT) return { count: 0, activated: false };
      const { count } = apply(pools[poolNameOf(req.applicationId)], { ...req, time: req.time ?? now });
      return { count, activated: count >= req.requiredCount };
    },
  };
}
