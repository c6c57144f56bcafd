import { ProtocolError } from '../wire/errors.js';
import { type Guid, isGuid } from '../wire/guid.js';
import raw from './products.json' with { type: 'json' };

/** The product catalog (applications, KMS ids, SKUs, CSVLKs, ePID pools, host builds), checked on load. */

interface Application {
  id: Guid;
  name: string;
  vlmcsdName: string;
  /** CMIDs the host keeps for this pool: 2 × the largest threshold (spec f.2). */
  cacheSize: number;
}

interface KmsIdInfo {
  id: Guid;
  name: string;
  applicationId: Guid;
  /** RequiredClientCount (N_Policy) genuine clients of this group send. */
  nPolicy: number;
  /** KMS protocol major version genuine clients of this group send. */
  protocolVersion: 4 | 5 | 6;
  isRetail: boolean;
  isPreview: boolean;
  vlmcsdEpidPool: string | null;
}

export interface Sku {
  id: Guid;
  name: string;
  kmsId: Guid;
  applicationId: Guid;
  gvlk: string | null;
}

interface Csvlk {
  id: Guid | null;
  name: string;
  /** null where the public tables do not give them. */
  groupId: number | null;
  minKeyId: number | null;
  maxKeyId: number | null;
  releaseDate: string | null;
  epidPool: string | null;
  activatesKmsIds: Guid[];
}

export interface EpidPool {
  name: string;
  groupId: number;
  minKeyId: number;
  maxKeyId: number;
  releaseDate: string;
  defaultEpid: string;
}

interface HostBuild {
  buildNumber: number;
  platformId: number;
  name: string;
  releaseDate: string;
  useForEpid: boolean;
  usesNdr64: boolean;
}

export interface Catalog {
  applications: readonly Application[];
  kmsIds: readonly KmsIdInfo[];
  skus: readonly Sku[];
  csvlks: readonly Csvlk[];
  epidPools: readonly EpidPool[];
  hostBuilds: readonly HostBuild[];
  application(id: Guid): Application | undefined;
  kmsId(id: Guid): KmsIdInfo | undefined;
  sku(id: Guid): Sku | undefined;
  epidPool(name: string): EpidPool | undefined;
  /** The ePID pool that serves a KMS id (spec e.1 step 3), or undefined for an unknown KMS id. */
  epidPoolForKmsId(id: Guid): EpidPool | undefined;
  /** Platform id of the highest known build ≤ `build` (spec e.1 step 2). */
  platformIdFor(build: number): number;
  /** SKU by exact GUID or by name; see `findSkuByName`. */
  findSku(nameOrId: string): Sku;
}

function bad(msg: string): never {
  throw new ProtocolError('BAD_CATALOG', `products.json: ${msg}`);
}

function str(o: Record<string, unknown>, k: string, where: string): string {
  const v = o[k];
  if (typeof v !== 'string') bad(`${where}.${k} is not a string`);
  return v;
}

function num(o: Record<string, unknown>, k: string, where: string): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isFinite(v)) bad(`${where}.${k} is not a number`);
  return v;
}

function guid(o: Record<string, unknown>, k: string, where: string): Guid {
  const v = str(o, k, where);
  if (!isGuid(v)) bad(`${where}.${k} is not a canonical GUID: ${v}`);
  return v;
}

function list(o: Record<string, unknown>, k: string): Record<string, unknown>[] {
  const v = o[k];
  if (!Array.isArray(v)) bad(`${k} is not an array`);
  return v as Record<string, unknown>[];
}

/** Names users type ("Windows 10 Enterprise") against catalog names ("Windows 10/11 Enterprise"). */
function nameKeys(name: string): string[] {
  const base = name.toLowerCase().replace(/\s+/g, ' ').trim();
  const keys = new Set([base]);
  if (base.includes('10/11')) {
    keys.add(base.replace('10/11', '10'));
    keys.add(base.replace('10/11', '11'));
  }
  return [...keys];
}

/**
 * "preview" or "retail" for a SKU whose KMS id is one, or whose name says so (some previews count
 * in a volume KMS id: "Office Professional Plus 2021 Preview"), else null: a volume SKU.
 */
export function skuChannel(s: Sku, k: KmsIdInfo | undefined): 'preview' | 'retail' | null {
  if (k?.isPreview || /\bpreview\b/i.test(s.name)) return 'preview';
  if (k?.isRetail || /\bretail\b/i.test(s.name)) return 'retail';
  return null;
}

const words = (s: string) => s.split(/[\s/]+/).filter(Boolean);

/**
 * A SKU by name: the exact name first ("Windows 10 Enterprise" is exact for "Windows 10/11
 * Enterprise"), then a unique prefix, then a unique name holding every word given, in any order. A
 * preview or retail SKU is only ever matched by its exact name, so a volume name never lands on one;
 * anything else is an error listing the candidates.
 */
