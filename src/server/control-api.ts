import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { z } from 'zod';
import { ManualClock, parseDuration } from '../host/clock.js';
import type { ActivationEvent } from '../host/events.js';
import type { KmsService } from '../host/service.js';
import { jsonReplacer } from '../kms/hresult.js';
import type { HistoryQuery } from '../store/store.js';
import { checkControlRequest } from './control-guard.js';

/**
 * The control API (HTTP JSON), loopback by default. Everything a test or a dashboard needs to see and
 * steer the host: status, clients, the manual clock, reset, history and the event stream.
 */
export interface ControlApiOptions {
  service: KmsService;
  logger: Logger;
  /** Performs a real bind + activation against the host's own listener. */
  healthCheck: () => Promise<Record<string, unknown>>;
  /** Extra routes (faults, metrics, dashboard) added by other modules: return true if handled. */
  extraRoutes?: ((
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
  ) => Promise<boolean> | boolean)[];
  onClockChange?: () => void;
  onReset?: () => void;
  /** Bearer token every request needs (except `publicPaths`); none = loopback use only. */
  token?: string | null;
  /** Extra Host names accepted besides loopback names and IP literals (see control-guard.ts). */
  allowHosts?: readonly string[];
  /** Paths served without the token: the dashboard's page and static files, which hold no data. */
  publicPaths?: ReadonlySet<string>;
}

/**
 * Every JSON answer: never sniffed as HTML by a browser, never cached by one or by a proxy, and never
 * handed to a page of another origin even as an opaque `no-cors` response (Cross-Origin-Resource-Policy),
 * so it cannot land in that page's process.
 */
const JSON_HEADERS = {
  'content-type': 'application/json; charset=utf-8',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'cross-origin-resource-policy': 'same-origin',
} as const;
export const NDJSON_HEADERS = { ...JSON_HEADERS, 'content-type': 'application/x-ndjson' } as const;

/** Open control-API connections at most; more are closed on accept (docs/robustness.md §8). */
export const CONTROL_MAX_CONNECTIONS = 256;

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, jsonReplacer, 2);
  res.writeHead(status, JSON_HEADERS);
  res.end(`${text}\n`);
}

export async function readJson(req: http.IncomingMessage, limit = 1 << 20): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw new HttpError(413, 'request body too large');
    chunks.push(c as Buffer);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'body is not valid JSON');
  }
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** One issue per line: the parameter (or body key) and the value it had. */
function describeIssues(error: z.ZodError, input: Record<string, unknown>, where: string): string {
  return error.issues
    .map((i) => {
      if (i.code === 'unrecognized_keys')
        return `${where}: unknown ${i.keys.map((k) => `"${k}"`).join(', ')}`;
      const key = i.path.join('.');
      const value = i.path.length > 0 ? input[String(i.path[0])] : input;
      return `${where}${key ? ` ${key}` : ''}=${JSON.stringify(value)}: ${i.message}`;
    })
    .join('; ');
}

/** Parses with a zod schema; a mismatch is a 400 naming each bad parameter and its value. */
function parseInput<S extends z.ZodType>(schema: S, input: unknown, where: string): z.output<S> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  throw new HttpError(400, describeIssues(r.error, (input ?? {}) as Record<string, unknown>, where));
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const time = z
  .string()
  .refine(
    (v) => /^\d+$/.test(v) || !Number.isNaN(Date.parse(v)),
    'not a time (ms since the epoch or ISO-8601)',
  )
  .transform((v) => (/^\d+$/.test(v) ? Number(v) : Date.parse(v)));
const count = z
  .string()
  .regex(/^\d{1,15}$/, 'not a non-negative integer')
  .transform(Number);
const guid = z
  .string()
  .regex(GUID, 'not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)')
  .transform((v) => v.toLowerCase());
const flag = z
  .enum(['true', 'false', '1', '0'], 'not true, false, 1 or 0')
  .transform((v) => v === 'true' || v === '1');

/** The history filters shared by /history and /events. */
const HISTORY_FILTERS = {
  from: time.optional(),
  to: time.optional(),
  since: count.optional(),
  limit: count.optional(),
  cmid: guid.optional(),
  applicationId: guid.optional(),
  wouldActivate: flag.optional(),
};
const EXTRA_PARAMS = { follow: flag.optional(), connections: flag.optional() } as const;

/** The query string as an object; a repeated parameter is an error, not a silent first-wins. */
function queryParams(url: URL): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of url.searchParams) {
    if (Object.hasOwn(out, k)) throw new HttpError(400, `query: "${k}" given twice`);
    out[k] = v;
  }
  return out;
}

/**
 * The history filters shared by /history and /events: from, to, since, limit, cmid, applicationId,
 * wouldActivate, plus the `extra` switches the route takes (follow, connections). Anything else, or a
 * value that does not parse, is a 400 naming the parameter and the value.
 */
export function historyQuery(url: URL, extra: readonly (keyof typeof EXTRA_PARAMS)[] = []): HistoryQuery {
  const shape: Record<string, z.ZodType> = { ...HISTORY_FILTERS };
  for (const k of extra) shape[k] = EXTRA_PARAMS[k];
  const p = parseInput(z.strictObject(shape), queryParams(url), 'query') as {
    [K in keyof typeof HISTORY_FILTERS]: z.output<(typeof HISTORY_FILTERS)[K]>;
  };
  const q: HistoryQuery = {};
  if (p.from !== undefined) q.from = p.from;
  if (p.to !== undefined) q.to = p.to;
  if (p.since !== undefined) q.sinceSeq = p.since;
  if (p.limit !== undefined) q.limit = p.limit;
  if (p.cmid !== undefined) q.cmid = p.cmid;
  if (p.applicationId !== undefined) q.applicationId = p.applicationId;
  if (p.wouldActivate !== undefined) q.wouldActivate = p.wouldActivate;
  return q;
}

