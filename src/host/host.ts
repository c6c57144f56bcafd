import type { Catalog } from '../catalog/products.js';
import { HResult } from '../kms/hresult.js';
import type { KmsRequestBody, KmsResponseBody, KmsVersion, NdrSyntax } from '../kms/messages.js';
import { fileTimeToIso, fileTimeToMs } from '../wire/filetime.js';
import { type Guid, NIL_GUID } from '../wire/guid.js';
import { emptyCounters, type RequestCounters, type Totals } from './counters.js';
import type { ActivationEvent } from './events.js';
import { epidFor, type HostIdentity } from './identity.js';
import type { HostPolicy } from './policy.js';
import { CountPool, type PoolClient } from './pool.js';

/**
 * The host's decision for one request, sans-io: `handle(state, request, meta)` with the time in
 * `meta.now`. It never refuses for a low count (spec f.4): it answers and records whether the client
 * would activate.
 */
export interface HostState {
  readonly catalog: Catalog;
  policy: HostPolicy;
  identity: HostIdentity;
  /** One pool per application id (spec f.1). */
  readonly pools: Map<Guid, CountPool>;
  seq: number;
  /** Decoded requests by decision (activated, count-insufficient, refused); `POST /reset` zeroes them. */
  totals: Totals;
  /** The cumulative request counters slmgr /dlv and WMI report (src/host/counters.ts). */
  counters: RequestCounters;
}

export function createHostState(catalog: Catalog, policy: HostPolicy, identity: HostIdentity): HostState {
  const pools = new Map<Guid, CountPool>();
  for (const app of catalog.applications) {
    pools.set(app.id, new CountPool(app.id, app.cacheSize, minCapacityFor(catalog, app.id, app.cacheSize)));
  }
  return {
    catalog,
    policy,
    identity,
    pools,
    seq: 0,
    totals: { requests: 0, byResult: {} },
    counters: emptyCounters(),
  };
}

/**
 * The smallest capacity of an application's pool: twice the lowest N_policy of its products (10: a
 * Windows pool holding only Windows Server machines, and every Office pool), at most its cacheSize
 * (spec f.2; docs/host.md section 3).
 */
function minCapacityFor(catalog: Catalog, applicationId: Guid, cacheSize: number): number {
  let low = Number.POSITIVE_INFINITY;
  for (const k of catalog.kmsIds) if (k.applicationId === applicationId && k.nPolicy < low) low = k.nPolicy;
  return Number.isFinite(low) ? Math.max(1, Math.min(cacheSize, 2 * low)) : Math.min(cacheSize, 10);
}

export interface RequestMeta {
  now: number;
  peer: string;
  connectionId: number;
  protocol: KmsVersion;
  ndr: NdrSyntax;
}

/** Changes the store must persist for this request. */
interface PoolChange {
  upsert: (PoolClient & { applicationId: Guid })[];
  remove: { applicationId: Guid; cmid: Guid }[];
}

/**
 * A decision the caller imposes on one request instead of (or on top of) the host's own. The host
 * carries it out without knowing why (the lab harness's fault seam is what imposes them, from
 * src/server/calls.ts). `label` goes on the event and the history record.
 *
 * - `hresult`: answered instead of the policy's decision. An error HRESULT leaves the pool untouched
 *   (the client is not counted, the request is recorded refused with `reason`); S_OK answers as if no
 *   refusal applied, and the client is counted.
 * - `count`: answered as CurrentCount; the pool still counts the client as usual, and the event's
 *   count, wouldActivate and decision follow the imposed count.
 */
export interface Imposed {
  label: string;
  hresult?: number;
  /** The event's reason for an imposed error HRESULT (default: the label). */
  reason?: string;
  count?: number;
}

export interface HandleResult {
  hresult: number;
  /** The response body to encrypt; null when an error HRESULT is answered. */
  body: KmsResponseBody | null;
  event: ActivationEvent;
  change: PoolChange;
}

function refusal(
  state: HostState,
  req: KmsRequestBody,
  now: number,
): { hresult: number; reason: string } | null {
  const { policy, catalog } = state;
  if (req.requiredClientCount > policy.maxRequiredCount) {
    return {
      hresult: HResult.INVALID_DATA,
      reason: `RequiredClientCount ${req.requiredClientCount} over ${policy.maxRequiredCount}`,
    };
  }
  const kms = catalog.kmsId(req.kmsId);
  const app = catalog.application(req.applicationId);
  if (policy.refuseUnknown && (!kms || !app)) {
    return { hresult: HResult.KMS_ID_MISMATCH, reason: kms ? 'unknown application id' : 'unknown KMS id' };
  }
  if (policy.refuseRetail && kms && (kms.isRetail || kms.isPreview)) {
    return {
      hresult: HResult.KMS_ID_MISMATCH,
      reason: `${kms.isRetail ? 'retail' : 'preview'} product group ${kms.name}`,
    };
  }
  if (policy.refuseMismatch && kms && kms.applicationId !== req.applicationId) {
    return {
      hresult: HResult.KMS_ID_MISMATCH,
      reason: `KMS id ${kms.name} does not belong to application ${req.applicationId}`,
    };
  }
  if (policy.maxClockSkewMs !== null) {
    const skew = Math.abs(fileTimeToMs(req.clientTime) - now);
    if (!(skew <= policy.maxClockSkewMs)) {
      return { hresult: HResult.TIME_SKEW, reason: `client clock off by ${Math.round(skew / 1000)} s` };
    }
  }
  return null;
}

