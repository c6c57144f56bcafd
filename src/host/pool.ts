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
 * small (50 or 10), so linear scans are cheaper than any index.
 */
export class CountPool {
  readonly applicationId: Guid;
  readonly capacity: number;
  // The entries in an array (scanned by index: a Map iterator allocates a result object per step on
  // these per-request scans) and each CMID's position in it. Order in the array carries no meaning.
  private readonly entries: PoolClient[] = [];
  private readonly index = new Map<Guid, number>();
  /**
   * A lower bound of the entries' lastSeen (exact after a purge scan; entries only get newer between
   * scans, and new ones lower it). Lets purge skip its scan when nothing can have expired.
   */
  private earliestSeen = Number.POSITIVE_INFINITY;

  constructor(applicationId: Guid, capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`bad pool capacity ${capacity}`);
    this.applicationId = applicationId;
    this.capacity = capacity;
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

  /** The algorithm of spec f.3. */
  touch(cmid: Guid, now: number, info: { workstation: string; skuId: Guid; kmsId: Guid }): PoolTouch {
    const expired = this.purge(now);
    let evicted: PoolClient[] = NONE;
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
      };
      this.entries[at] = client;
      // A clock set back makes a refresh older than the entry was: keep earliestSeen a lower bound.
      if (now < this.earliestSeen) this.earliestSeen = now;
    } else {
      while (this.entries.length >= this.capacity) {
        const oldest = this.oldestIndex();
        if (evicted === NONE) evicted = [];
        evicted.push(this.entries[oldest]!);
        this.removeAt(oldest);
      }
      client = {
        cmid,
        firstSeen: now,
        lastSeen: now,
        workstation: info.workstation,
        skuId: info.skuId,
        kmsId: info.kmsId,
      };
      this.add(client);
    }
    return { count: this.entries.length, added: at === undefined, client, expired, evicted };
  }

  /** Removes one CMID (e.g. a PreviousClientMachineId); returns it if it was there. */
  remove(cmid: Guid): PoolClient | undefined {
    const at = this.index.get(cmid);
    if (at === undefined) return undefined;
    const c = this.entries[at]!;
    this.removeAt(at);
    return c;
  }

  /** Restores an entry from the store, without purging. */
  restore(c: PoolClient): void {
    const at = this.index.get(c.cmid);
    if (at !== undefined) this.removeAt(at);
    this.add({ ...c });
  }

  private add(c: PoolClient): void {
    if (c.lastSeen < this.earliestSeen) this.earliestSeen = c.lastSeen;
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
  }

  /** The eviction victim's position: the first entry in `compareClients` order. */
  private oldestIndex(): number {
    const all = this.entries;
    let best = 0;
    for (let i = 1; i < all.length; i++) if (compareClients(all[i]!, all[best]!) < 0) best = i;
    return best;
  }

  /** The count a request would see now, without adding anyone. */
  countAt(now: number): number {
    let n = 0;
    for (const c of this.entries) if (!CountPool.isExpired(c, now)) n++;
    return n;
  }

  /** Live entries at `now`, least recently seen first (`compareClients` order). */
  list(now: number): PoolClient[] {
    return this.entries.filter((c) => !CountPool.isExpired(c, now)).sort(compareClients);
  }

  clear(): void {
    this.entries.length = 0;
    this.index.clear();
    this.earliestSeen = Number.POSITIVE_INFINITY;
  }

  get size(): number {
    return this.entries.length;
  }
}
