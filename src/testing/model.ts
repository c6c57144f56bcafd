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
  /** Twice the highest RequiredClientCount among the CMIDs it keeps, within CAPACITY_BOUNDS. */
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

/**
 * The capacity bounds per pool: at least twice the lowest N_policy of the application's products (10
 * everywhere), at most its products.json `cacheSize` (50 Windows, 10 Office): docs/host.md, "The
 * capacity rule".
 */
export const CAPACITY_BOUNDS: Readonly<Record<PoolName, { min: number; max: number }>> = {
  windows: { min: 10, max: 50 },
  office2010: { min: 10, max: 10 },
  office2013: { min: 10, max: 10 },
};

/** Twice the highest RequiredClientCount among `entries`, within the pool's bounds. */
export function capacityOf(pool: PoolName, entries: readonly ModelEntry[]): number {
  const { min, max } = CAPACITY_BOUNDS[pool];
  return Math.min(max, Math.max(min, 2 * Math.max(0, ...entries.map((e) => e.requiredCount))));
}

/**
 * Leaves out the least recently seen of `entries` (sorted by byAge) one at a time, never `keep`, until
 * the rest fit the capacity they give themselves (an evicted high-N entry no longer raises it).
 */
function evictToCapacity(pool: PoolName, entries: ModelEntry[], keep: string | null): ModelEntry[] {
  let rest = entries;
  while (rest.length > capacityOf(pool, rest)) {
    const victim = rest.find((e) => e.cmid !== keep)!;
    rest = rest.filter((e) => e !== victim);
  }
  return rest;
}

/** One request against one pool's entries: the new entries and the count the requester is told. */
function apply(
  pool: PoolName,
  entries: readonly ModelEntry[],
  r: SeenRequest,
): { entries: ModelEntry[]; count: number } {
  const cmid = r.cmid.toLowerCase();
  const kept = live(entries, r.time);
  const known = kept.find((e) => e.cmid === cmid);
  const me: ModelEntry = {
    cmid,
    firstSeen: known ? known.firstSeen : r.time,
    lastSeen: r.time,
    requiredCount: r.requiredCount,
  };
  const next = evictToCapacity(pool, [...kept.filter((e) => e.cmid !== cmid), me].sort(byAge), cmid);
  return { entries: next, count: next.length };
}

function emptyPools(): Record<PoolName, ModelEntry[]> {
  return { windows: [], office2010: [], office2013: [] };
}

function summarize(pool: PoolName, entries: readonly ModelEntry[], now: number): ModelPool {
  // A pool over its capacity (its highest-N CMID aged out) is shown as its next request will leave it.
  const kept = evictToCapacity(pool, live(entries, now).sort(byAge), null);
  return { count: kept.length, capacity: capacityOf(pool, kept), entries: kept };
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
    const step = apply(name, pools[name], r);
    pools[name] = step.entries;
    answers.push(step.count);
  }
  const described = {
    windows: summarize('windows', pools.windows, now),
    office2010: summarize('office2010', pools.office2010, now),
    office2013: summarize('office2013', pools.office2013, now),
  };
  return {
    now,
    pools: described,
    count: (pool = 'windows') => described[pool].count,
    answers,
    wouldActivate(req) {
      if (req.requiredCount > MAX_REQUIRED_COUNT) return { count: 0, activated: false };
      const name = poolNameOf(req.applicationId);
      const { count } = apply(name, pools[name], { ...req, time: req.time ?? now });
      return { count, activated: count >= req.requiredCount };
    },
  };
}