function matchSkuName(
  given: string,
  skus: readonly Sku[],
  byName: ReadonlyMap<string, Sku[]>,
  kmsIdOf: (s: Sku) => KmsIdInfo | undefined,
): Sku {
  const key = given.toLowerCase().replace(/\s+/g, ' ');
  const exact = byName.get(key);
  if (exact && exact.length === 1) return exact[0]!;
  const want = words(key);
  const prefixed = skus.filter((s) => nameKeys(s.name).some((k) => k.startsWith(key)));
  const worded = skus.filter((s) =>
    nameKeys(s.name).some((k) => {
      const have = words(k);
      return want.every((w) => have.includes(w));
    }),
  );
  const volume = (list: Sku[]) => list.filter((s) => skuChannel(s, kmsIdOf(s)) === null);
  for (const list of [volume(prefixed), volume(worded)]) if (list.length === 1) return list[0]!;
  // Volume SKUs first, shortest names first: the likeliest meant.
  const candidates = [...new Set([...(exact ?? []), ...prefixed, ...worded])].sort(
    (a, b) =>
      Number(skuChannel(a, kmsIdOf(a)) !== null) - Number(skuChannel(b, kmsIdOf(b)) !== null) ||
      a.name.length - b.name.length,
  );
  const label = (s: Sku) => {
    const ch = skuChannel(s, kmsIdOf(s));
    return `"${s.name}"${ch ? ` (${ch})` : ''}`;
  };
  const shown = candidates.slice(0, 8).map(label).join(', ');
  const more =
    candidates.length > 8
      ? ` and ${candidates.length - 8} more (kmslab products ${JSON.stringify(given)})`
      : '';
  throw new ProtocolError(
    'BAD_VALUE',
    candidates.length === 0
      ? `no product named "${given}" (kmslab products lists them)`
      : volume(candidates).length === 0
        ? `no volume product named "${given}"; give the exact name to use one of: ${shown}${more}`
        : `"${given}" is ambiguous; give the exact name of one of: ${shown}${more}`,
  );
}

