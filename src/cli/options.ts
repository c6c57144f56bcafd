import { INPUT_LIMITS, readTextBounded } from '../bounded-read.js';
import { formatHostPort as formatAddress, parseHostPort as parseAddress } from '../client/client.js';
import { parseDuration } from '../host/clock.js';
import type { ListenAddress } from '../server/tcp.js';

/** A listen or target address: HOST:PORT, [v6]:PORT, HOST (default port), :PORT or port 0. */
export function parseHostPort(s: string, defaultPort = 1688, defaultHost = '127.0.0.1'): ListenAddress {
  return parseAddress(s, defaultPort, { defaultHost, allowPortZero: true });
}

export function formatHostPort(a: ListenAddress): string {
  return formatAddress(a.host, a.port);
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** Minutes from a duration like `120m`, `2h`, `7d` (a bare number means minutes, as on a genuine host). */
export function parseMinutes(s: string | number): number {
  const ms =
    typeof s === 'number' || /^\d+$/.test(String(s).trim()) ? Number(s) * 60_000 : parseDuration(String(s));
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 1) throw new RangeError(`interval "${s}" is under one minute`);
  return minutes;
}

export function parseIntStrict(s: string | number, what: string, min = 0): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < min)
    throw new RangeError(`${what} must be an integer ≥ ${min}, got "${s}"`);
  return n;
}

/** Reads a JSON (or YAML, by extension) config file whose keys are the flags' camelCase names. */
export async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  const text = readTextBounded(path, INPUT_LIMITS.config, 'config file');
  if (/\.ya?ml$/i.test(path)) {
    const { parse } = await import('yaml');
    return (parse(text) ?? {}) as Record<string, unknown>;
  }
  return JSON.parse(text) as Record<string, unknown>;
}
