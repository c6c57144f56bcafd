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

/**
 * The pool's order, least recently seen first: lastSeen, then firstSeen, then CMID. It uses only what
 * the store keeps, so a host restarted from its store evicts and lists exactly as before the restart,
 * even for CMIDs seen in the same millisecond (common with a manual clock).
 */
export function compareClients(a: PoolClient, b: PoolClient): number {
  return (
    a.lastSeen - b.lastSeen || a.firstSeen - b.firstSeen || (a.cmid < b.cmid ? -1 : a.cmid > b.cmid ? 1 : 0)
  );
}

/**
 * One count pool (one per application id): distinct CMIDs seen within 30 days, at most `capacity`,
 * the least recently seen evicted first (spec f.2, f.3; ties as in `compareClients`). Capacity is
 * small (50 or 10), so linear scans are cheaper than any index.
 */
export class CountPool {
  readonly applicationId: Guid;
  readonly capacity: number;
  private readonly clients = new Map<Guid, PoolClient>();

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
    const gone: PoolClient[] = [];
    for (const c of this.clients.values()) {
      if (CountPool.isExpired(c, now)) gone.push(c);
    }
    for (const c of gone) this.clients.delete(c.cmid);
    return gone;
  }

  /** The algorithm of spec f.3. */
  touch(cmid: Guid, now: number, info: { workstation: string; skuId: Guid; kmsId: Guid }): PoolTouch {
    const expired = this.purge(now);
    const evicted: PoolClient[] = [];
    let client = this.clients.get(cmid);
    const added = client === undefined;
    if (client) {
      // Keep the entry's own strings when the values did not change (a machine's name and product
      // rarely do): the entry and the history records made from it then share them.
      client = {
        ...client,
        lastSeen: now,
        workstation: client.workstation === info.workstation ? client.workstation : info.workstation,
        skuId: client.skuId === info.skuId ? client.skuId : info.skuId,
        kmsId: client.kmsId === info.kmsId ? client.kmsId : info.kmsId,
      };
    } else {
      while (this.clients.size >= this.capacity) {
        const oldest = this.oldest()!;
        this.clients.delete(oldest.cmid);
        evicted.push(oldest);
      }
      client = { cmid, firstSeen: now, lastSeen: now, ...info };
    }
    this.clients.set(cmid, client);
    return { count: this.clients.size, added, client, expired, evicted };
  }

  /** Removes one CMID (e.g. a PreviousClientMachineId); returns it if it was there. */
  remove(cmid: Guid): PoolClient | undefined {
    const c = this.clients.get(cmid);
    if (c) this.clients.delete(cmid);
    return c;
  }

  /** Restores an entry from the store, without purging. */
  restore(c: PoolClient): void {
    this.clients.set(c.cmid, { ...c });
  }

  /** The eviction victim: the first entry in `compareClients` order (never the Map's insertion order). */
  private oldest(): PoolClient | undefined {
    let best: PoolClient | undefined;
    for (const c of this.clients.values()) if (!best || compareClients(c, best) < 0) best = c;
    return best;
  }

  /** The count a request would see now, without adding anyone. */
  countAt(now: number): number {
    let n = 0;
    for (const c of this.clients.values()) if (!CountPool.isExpired(c, now)) n++;
    return n;
  }

  /** Live entries at `now`, least recently seen first (`compareClients` order). */
  list(now: number): PoolClient[] {
    return [...this.clients.values()].filter((c) => !CountPool.isExpired(c, now)).sort(compareClients);
  }

  clear(): void {
    this.clients.clear();
  }

  get size(): number {
    return this.clients.size;
  }
}
