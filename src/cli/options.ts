import { formatHostPort as formatAddress, parseHostPort as parseAddress } from '../client/client.js';
import type { ListenAddress } from '../server/tcp.js';

/** A listen or target address: HOST:PORT, [v6]:PORT, HOST (default port), :PORT or port 0. */
export function parseHostPort(s: string, defaultPort = 1688, defaultHost = '127.0.0.1'): ListenAddress {
  return parseAddress(s, defaultPort, { defaultHost, allowPortZero: true });
}

export function formatHostPort(a: ListenAddress): string {
  return formatAddress(a.host, a.port);
}

export function parseIntStrict(s: string | number, what: string, min = 0): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < min)
    throw new RangeError(`${what} must be an integer ≥ ${min}, got "${s}"`);
  return n;
}
