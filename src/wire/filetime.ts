/** FILETIME: 100-ns ticks since 1601-01-01T00:00Z (spec glossary). */
export type FileTime = bigint;

const EPOCH_DIFF_MS = 11_644_473_600_000n;

export function fileTimeFromMs(ms: number): FileTime {
  return (BigInt(Math.trunc(ms)) + EPOCH_DIFF_MS) * 10_000n;
}

/** Milliseconds since the Unix epoch (sub-millisecond ticks are dropped). */
export function fileTimeToMs(ft: FileTime): number {
  return Number(ft / 10_000n - EPOCH_DIFF_MS);
}

export function fileTimeToIso(ft: FileTime): string {
  const ms = fileTimeToMs(ft);
  // Fast path (every request's time stamp): years 1601..9999, formatted exactly as toISOString does.
  if (ms >= MIN_FAST_MS && ms < MAX_FAST_MS) return isoUtc(ms);
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? `filetime:${ft}` : d.toISOString();
}

/** 1601-01-01T00:00:00.000Z (FILETIME 0) and 10000-01-01T00:00:00.000Z (where ISO years get a sign). */
const MIN_FAST_MS = -11_644_473_600_000;
const MAX_FAST_MS = 253_402_300_800_000;
const DAY_MS = 86_400_000;
const ISO: number[] = Array.from('0000-00-00T00:00:00.000Z', (c) => c.charCodeAt(0));

function digits(at: number, v: number, n: number): void {
  for (let i = at + n - 1; i >= at; i--) {
    ISO[i] = 48 + (v % 10);
    v = Math.floor(v / 10);
  }
}

/**
 * `new Date(ms).toISOString()` for a whole number of ms in [MIN_FAST_MS, MAX_FAST_MS), without a Date:
 * the civil date from the day number (H. Hinnant's days_from_civil inverse), then the digits.
 */
function isoUtc(ms: number): string {
  const days = Math.floor(ms / DAY_MS);
  let rem = ms - days * DAY_MS;
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  digits(0, year, 4);
  digits(5, month, 2);
  digits(8, day, 2);
  const h = Math.floor(rem / 3_600_000);
  rem -= h * 3_600_000;
  const m = Math.floor(rem / 60_000);
  rem -= m * 60_000;
  const sec = Math.floor(rem / 1000);
  digits(11, h, 2);
  digits(14, m, 2);
  digits(17, sec, 2);
  digits(20, rem - sec * 1000, 3);
  // Spelled out: `apply` would copy the array into an arguments list on every call.
  const c = ISO;
  return String.fromCharCode(
    c[0]!,
    c[1]!,
    c[2]!,
    c[3]!,
    c[4]!,
    c[5]!,
    c[6]!,
    c[7]!,
    c[8]!,
    c[9]!,
    c[10]!,
    c[11]!,
    c[12]!,
    c[13]!,
    c[14]!,
    c[15]!,
    c[16]!,
    c[17]!,
    c[18]!,
    c[19]!,
    c[20]!,
    c[21]!,
    c[22]!,
    c[23]!,
  );
}
