/**
 * Who may talk to the control API: the checks that keep a web page (cross-origin, or on a DNS-rebound
 * name) from driving or reading a lab host, in the manner of the Docker daemon, Jupyter and Vite's dev
 * server. Sans-io: request method, path and headers in, a refusal (status + one-line reason) or null
 * out. docs/robustness.md "Control API" gives the threat model.
 *
 * - Host: only the listener's own names (loopback names and any IP literal at the listener's port, plus
 *   names the operator allows). A DNS-rebound page sends its own name as Host, so it gets 421.
 * - Mutations (anything but GET/HEAD) need `Content-Type: application/json`: a page can send that only
 *   after a CORS preflight, and this API never answers one (no CORS headers, OPTIONS is refused).
 * - A mutation that carries a cross-origin `Origin` (or `Sec-Fetch-Site` other than same-origin/none)
 *   is refused even so, in case a browser ever lets one through.
 * - A token, when set, is needed on every request except the dashboard's static files (which hold no
 *   data, so the page can show its login prompt).
 */
import { timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';

export interface ControlGuardOptions {
  /** The port the control listener is bound to (its Host must name it). */
  port: number;
  /** Extra Host names (`name` = any port, `name:port` = that port), e.g. a reverse proxy's. */
  allowHosts?: readonly string[];
  /** Bearer token every request must carry; null/undefined = none (loopback only). */
  token?: string | null;
  /** Paths served without the token (the dashboard's page, script, styles). */
  publicPaths?: ReadonlySet<string>;
}

export interface Refusal {
  status: number;
  message: string;
}

type Headers = Record<string, string | string[] | undefined>;

const SAFE_METHODS = new Set(['GET', 'HEAD']);
const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]']);

function header(h: Headers, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** `name[:port]` of a Host header, lower-cased; null when it does not parse. */
function splitHost(host: string): { name: string; port: number | null } | null {
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/i.exec(host.trim());
  if (!m) return null;
  return { name: m[1]!.toLowerCase(), port: m[2] === undefined ? null : Number(m[2]) };
}

function hostAllowed(host: string | undefined, o: ControlGuardOptions): boolean {
  if (host === undefined) return false;
  const h = splitHost(host);
  if (!h) return false;
  const port = h.port ?? 80;
  // An IP literal cannot be rebound by DNS, so any address of this machine's at our port is fine.
  const bare = h.name.startsWith('[') ? h.name.slice(1, -1) : h.name;
  if ((LOOPBACK_NAMES.has(h.name) || isIP(bare) !== 0) && port === o.port) return true;
  for (const a of o.allowHosts ?? []) {
    const want = splitHost(a);
    if (want && want.name === h.name && (want.port === null || want.port === h.port)) return true;
  }
  return false;
}

function tokenMatches(given: string, want: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(want);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** null when the request may proceed; otherwise the answer to give it. */
export function checkControlRequest(
  req: { method?: string | undefined; headers: Headers },
  pathname: string,
  o: ControlGuardOptions,
): Refusal | null {
  const host = header(req.headers, 'host');
  if (!hostAllowed(host, o)) {
    return {
      status: 421,
      message: `Host "${host ?? ''}" is not this control API's (use 127.0.0.1:${o.port} or localhost:${o.port}, or allow the name with --control-host-allow)`,
    };
  }
  const method = (req.method ?? 'GET').toUpperCase();
  if (method === 'OPTIONS') return { status: 405, message: 'OPTIONS: this API grants no CORS preflight' };
  if (o.token && !o.publicPaths?.has(pathname)) {
    const auth = header(req.headers, 'authorization') ?? '';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (!m || !tokenMatches(m[1]!, o.token)) {
      return {
        status: 401,
        message: 'this control API needs "Authorization: Bearer <token>" (--control-token)',
      };
    }
  }
  if (SAFE_METHODS.has(method)) return null;
  const type = (header(req.headers, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    return {
      status: 415,
      message: `${method} ${pathname} needs "Content-Type: application/json" (got "${type}")`,
    };
  }
  const origin = header(req.headers, 'origin');
  if (origin !== undefined && origin.toLowerCase() !== `http://${host!.toLowerCase()}`) {
    return { status: 403, message: `cross-origin request from "${origin}" refused` };
  }
  const site = header(req.headers, 'sec-fetch-site');
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    return { status: 403, message: `${site} request refused (Sec-Fetch-Site)` };
  }
  return null;
}

/**
 * A control address other machines can reach (anything but loopback) must carry a token. Loopback:
 * localhost, ::1, 127.0.0.0/8, and 127/8 written IPv4-mapped (::ffff:127.0.0.1, as a dual-stack
 * socket reports it).
 */
export function isLoopbackAddress(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return h === 'localhost' || h === '::1' || /^(::ffff:)?127\./i.test(h);
}
