import type { Guid } from '../wire/guid.js';
import { DAY } from './clock.js';

/** How long a CMID stays counted after it was last seen (spec f.2). */
export const CMID_RETENTION_MS = 30 * DAY;

export interface PoolClient {
  cmid: Guid;
  firstSeen: number;
  lastSeen: number;
  workstation: string;
  skuId: Guid;
  kmsId: Guid;
  /**
   * The N_policy (RequiredClientCount) of the CMID's latest request. The pool's capacity follows the
   * highest one it holds (see `CountPool.capacityFor`).
   */
  requiredCount: number;
}

/** What a request tells the pool about its machine besides the CMID. */
export interface PoolTouchInfo {
  workstation: string;
  skuId: Guid;
  kmsId: Guid;
  /** The request's RequiredClientCount (0 when unknown: it then raises no capacity). */
  requiredCount?: number;
}

export interface PoolTouch {
  /** The pool size after this request, the requester included (spec f.3). */
  count: number;
  /** Whether the CMID was new to the pool. */
  added: boolean;
  /** The entry as it stands now. */
  client: PoolClient;
  /** CMIDs dropped by this request: unseen for 30 days, or evicted at capacity. */
  expired: PoolClient[];
  evicted: PoolClient[];
  /** The capacity in force after this request (twice the highest N_policy held, bounded). */
  capacity: number;
}

/** The shared empty answer of purge and touch (never mutated: callers only read it). */
const NONE: PoolClient[] = [];
Object.freeze(NONE);

/**
 * The pool's order, least recently seen first: lastSeen, then firstSeen, then CMID. It uses only what
 * the store keeps, so a host restarted from its store evicts and lists exactly as before the restart,
 * even for CMIDs seen in the same millisecond (common with a manual clock).
 */
export function compareClients(a: PoolClient, b: PoolClient): number {
  // Comparisons, not subtractions: ms timestamps are doubles, and a difference would be boxed on the
  // eviction scan, which calls this once per entry.
  if (a.lastSeen !== b.lastSeen) return a.lastSeen < b.lastSeen ? -1 : 1;
  if (a.firstSeen !== b.firstSeen) return a.firstSeen < b.firstSeen ? -1 : 1;
  return a.cmid < b.cmid ? -1 : a.cmid > b.cmid ? 1 : 0;
}

/**
 * One count pool (one per application id): distinct CMIDs seen within 30 days, at most `capacity`,
 * the least recently seen evicted first (spec f.2, f.3; ties as in `compareClients`). Capacity is
 * small (10 to 50), so linear scans are cheaper than any index.
 *
 * The capacity follows the highest N_policy (RequiredClientCount) among the CMIDs the pool holds, the
 * requester included: "The count is set to cache only twice the maximum license policy returned by a
 * KMS client ... In environments that contain only Windows Server KMS clients, the maximum count on the
 * KMS host is 10" (Microsoft, "Guidelines for troubleshooting the Key Management Service"; spec f.2).
 * So 2 × that N, kept within [minCapacity, maxCapacity] (docs/host.md section 3). When the capacity
 * shrinks (the last high-N entry expired or renewed with a lower N), the next request of the pool evicts
 * the least recently seen entries, never the requester, one at a time, until the pool fits the capacity
 * its remaining entries give.
 */
export class CountPool {
  readonly applicationId: Guid;
  /** The largest capacity (the pool's products.json `cacheSize`: 50 Windows, 10 Office). */
  readonly maxCapacity: number;
  /** The capacity of a pool holding only N_policy ≤ minCapacity / 2 (10: Windows Server, Office). */
  readonly minCapacity: number;
  /**
   * The highest requiredCount among the entries, unless `maxDirty` (an entry holding it left): then
   * it is recomputed on the next use. Kept so the per-request path does not scan for it.
   */
  private maxRequired = 0;
  private maxDirty = false;
  // The entries in an array (scanned by index: a Map iterator allocates a result object per step on
  // these per-request scans) and each CMID's position in it. Order in the array carries no meaning.
  private readonly entries: PoolClient[] = [];
  private readonly index = new Map<Guid, number>();
  /**
   * A lower bound of the entries' lastSeen (exact after a purge scan; entries only get newer between
   * scans, and new ones lower it). Lets purge skip its scan when nothing can have expired.
   */
  private earliestSeen = Number.POSITIVE_INFINITY;

