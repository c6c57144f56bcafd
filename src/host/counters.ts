/**
 * The host's cumulative request counters, as a genuine KMS host keeps them and reports them through
 * `slmgr /dlv` ("Key Management Service cumulative requests received from clients") and WMI's
 * SoftwareLicensingService (KeyManagementServiceTotalRequests, …FailedRequests, …UnlicensedRequests,
 * …). They count from the store's first request on, survive restarts and are never pruned; on a
 * genuine host they reset only when it is reinstalled (docs/host.md section 9).
 *
 * What counts where (docs/host.md, "Cumulative request counters"):
 * - `total`: every RequestActivation call the KMS service answered, decodable or not; the control
 *   API's uncounted health-check probe excepted. RPC-level refusals (unknown context, opnum ≠ 0, no
 *   bind) never reach the KMS service and are not requests.
 * - `failed`: those not answered with a count: an error HRESULT in the stub (undecodable message,
 *   policy refusal, imposed HRESULT) or an RPC fault (stub inconsistent with its lengths, imposed
 *   NCA status). A count below the client's threshold is not a failure: the host answered normally and the
 *   client decides (spec f.4).
 * - one counter per LicenseStatus of the request (spec c.1: 0 Unlicensed, 1 Licensed, 2 OOB grace,
 *   3 OOT grace, 4 Non-genuine grace, 5 Notification, 6 Extended grace), for every request that
 *   decoded, failed or not; a status outside 0–6 counts in `otherLicenseStatus`. A request that did
 *   not decode has no LicenseStatus: it counts in `total` and `failed` only.
 */
export interface RequestCounters {
  total: number;
  failed: number;
  unlicensed: number;
  licensed: number;
  oobGrace: number;
  ootGrace: number;
  nonGenuineGrace: number;
  notification: number;
  extendedGrace: number;
  otherLicenseStatus: number;
}

/** Counter names by LicenseStatus value (spec c.1). */
const BY_STATUS = [
  'unlicensed',
  'licensed',
  'oobGrace',
  'ootGrace',
  'nonGenuineGrace',
  'notification',
  'extendedGrace',
] as const satisfies readonly (keyof RequestCounters)[];

const NAMES = [
  'total',
  'failed',
  ...BY_STATUS,
  'otherLicenseStatus',
] as const satisfies readonly (keyof RequestCounters)[];

export function emptyCounters(): RequestCounters {
  return {
    total: 0,
    failed: 0,
    unlicensed: 0,
    licensed: 0,
    oobGrace: 0,
    ootGrace: 0,
    nonGenuineGrace: 0,
    notification: 0,
    extendedGrace: 0,
    otherLicenseStatus: 0,
  };
}

/** Counts one answered request; `licenseStatus` is null when the request did not decode. */
export function countRequest(c: RequestCounters, licenseStatus: number | null, failed: boolean): void {
  c.total++;
  if (failed) c.failed++;
  if (licenseStatus === null) return;
  const name = Number.isInteger(licenseStatus) ? BY_STATUS[licenseStatus] : undefined;
  if (name !== undefined) c[name]++;
  else c.otherLicenseStatus++;
}

/**
 * The store keeps counters as name → value rows (request_counters); these are the row names of the
 * request counters (`requests.total`, …) and of the decision totals (`decisions.activated`, …).
 */
const REQUESTS_PREFIX = 'requests.';
const DECISIONS_PREFIX = 'decisions.';

export interface Totals {
  requests: number;
  byResult: Record<string, number>;
}

/** Row names of the request counters, in NAMES order (made once: counterRows runs on every commit). */
const REQUEST_ROWS = NAMES.map((k) => REQUESTS_PREFIX + k);
/** Row names of the decisions seen so far (a handful: activated, count-insufficient, refused). */
const DECISION_ROWS = new Map<string, string>();

function decisionRow(decision: string): string {
  let row = DECISION_ROWS.get(decision);
  if (row === undefined) {
    row = DECISIONS_PREFIX + decision;
    // Decisions are the host's own few names; the bound only keeps a misuse from growing the map.
    if (DECISION_ROWS.size < 64) DECISION_ROWS.set(decision, row);
  }
  return row;
}

/** The rows to store for the current counters and decision totals. */
export function counterRows(c: RequestCounters, totals: Totals): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < NAMES.length; i++) out[REQUEST_ROWS[i]!] = c[NAMES[i]!];
  const byResult = totals.byResult;
  for (const k in byResult) if (Object.hasOwn(byResult, k)) out[decisionRow(k)] = byResult[k]!;
  return out;
}

/** Counters and decision totals from stored rows; a name this code does not know is ignored. */
export function countersFromRows(rows: Record<string, number>): {
  counters: RequestCounters;
  totals: Totals;
} {
  const counters = emptyCounters();
  const totals: Totals = { requests: 0, byResult: {} };
  for (const [name, value] of Object.entries(rows)) {
    if (name.startsWith(REQUESTS_PREFIX)) {
      const k = name.slice(REQUESTS_PREFIX.length) as keyof RequestCounters;
      if ((NAMES as readonly string[]).includes(k)) counters[k] = value;
    } else if (name.startsWith(DECISIONS_PREFIX) && value > 0) {
      // A zero row is a decision `POST /reset` zeroed: as if never seen.
      totals.byResult[name.slice(DECISIONS_PREFIX.length)] = value;
      totals.requests += value;
    }
  }
  return { counters, totals };
}

/** What the host reports besides the counters (the SoftwareLicensingService KMS host properties). */
export interface HostReportInfo {
  /** The TCP port the host listens on (first listener); null before it listens. */
  listeningPort: number | null;
  /** Whether the host publishes its _vlmcs._tcp SRV record (kmslab: `serve --dns`). */
  dnsPublishing: boolean;
  /** KMS priority: kmslab always runs at normal priority. */
  lowPriority: boolean;
}

/**
 * The SoftwareLicensingService WMI properties of a KMS host, by their WMI names (Microsoft's
 * SoftwareLicensingService class; `Get-KmsLicenseInfo` returns the same names). Values are uint32
 * in WMI, so they wrap as WMI's would. KeyManagementServiceCurrentCount is the Windows pool's count
 * (the service's own product); each pool's count is in `/status` pools.
 */
export function wmiProperties(
  c: RequestCounters,
  info: HostReportInfo & { currentCount: number; activationInterval: number; renewalInterval: number },
) {
  const u32 = (n: number) => n >>> 0;
  return {
    IsKeyManagementServiceMachine: 1,
    KeyManagementServiceCurrentCount: info.currentCount,
    KeyManagementServiceListeningPort: info.listeningPort ?? 0,
    KeyManagementServiceDnsPublishing: info.dnsPublishing,
    KeyManagementServiceLowPriority: info.lowPriority,
    VLActivationInterval: info.activationInterval,
    VLRenewalInterval: info.renewalInterval,
    KeyManagementServiceTotalRequests: u32(c.total),
    KeyManagementServiceFailedRequests: u32(c.failed),
    KeyManagementServiceUnlicensedRequests: u32(c.unlicensed),
    KeyManagementServiceLicensedRequests: u32(c.licensed),
    KeyManagementServiceOOBGraceRequests: u32(c.oobGrace),
    KeyManagementServiceOOTGraceRequests: u32(c.ootGrace),
    KeyManagementServiceNonGenuineGraceRequests: u32(c.nonGenuineGrace),
    KeyManagementServiceNotificationRequests: u32(c.notification),
  };
}
