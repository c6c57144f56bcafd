import { HOUR, parseDuration } from './clock.js';

/** What the host accepts, as data. Defaults are a fresh, permissive lab (spec f.5, f.8). */
export interface HostPolicy {
  /** Unknown KMS ids (and unknown application ids) → 0xC004F042. Default: activate them. */
  refuseUnknown: boolean;
  /** Retail or preview product groups → 0xC004F042. */
  refuseRetail: boolean;
  /** Application id that does not match the KMS id's application → 0xC004F042. */
  refuseMismatch: boolean;
  /** |client time − host time| above this → 0xC004F06C; null = no check (default, like vlmcsd). */
  maxClockSkewMs: number | null;
  /** VLActivationInterval in minutes sent to clients (spec f.6). */
  activationInterval: number;
  /** VLRenewalInterval in minutes. */
  renewalInterval: number;
  /** Accept a bad V4 MAC or V5/V6 pad (log it) instead of answering 0x8007000D. */
  lenient: boolean;
  /** RequiredClientCount above this → 0x8007000D. */
  maxRequiredCount: number;
  /** Drop a request's PreviousClientMachineId from its pool (spec f.3, optional reading). */
  dedupePreviousCmid: boolean;
}

export const DEFAULT_POLICY: HostPolicy = {
  refuseUnknown: false,
  refuseRetail: false,
  refuseMismatch: false,
  maxClockSkewMs: null,
  activationInterval: 120,
  renewalInterval: 10080,
  lenient: false,
  maxRequiredCount: 1000,
  dedupePreviousCmid: false,
};

/** A genuine host's skew limit, for `--max-clock-skew` without a value. */
export const GENUINE_MAX_SKEW_MS = 4 * HOUR;

/**
 * Whole minutes of a VL activation or renewal interval from `120m`, `2h`, `7d`, or a bare number of
 * minutes (as a genuine host's setting is written); at least 1 minute.
 */
export function parseIntervalMinutes(v: number | string): number {
  const t = String(v).trim();
  if (t.startsWith('-')) throw new RangeError(`an interval of at least 1 minute, got ${JSON.stringify(v)}`);
  let ms: number;
  try {
    ms = /^\d+$/.test(t) ? Number(t) * 60_000 : parseDuration(t);
  } catch {
    throw new RangeError(`a duration such as 120m or 7d, got ${JSON.stringify(v)}`);
  }
  const m = Math.floor(ms / 60_000);
  if (m < 1) throw new RangeError(`an interval of at least 1 minute, got ${JSON.stringify(v)}`);
  return m;
}

export function resolvePolicy(p: Partial<HostPolicy> = {}): HostPolicy {
  const policy = { ...DEFAULT_POLICY, ...p };
  for (const k of ['activationInterval', 'renewalInterval'] as const) {
    const v = policy[k];
    if (!Number.isInteger(v) || v < 1 || v > 0xffffffff)
      throw new RangeError(`${k} must be whole minutes ≥ 1`);
  }
  return policy;
}
