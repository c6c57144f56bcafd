/** HRESULTs a KMS host answers in the response stub, or a client derives (spec f.5). */
export const HResult = {
  S_OK: 0x00000000,
  /** Host: the KMS id (product group) is not served, or retail/preview, or AppId/KMS id mismatch. */
  KMS_ID_MISMATCH: 0xc004f042,
  /** Host: |client time − host time| over the allowed skew. */
  TIME_SKEW: 0xc004f06c,
  /** Host: unsupported version, short or undecodable message, N_Policy over 1000. */
  INVALID_DATA: 0x8007000d,
  /** Client: the count reported by the KMS is insufficient (count < N_Policy). */
  COUNT_INSUFFICIENT: 0xc004f038,
  /** Client: no KMS could be contacted. */
  NO_KMS: 0xc004f074,
  /** Never decided by kmslab's host, only imposed (a lab's): "KMS is not enabled" / "not activated" (spec f.5, unverified on the wire). */
  KMS_NOT_ENABLED: 0xc004f039,
  KMS_NOT_ACTIVATED: 0xc004f041,
  SKU_NOT_FOUND: 0xc004f069,
  SECURITY_PROCESSOR_INVALID_DATA: 0xc004d104,
} as const;

const TEXT: Record<number, string> = {
  [HResult.S_OK]: 'success',
  [HResult.KMS_ID_MISMATCH]:
    'the KMS host refused this product (SL_E_VL_KEY_MANAGEMENT_SERVICE_ID_MISMATCH: the specified KMS cannot be used)',
  [HResult.TIME_SKEW]:
    "the KMS host found the client's clock too far from its own (request time stamp invalid, 0xC004F06C)",
  [HResult.INVALID_DATA]:
    'the KMS host could not use the request (ERROR_INVALID_DATA: unsupported protocol version or malformed message)',
  [HResult.COUNT_INSUFFICIENT]:
    'the count reported by the KMS host is insufficient: fewer machines than this product requires have contacted it',
  [HResult.NO_KMS]:
    'no KMS host could be used: the connection, the RPC exchange or a check on the answer failed',
  [HResult.KMS_NOT_ENABLED]: 'the KMS host says KMS is not enabled (0xC004F039)',
  [HResult.KMS_NOT_ACTIVATED]: 'the KMS host says it is not activated itself (0xC004F041)',
  [HResult.SKU_NOT_FOUND]: 'the product SKU is not found (0xC004F069)',
  [HResult.SECURITY_PROCESSOR_INVALID_DATA]: 'the security processor reported invalid data (0xC004D104)',
};

export function hresultHex(h: number): string {
  return `0x${(h >>> 0).toString(16).toUpperCase().padStart(8, '0')}`;
}

/** Keys whose numbers are HRESULTs (or NCA status codes) wherever kmslab writes JSON for a reader. */
export const HRESULT_KEYS: ReadonlySet<string> = new Set(['hresult', 'ncaStatus']);

/**
 * A `JSON.stringify` replacer that writes HRESULTs as "0xC004F038" (for jq and for people: the
 * decimal 3221549112 says nothing), and bigints as decimal strings.
 */
export function jsonReplacer(key: string, value: unknown): unknown {
  if (typeof value === 'number' && HRESULT_KEYS.has(key)) return hresultHex(value);
  return typeof value === 'bigint' ? value.toString() : value;
}

export function hresultText(h: number): string {
  return TEXT[h >>> 0] ?? `HRESULT ${hresultHex(h)}`;
}

/** Parses "0xC004F042", "C004F042" or a decimal number. */
export function parseHResult(s: string | number): number {
  if (typeof s === 'number') return s >>> 0;
  const t = s.trim();
  const v = /^0x/i.test(t) || /[a-f]/i.test(t) ? Number.parseInt(t.replace(/^0x/i, ''), 16) : Number(t);
  if (!Number.isFinite(v) || v < 0 || v > 0xffffffff) throw new RangeError(`not an HRESULT: ${s}`);
  return v >>> 0;
}