export function buildCatalog(data: unknown): Catalog {
  if (typeof data !== 'object' || data === null) bad('not an object');
  const d = data as Record<string, unknown>;
  const applications: Application[] = list(d, 'applications').map((a, i) => ({
    id: guid(a, 'id', `applications[${i}]`),
    name: str(a, 'name', `applications[${i}]`),
    vlmcsdName: str(a, 'vlmcsdName', `applications[${i}]`),
    cacheSize: num(a, 'cacheSize', `applications[${i}]`),
  }));
  const appIds = new Set(applications.map((a) => a.id));
  const kmsIds: KmsIdInfo[] = list(d, 'kmsIds').map((k, i) => {
    const w = `kmsIds[${i}]`;
    const pv = num(k, 'protocolVersion', w);
    if (pv !== 4 && pv !== 5 && pv !== 6) bad(`${w}.protocolVersion ${pv}`);
    const applicationId = guid(k, 'applicationId', w);
    if (!appIds.has(applicationId)) bad(`${w}.applicationId unknown`);
    const nPolicy = num(k, 'nPolicy', w);
    if (nPolicy < 1 || nPolicy > 1000) bad(`${w}.nPolicy ${nPolicy}`);
    return {
      id: guid(k, 'id', w),
      name: str(k, 'name', w),
      applicationId,
      nPolicy,
      protocolVersion: pv,
      isRetail: k['isRetail'] === true,
      isPreview: k['isPreview'] === true,
      vlmcsdEpidPool: typeof k['vlmcsdEpidPool'] === 'string' ? k['vlmcsdEpidPool'] : null,
    };
  });
  const kmsById = new Map(kmsIds.map((k) => [k.id, k]));
  const skus: Sku[] = list(d, 'skus').map((s, i) => {
    const w = `skus[${i}]`;
    const kmsId = guid(s, 'kmsId', w);
    if (!kmsById.has(kmsId)) bad(`${w}.kmsId unknown`);
    return {
      id: guid(s, 'id', w),
      name: str(s, 'name', w),
      kmsId,
      applicationId: guid(s, 'applicationId', w),
      gvlk: typeof s['gvlk'] === 'string' ? s['gvlk'] : null,
    };
  });
  const csvlks: Csvlk[] = list(d, 'csvlks').map((c, i) => {
    const w = `csvlks[${i}]`;
    const acts = c['activatesKmsIds'];
    if (!Array.isArray(acts) || !acts.every((x) => typeof x === 'string' && isGuid(x))) {
      bad(`${w}.activatesKmsIds`);
    }
    return {
      id: c['id'] === null ? null : guid(c, 'id', w),
      name: str(c, 'name', w),
      groupId: c['groupId'] === null ? null : num(c, 'groupId', w),
      minKeyId: c['minKeyId'] === null ? null : num(c, 'minKeyId', w),
      maxKeyId: c['maxKeyId'] === null ? null : num(c, 'maxKeyId', w),
      releaseDate: typeof c['releaseDate'] === 'string' ? c['releaseDate'] : null,
      epidPool: typeof c['epidPool'] === 'string' ? c['epidPool'] : null,
      activatesKmsIds: acts as Guid[],
    };
  });
  const epidPools: EpidPool[] = list(d, 'epidPools').map((p, i) => {
    const w = `epidPools[${i}]`;
    const pool = {
      name: str(p, 'name', w),
      groupId: num(p, 'groupId', w),
      minKeyId: num(p, 'minKeyId', w),
      maxKeyId: num(p, 'maxKeyId', w),
      releaseDate: str(p, 'releaseDate', w),
      defaultEpid: str(p, 'defaultEpid', w),
    };
    if (pool.minKeyId > pool.maxKeyId) bad(`${w} key range`);
    return pool;
  });
  const hostBuilds: HostBuild[] = list(d, 'hostBuilds')
    .map((h, i) => ({
      buildNumber: num(h, 'buildNumber', `hostBuilds[${i}]`),
      platformId: num(h, 'platformId', `hostBuilds[${i}]`),
      name: str(h, 'name', `hostBuilds[${i}]`),
      releaseDate: str(h, 'releaseDate', `hostBuilds[${i}]`),
      useForEpid: h['useForEpid'] === true,
      usesNdr64: h['usesNdr64'] === true,
    }))
    .sort((a, b) => a.buildNumber - b.buildNumber);

  const appById = new Map(applications.map((a) => [a.id, a]));
  const skuById = new Map(skus.map((s) => [s.id, s]));
  const poolByName = new Map(epidPools.map((p) => [p.name.toLowerCase(), p]));
  const skuByName = new Map<string, Sku[]>();
  for (const s of skus) {
    for (const k of nameKeys(s.name)) {
      const arr = skuByName.get(k) ?? [];
      arr.push(s);
      skuByName.set(k, arr);
    }
  }
  const poolForKms = new Map<Guid, EpidPool>();
  for (const k of kmsIds) {
    let pool = k.vlmcsdEpidPool ? poolByName.get(k.vlmcsdEpidPool.toLowerCase()) : undefined;
    if (!pool) {
      const c = csvlks.find((x) => x.activatesKmsIds.includes(k.id) && x.epidPool);
      pool = c?.epidPool ? poolByName.get(c.epidPool.toLowerCase()) : undefined;
    }
    if (!pool) {
      // Fall back on the application's pool: Office 2013+ → Office2016-era host key, Windows → Windows.
      const app = appById.get(k.applicationId);
      pool =
        app?.vlmcsdName === 'Office2010'
          ? poolByName.get('office2010')
          : app?.vlmcsdName === 'Office2013+'
            ? poolByName.get('office2019')
            : poolByName.get('windows');
    }
    if (pool) poolForKms.set(k.id, pool);
  }

  return {
    applications,
    kmsIds,
    skus,
    csvlks,
    epidPools,
    hostBuilds,
    application: (id) => appById.get(id),
    kmsId: (id) => kmsById.get(id),
    sku: (id) => skuById.get(id),
    epidPool: (name) => poolByName.get(name.toLowerCase()),
    epidPoolForKmsId: (id) => poolForKms.get(id),
    platformIdFor(build) {
      let best = hostBuilds[0];
      for (const h of hostBuilds) if (h.buildNumber <= build) best = h;
      return best?.platformId ?? 3612;
    },
    findSku(nameOrId) {
      const t = nameOrId.trim();
      if (isGuid(t.toLowerCase())) {
        const s = skuById.get(t.toLowerCase());
        if (s) return s;
        throw new ProtocolError('BAD_VALUE', `unknown SKU id ${t}`);
      }
      return matchSkuName(t, skus, skuByName, (s) => kmsById.get(s.kmsId));
    },
  };
}

let cached: Catalog | undefined;

/** The catalog shipped with kmslab, built and checked once per process. */
export function defaultCatalog(): Catalog {
  cached ??= buildCatalog(raw);
  return cached;
}

export const WINDOWS_APP_ID: Guid = '55c92734-d682-4d71-983e-d6ec3f16059f';
export const OFFICE2010_APP_ID: Guid = '59a52881-a989-479d-af46-f275c6370663';
export const OFFICE2013_APP_ID: Guid = '0ff1ce15-a989-479d-af46-f275c6370663';
