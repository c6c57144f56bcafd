import type { Catalog, EpidPool } from '../catalog/products.js';
import { formatEpid, parseEpid } from '../kms/epid.js';
import type { Guid } from '../wire/guid.js';
import type { Random } from './random.js';

/**
 * The host's identity: one ePID per CSVLK pool (spec e.1 step 6: stable, never per request) and one
 * HwId (spec e.3). Derived once from the seed, then kept by the store.
 */
export interface HostIdentity {
  /** ePID by ePID pool name (Windows, Office2010, Office2013, Office2016, Office2019, WinChinaGov). */
  epids: Record<string, string>;
  hwid: Uint8Array;
  hostBuild: number;
  lcid: number;
}

export interface IdentityOptions {
  /** Host OS build for the ePIDs; default 17763 (Server 2019, an NDR64 host). */
  hostBuild?: number;
  lcid?: number;
  /** Overrides by pool name. */
  epids?: Record<string, string>;
  hwid?: Uint8Array;
}

const DEFAULT_HOST_BUILD = 17763;

function dayOfYear(d: Date): number {
  return Math.floor((d.getTime() - Date.UTC(d.getUTCFullYear(), 0, 1)) / 86_400_000) + 1;
}

/** Spec e.1 steps 1–5 for one pool. */
export function generateEpid(
  catalog: Catalog,
  pool: EpidPool,
  random: Random,
  now: number,
  hostBuild: number,
  lcid: number,
): string {
  // The highest known build ≤ hostBuild, as for the platform id (spec e.1 step 2), so that a build the
  // table does not list (e.g. 17000) still cannot claim an activation date before its predecessor.
  let build: (typeof catalog.hostBuilds)[number] | undefined;
  for (const h of catalog.hostBuilds) if (h.buildNumber <= hostBuild) build = h;
  const from = Math.max(
    Date.parse(pool.releaseDate),
    build ? Date.parse(build.releaseDate) : Date.parse(pool.releaseDate),
  );
  const to = Math.max(from, now);
  const day = new Date(from + random.float() * (to - from));
  return formatEpid({
    platformId: catalog.platformIdFor(hostBuild),
    groupId: pool.groupId,
    keyId: random.int(pool.minKeyId, pool.maxKeyId),
    channel: 3,
    lcid,
    hostBuild,
    activationDay: dayOfYear(day),
    activationYear: day.getUTCFullYear(),
  });
}

export function createIdentity(
  catalog: Catalog,
  random: Random,
  now: number,
  opts: IdentityOptions = {},
): HostIdentity {
  const hostBuild = opts.hostBuild ?? DEFAULT_HOST_BUILD;
  const lcid = opts.lcid ?? 1033;
  const epids: Record<string, string> = {};
  for (const pool of catalog.epidPools) {
    epids[pool.name] = generateEpid(catalog, pool, random.fork(`epid/${pool.name}`), now, hostBuild, lcid);
  }
  for (const [name, epid] of Object.entries(opts.epids ?? {})) {
    parseEpid(epid);
    const pool = catalog.epidPool(name);
    if (!pool)
      throw new RangeError(
        `unknown ePID pool "${name}" (one of ${catalog.epidPools.map((p) => p.name).join(', ')})`,
      );
    epids[pool.name] = epid;
  }
  const hwid = opts.hwid ?? random.fork('hwid').bytes(8);
  if (hwid.length !== 8) throw new RangeError('HwId must be 8 bytes (16 hex digits)');
  return { epids, hwid, hostBuild, lcid };
}

/** The ePID a request for this KMS id is answered with. */
export function epidFor(identity: HostIdentity, catalog: Catalog, kmsId: Guid, applicationId: Guid): string {
  const pool = catalog.epidPoolForKmsId(kmsId);
  if (pool) return identity.epids[pool.name]!;
  const app = catalog.application(applicationId);
  const name =
    app?.vlmcsdName === 'Office2010'
      ? 'Office2010'
      : app?.vlmcsdName === 'Office2013+'
        ? 'Office2019'
        : 'Windows';
  return identity.epids[name] ?? Object.values(identity.epids)[0]!;
}

export function parseHwid(hex: string): Uint8Array {
  const t = hex.trim().replace(/^0x/i, '');
  if (!/^[0-9a-fA-F]{16}$/.test(t)) throw new RangeError(`HwId must be 16 hex digits, got "${hex}"`);
  return new Uint8Array(Buffer.from(t, 'hex'));
}