/** `follow` of /events: on unless `false` or `0`. */
export function followParam(url: URL): boolean {
  const f = url.searchParams.get('follow');
  return f !== 'false' && f !== '0';
}

const NO_QUERY = z.strictObject({});
const ADVANCE_BODY = z.union([
  z.number(),
  z.string(),
  z.strictObject({
    days: z.number().optional(),
    hours: z.number().optional(),
    minutes: z.number().optional(),
    ms: z.number().optional(),
  }),
]);
const SET_BODY = z.strictObject({ time: z.string() });
const RESET_BODY = z.strictObject({ counters: z.boolean().optional() });

export function createControlApi(opts: ControlApiOptions): http.Server {
  const { service } = opts;
  const streams = new Set<http.ServerResponse>();
  service.onEvent((e: ActivationEvent) => {
    if (streams.size === 0) return;
    const line = `${JSON.stringify(e, jsonReplacer)}\n`;
    for (const s of streams) s.write(line);
  });

  const guard = {
    token: opts.token ?? null,
    allowHosts: opts.allowHosts ?? [],
    publicPaths: opts.publicPaths ?? new Set<string>(),
  };
  const handler = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://control');
    const route = `${req.method} ${url.pathname}`;
    const port = (server.address() as AddressInfo).port;
    const refusal = checkControlRequest(req, url.pathname, { ...guard, port });
    if (refusal) {
      // A refused request's body is not read: close the connection rather than drain it.
      res.setHeader('connection', 'close');
      throw new HttpError(refusal.status, refusal.message);
    }
    for (const extra of opts.extraRoutes ?? []) {
      if (await extra(req, res, url)) return;
    }
    switch (route) {
      case 'GET /status':
        parseInput(NO_QUERY, queryParams(url), 'query');
        return sendJson(res, 200, service.status());
      case 'GET /clients':
        parseInput(NO_QUERY, queryParams(url), 'query');
        return sendJson(res, 200, {
          time: new Date(service.clock.now()).toISOString(),
          clients: service.clients(),
        });
      case 'GET /history':
        return sendJson(res, 200, { records: service.store.history(historyQuery(url)) });
      case 'POST /clock/advance': {
        if (!(service.clock instanceof ManualClock))
          throw new HttpError(409, 'the host runs on the system clock; start it with --clock manual');
        const ms = parseDuration(parseInput(ADVANCE_BODY, await readJson(req), 'body'));
        if (ms < 0) throw new HttpError(400, 'advance must not be negative (use /clock/set)');
        service.clock.advance(ms);
        service.saveClock();
        opts.onClockChange?.();
        return sendJson(res, 200, { time: new Date(service.clock.now()).toISOString() });
      }
      case 'POST /clock/set': {
        if (!(service.clock instanceof ManualClock))
          throw new HttpError(409, 'the host runs on the system clock; start it with --clock manual');
        const body = parseInput(SET_BODY, await readJson(req), 'body');
        const t = Date.parse(body.time);
        if (Number.isNaN(t)) throw new HttpError(400, 'time must be an ISO-8601 string');
        service.clock.set(t);
        service.saveClock();
        opts.onClockChange?.();
        return sendJson(res, 200, { time: new Date(t).toISOString() });
      }
      case 'POST /reset': {
        // The cumulative request counters survive a reset (as on a genuine host) unless the body asks.
        const body = parseInput(RESET_BODY, await readJson(req), 'body');
        const { countersReset } = service.reset({ counters: body.counters === true });
        opts.onReset?.();
        return sendJson(res, 200, { ok: true, requestCountersReset: countersReset });
      }
      case 'GET /healthz': {
        try {
          const r = await opts.healthCheck();
          return sendJson(res, 200, { ok: true, ...r });
        } catch (e) {
          return sendJson(res, 503, { ok: false, error: (e as Error).message });
        }
      }
      case 'GET /events': {
        const q = historyQuery(url, ['follow']);
        const follow = followParam(url);
        res.writeHead(200, NDJSON_HEADERS);
        res.flushHeaders();
        for (const r of service.store.history(q))
          res.write(`${JSON.stringify({ type: 'history', ...r }, jsonReplacer)}\n`);
        if (!follow) return res.end();
        streams.add(res);
        req.on('close', () => streams.delete(res));
        return;
      }
      default:
        throw new HttpError(404, `no route ${route}`);
    }
  };

  const server = http.createServer((req, res) => {
    handler(req, res).catch((e: unknown) => {
      const status = e instanceof HttpError ? e.status : e instanceof RangeError ? 400 : 500;
      if (status === 500) opts.logger.error({ err: e }, 'control API error');
      if (!res.headersSent) sendJson(res, status, { error: (e as Error).message });
      else res.end();
    });
  });
  server.on('close', () => {
    for (const s of streams) s.end();
    streams.clear();
  });
  // Connections (and with them /events streams) are bounded: whoever can reach the port, token or
  // not, cannot make the process spend its file descriptors, which the KMS listener needs too.
  server.maxConnections = CONTROL_MAX_CONNECTIONS;
  return server;
}