/** The pool a request counts in: its application's, or Windows' for an unknown one (spec f.3). */
export function poolFor(state: HostState, applicationId: Guid): CountPool {
  return state.pools.get(applicationId) ?? state.pools.get(state.catalog.applications[0]!.id)!;
}

// The reason of an answered request depends on three small numbers only: keep the strings made so
// far (bounded), so a busy host does not build the same sentence for every request.
const REASONS = new Map<number, string>();
const MAX_REASONS = 4096;
/** The activation interval the kept reasons were made with (the key leaves it out). */
let reasonsInterval = -1;

function countReason(count: number, required: number, activationInterval: number): string {
  // A number key (no key string per request): count and required fit 16 bits in every answer the
  // host builds itself; anything larger is built without being kept.
  if (activationInterval !== reasonsInterval) {
    REASONS.clear();
    reasonsInterval = activationInterval;
  }
  const small = (count & 0xffff) === count && (required & 0xffff) === required;
  const key = count * 0x10000 + required;
  let r = small ? REASONS.get(key) : undefined;
  if (r === undefined) {
    r =
      count >= required
        ? `count ${count} ≥ required ${required}`
        : `count ${count} < required ${required}: the client reports 0xC004F038 and retries in ${activationInterval} min`;
    if (small) {
      if (REASONS.size >= MAX_REASONS) REASONS.clear();
      REASONS.set(key, r);
    }
  }
  return r;
}

export function handle(
  state: HostState,
  req: KmsRequestBody,
  meta: RequestMeta,
  imposed?: Imposed,
): HandleResult {
  const { catalog, policy } = state;
  const change: PoolChange = { upsert: [], remove: [] };
  const kms = catalog.kmsId(req.kmsId);
  const sku = catalog.sku(req.skuId);
  // Every request decodes fresh GUID strings; where the catalog (or a constant) has an equal string,
  // use that one, so events, pool entries and history records do not each keep their own copy.
  const skuId = sku?.id ?? req.skuId;
  const kmsId = kms?.id ?? req.kmsId;
  const applicationId = catalog.application(req.applicationId)?.id ?? req.applicationId;
  const previousCmid = req.previousCmid === NIL_GUID ? NIL_GUID : req.previousCmid;
  let cmid = req.cmid;
  let workstation = req.workstation;
  const epid = epidFor(state.identity, catalog, req.kmsId, req.applicationId);
  let hresult: number = HResult.S_OK;
  let reason = '';
  let count = 0;
  let body: KmsResponseBody | null = null;

  const refused =
    imposed?.hresult !== undefined
      ? { hresult: imposed.hresult, reason: imposed.reason ?? imposed.label }
      : refusal(state, req, meta.now);
  if (refused && refused.hresult !== HResult.S_OK) {
    hresult = refused.hresult;
    reason = refused.reason;
  } else {
    const pool = poolFor(state, req.applicationId);
    if (policy.dedupePreviousCmid && req.previousCmid !== NIL_GUID && req.previousCmid !== req.cmid) {
      if (pool.remove(req.previousCmid))
        change.remove.push({ applicationId: pool.applicationId, cmid: req.previousCmid });
    }
    const t = pool.touch(req.cmid, meta.now, {
      workstation: req.workstation,
      skuId: skuId,
      kmsId: kmsId,
      requiredCount: req.requiredClientCount,
    });
    for (const c of t.expired) change.remove.push({ applicationId: pool.applicationId, cmid: c.cmid });
    for (const c of t.evicted) change.remove.push({ applicationId: pool.applicationId, cmid: c.cmid });
    const c = t.client;
    // A literal, not a spread: one object of a fixed shape per request.
    change.upsert.push({
      applicationId: pool.applicationId,
      cmid: c.cmid,
      firstSeen: c.firstSeen,
      lastSeen: c.lastSeen,
      workstation: c.workstation,
      skuId: c.skuId,
      kmsId: c.kmsId,
      requiredCount: c.requiredCount,
    });
    // The pool's strings for this CMID and name (equal values): records made from this request share them.
    cmid = t.client.cmid;
    workstation = t.client.workstation;
    count = imposed?.count ?? t.count;
    body = {
      minorVersion: req.minorVersion,
      majorVersion: req.majorVersion,
      epid,
      cmid: req.cmid,
      clientTime: req.clientTime,
      currentCount: count,
      activationInterval: policy.activationInterval,
      renewalInterval: policy.renewalInterval,
    };
  }
  const wouldActivate = hresult === HResult.S_OK && count >= req.requiredClientCount;
  const decision = hresult !== HResult.S_OK ? 'refused' : wouldActivate ? 'activated' : 'count-insufficient';
  if (!reason) reason = countReason(count, req.requiredClientCount, policy.activationInterval);
  state.seq += 1;
  state.totals.requests += 1;
  state.totals.byResult[decision] = (state.totals.byResult[decision] ?? 0) + 1;
  const event: ActivationEvent = {
    type: 'activation',
    seq: state.seq,
    time: meta.now,
    connectionId: meta.connectionId,
    peer: meta.peer,
    hresult,
    requiredCount: req.requiredClientCount,
    workstation,
    cmid,
    clientTime: fileTimeToIso(req.clientTime),
    vm: req.vmInfo !== 0,
    licenseStatus: req.licenseStatus,
    bindingExpiration: req.bindingExpiration,
    skuId,
    previousCmid,
    applicationId,
    kmsId,
    productName: sku?.name ?? kms?.name ?? null,
    protocol: meta.protocol,
    ndr: meta.ndr,
    count,
    epid: hresult === HResult.S_OK ? epid : '',
    wouldActivate,
    decision,
    reason,
    fault: imposed?.label ?? null,
  };
  return { hresult, body, event, change };
}