  constructor(applicationId: Guid, maxCapacity: number, minCapacity: number = Math.min(maxCapacity, 10)) {
    if (!Number.isInteger(maxCapacity) || maxCapacity < 1)
      throw new RangeError(`bad pool capacity ${maxCapacity}`);
    if (!Number.isInteger(minCapacity) || minCapacity < 1 || minCapacity > maxCapacity)
      throw new RangeError(`bad minimum pool capacity ${minCapacity} (capacity ${maxCapacity})`);
    this.applicationId = applicationId;
    this.maxCapacity = maxCapacity;
    this.minCapacity = minCapacity;
  }

  /** The capacity for a highest N_policy of `maxRequired`: 2 × it, within [minCapacity, maxCapacity]. */
  capacityFor(maxRequired: number): number {
    const twice = 2 * maxRequired;
    return Math.max(this.minCapacity, Math.min(this.maxCapacity, twice));
  }

  /** The capacity in force for the entries held now (expired ones included until a purge drops them). */
  get capacity(): number {
    return this.capacityFor(this.highestRequired());
  }

  private highestRequired(): number {
    if (this.maxDirty) {
      let m = 0;
      const all = this.entries;
      for (let i = 0; i < all.length; i++) if (all[i]!.requiredCount > m) m = all[i]!.requiredCount;
      this.maxRequired = m;
      this.maxDirty = false;
    }
    return this.maxRequired;
  }

  /** Spec f.3: an entry is purged once `lastSeen < now − 30 days`. */
  static isExpired(c: PoolClient, now: number): boolean {
    return c.lastSeen < now - CMID_RETENTION_MS;
  }

  /** Drops expired entries and returns them. */
  purge(now: number): PoolClient[] {
    // Nothing can have expired while even the lower bound of lastSeen is recent: skip the scan (the
    // common case, every request of a busy host). Otherwise scan, and the bound becomes exact again.
    if (this.earliestSeen >= now - CMID_RETENTION_MS) return NONE;
    let gone: PoolClient[] = NONE;
    let earliest = Number.POSITIVE_INFINITY;
    const all = this.entries;
    for (let i = all.length - 1; i >= 0; i--) {
      const c = all[i]!;
      if (CountPool.isExpired(c, now)) {
        if (gone === NONE) gone = [];
        gone.push(c);
        this.removeAt(i);
      } else if (c.lastSeen < earliest) earliest = c.lastSeen;
    }
    this.earliestSeen = earliest;
    return gone;
  }

  /**
   * The algorithm of spec f.3, with the capacity of spec f.2: purge, refresh or insert the CMID, then
   * evict the least recently seen others while the pool holds more than its capacity.
   */
  touch(cmid: Guid, now: number, info: PoolTouchInfo): PoolTouch {
    const expired = this.purge(now);
    let evicted: PoolClient[] = NONE;
    const requiredCount = info.requiredCount ?? 0;
    const at = this.index.get(cmid);
    let client: PoolClient;
    if (at !== undefined) {
      const was = this.entries[at]!;
      // Keep the entry's own strings when the values did not change (a machine's name and product
      // rarely do): the entry and the history records made from it then share them.
      client = {
        cmid: was.cmid,
        firstSeen: was.firstSeen,
        lastSeen: now,
        workstation: was.workstation === info.workstation ? was.workstation : info.workstation,
        skuId: was.skuId === info.skuId ? was.skuId : info.skuId,
        kmsId: was.kmsId === info.kmsId ? was.kmsId : info.kmsId,
        requiredCount,
      };
      this.entries[at] = client;
      // A clock set back makes a refresh older than the entry was: keep earliestSeen a lower bound.
      if (now < this.earliestSeen) this.earliestSeen = now;
      if (requiredCount > this.maxRequired) this.maxRequired = requiredCount;
      else if (was.requiredCount >= this.maxRequired && requiredCount < was.requiredCount)
        this.maxDirty = true;
    } else {
      client = {
        cmid,
        firstSeen: now,
        lastSeen: now,
        workstation: info.workstation,
        skuId: info.skuId,
        kmsId: info.kmsId,
        requiredCount,
      };
      this.add(client);
    }
    // One comparison in the common case; a loop only when the pool is over its capacity: a new CMID at
    // a full pool (one eviction, as before), or a capacity that shrank (several).
    let capacity = this.capacity;
    while (this.entries.length > capacity) {
      const oldest = this.oldestIndex(client);
      if (evicted === NONE) evicted = [];
      evicted.push(this.entries[oldest]!);
      this.removeAt(oldest);
      capacity = this.capacity;
    }
    return { count: this.entries.length, added: at === undefined, client, expired, evicted, capacity };
  }

