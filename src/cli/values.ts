/**
 * zod schemas for the kinds of value a flag or a config key takes (integers, durations, addresses,
 * enums, lists). A flag's value arrives as a string; a config file's may be a number, a boolean or a
 * list: each schema accepts both where that makes sense and turns them into one typed value. Every
 * failure message says what was expected and shows the bad value; the caller adds the flag or key.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseHostPort as parseAddress } from '../client/client.js';
import { parseDuration } from '../host/clock.js';
import { parseIntervalMinutes } from '../host/policy.js';
import { expected, show } from '../schema.js';
import type { ListenAddress } from '../server/tcp.js';

/** Runs `parse`, turning its exception into a zod issue with its message. */
function via<I, O>(parse: (v: I) => O) {
  return (v: I, ctx: z.RefinementCtx): O => {
    try {
      return parse(v);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message, input: v });
      return z.NEVER;
    }
  };
}

const typeError = expected;

export const bool = () => z.boolean(typeError('true or false'));

export const text = (what = 'a string') => z.string(typeError(what)).min(1, { message: `${what}, got ""` });

export const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, typeError(`one of ${values.join(', ')}`));

export const integer = (min: number, max = Number.MAX_SAFE_INTEGER) => {
  const range = max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer in ${min}..${max}`;
  return z.union([z.string(), z.number()], typeError(range)).transform(
    via((v: string | number) => {
      const t = String(v).trim();
      const n = /^-?\d+$/.test(t) ? Number(t) : Number.NaN;
      if (!Number.isSafeInteger(n) || n < min || n > max) throw new RangeError(`${range}, got ${show(v)}`);
      return n;
    }),
  );
};

function durationMs(v: string | number): number {
  if (String(v).trim().startsWith('-'))
    throw new RangeError(`a duration ≥ 0 such as 30s, 4h or 7d, got ${show(v)}`);
  try {
    return parseDuration(v);
  } catch {
    throw new RangeError(`a duration such as 30s, 4h or 7d, got ${show(v)}`);
  }
}

/** Milliseconds from `30s`, `4h`, `1d12h`, `1500ms` or a bare number of milliseconds; never negative. */
export const duration = () =>
  z.union([z.string(), z.number()], typeError('a duration such as 30s, 4h or 7d')).transform(via(durationMs));

/** true, false, or a duration (a flag given without its value is true). */
export const durationOrSwitch = () =>
  z
    .union([z.boolean(), z.string(), z.number()], typeError('true, false or a duration such as 4h'))
    .transform(via((v: boolean | string | number) => (typeof v === 'boolean' ? v : durationMs(v))));

/** Whole minutes from a duration (`120m`, `2h`, `7d`); a bare number means minutes, as on a genuine host. */
export const minutes = () =>
  z
    .union([z.string(), z.number()], typeError('a duration such as 120m or 7d'))
    .transform(via(parseIntervalMinutes));

/**
 * A listening address: `HOST:PORT`, `[v6]:PORT`, `HOST` (default port) or `:PORT` (default host), where
 * HOST is an IP address or `localhost` (a listener is never named by a name the resolver must look up).
 */
export function parseListenAddress(s: string, defaultPort: number, defaultHost = '127.0.0.1'): ListenAddress {
  const t = s.trim();
  if (t === '' || t === ':') throw new RangeError(`HOST:PORT, got ${show(s)}`);
  if (t.endsWith(':') && !t.endsWith('::')) throw new RangeError(`${show(s)} has no port after ":"`);
  let a: ListenAddress;
  try {
    a = parseAddress(t, defaultPort, { defaultHost, allowPortZero: true });
  } catch (e) {
    throw new RangeError((e as Error).message.replace(/^.*?: (?=")/, ''));
  }
  if (a.host !== 'localhost' && isIP(a.host) === 0)
    throw new RangeError(
      `"${a.host}" is not an IP address (give HOST:PORT with an IPv4 or [IPv6] address, e.g. 0.0.0.0:${defaultPort})`,
    );
  return a;
}

export const address = (defaultPort: number) =>
  z
    .string(typeError(`an address HOST:PORT`))
    .transform(via((v: string) => parseListenAddress(v, defaultPort)));

export const list = <T extends z.ZodType>(item: T) => z.array(item, typeError('a list (e.g. ["a", "b"])'));
