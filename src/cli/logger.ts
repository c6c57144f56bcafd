import type { Logger } from 'pino';
import { HRESULT_KEYS, hresultHex } from '../kms/hresult.js';

/*
 * The shape of every log line `kmslab serve` writes, whatever the format: one `time` (pino's wall
 * clock, ms since the epoch), the host's own (virtual) time as `hostTime` (ISO), HRESULTs as
 * "0xC004F038" strings, and one stream (stdout) for JSON lines and --pretty alike.
 */

/** Renames a logged object's `time` (the host's clock) and writes its HRESULTs in hex. */
export function logShape(o: Record<string, unknown>): Record<string, unknown> {
  if (!('time' in o) && !Object.keys(o).some((k) => HRESULT_KEYS.has(k))) return o;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (k === 'time') out['hostTime'] = typeof v === 'number' ? new Date(v).toISOString() : v;
    else if (HRESULT_KEYS.has(k) && typeof v === 'number') out[k] = hresultHex(v);
    else out[k] = v;
  }
  return out;
}

export async function createLogger(level: string, pretty: boolean): Promise<Logger> {
  const { default: pino } = await import('pino');
  const options = { level, formatters: { log: logShape } };
  if (!pretty) return pino(options, pino.destination({ fd: 1, sync: true }));
  const { prettyStream } = await import('./pretty.js');
  return pino(options, prettyStream(process.stdout));
}