  /** Removes one CMID (e.g. a PreviousClientMachineId); returns it if it was there. */
  remove(cmid: Guid): PoolClient | undefined {
    const at = this.index.get(cmid);
    if (at === undefined) return undefined;
    const c = this.entries[at]!;
    this.removeAt(at);
    return c;
  }

  /**
   * Restores an entry from the store, without purging or evicting. An entry stored before the store
   * kept N_policy has none: `requiredCount` then defaults to 0 (the caller may know better).
   */
  restore(c: Omit<PoolClient, 'requiredCount'> & { requiredCount?: number }): void {
    const at = this.index.get(c.cmid);
    if (at !== undefined) this.removeAt(at);
    this.add({ ...c, requiredCount: c.requiredCount ?? 0 });
  }

  private add(c: PoolClient): void {
    if (c.lastSeen < this.earliestSeen) this.earliestSeen = c.lastSeen;
    if (c.requiredCount > this.maxRequired) this.maxRequired = c.requiredCount;
    this.index.set(c.cmid, this.entries.length);
    this.entries.push(c);
  }

  /** Removes entry `at`: the last entry takes its place. */
  private removeAt(at: number): void {
    const all = this.entries;
    const gone = all[at]!;
    const last = all.pop()!;
    if (last !== gone) {
      all[at] = last;
      this.index.set(last.cmid, at);
    }
    this.index.delete(gone.cmid);
    if (gone.requiredCount >= this.maxRequired) this.maxDirty = true;
  }

  /** The eviction victim's position: the first entry in `compareClients` order other than `keep`. */
  private oldestIndex(keep: PoolClient): number {
    const all = this.entries;
    let best = -1;
    for (let i = 0; i < all.length; i++) {
      const c = all[i]!;
      if (c !== keep && (best < 0 || compareClients(c, all[best]!) < 0)) best = i;
    }
    return best;
  }

  /**
   * The count the pool holds at `now` without adding anyone: the live entries, less those the next
   * request would evict because the capacity shrank since the last request (see `list`).
   */
  countAt(now: number): number {
    // One scan and no allocation when nothing is over capacity (always, right after a request).
    let n = 0;
    let m = 0;
    const all = this.entries;
    for (let i = 0; i < all.length; i++) {
      const c = all[i]!;
      if (CountPool.isExpired(c, now)) continue;
      n++;
      if (c.requiredCount > m) m = c.requiredCount;
    }
    return n <= this.capacityFor(m) ? n : this.list(now).length;
  }

  /** The capacity in force at `now`: from the highest N_policy among the entries `list(now)` keeps. */
  capacityAt(now: number): number {
    let m = 0;
    for (const c of this.list(now)) if (c.requiredCount > m) m = c.requiredCount;
    return this.capacityFor(m);
  }

  /**
   * Live entries at `now`, least recently seen first (`compareClients` order). When the capacity has
   * shrunk since the last request (its highest-N entry expired), the least recently seen entries are
   * left out one by one until the rest fit the capacity they give: exactly those the next request
   * evicts (unless that request is one of them: a requester is never evicted).
   */
  list(now: number): PoolClient[] {
    const live = this.entries.filter((c) => !CountPool.isExpired(c, now)).sort(compareClients);
    // The remaining entries are always a suffix of `live`: the highest N of each suffix decides.
    const suffixMax = new Array<number>(live.length + 1);
    suffixMax[live.length] = 0;
    for (let i = live.length - 1; i >= 0; i--)
      suffixMax[i] = Math.max(suffixMax[i + 1]!, live[i]!.requiredCount);
    let start = 0;
    while (live.length - start > this.capacityFor(suffixMax[start]!)) start++;
    return start === 0 ? live : live.slice(start);
  }

  clear(): void {
    this.entries.length = 0;
    this.index.clear();
    this.earliestSeen = Number.POSITIVE_INFINITY;
    this.maxRequired = 0;
    this.maxDirty = false;
  }

  get size(): number {
    return this.entries.length;
  }
}
