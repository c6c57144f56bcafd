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
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? `filetime:${ft}` : d.toISOString();
}
