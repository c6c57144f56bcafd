import http from 'node:http';
import type { Logger } from 'pino';
import { ManualClock, parseDuration } from '../host/clock.js';
import type { ActivationEvent } from '../host/events.js';
import type { KmsService } from '../host/service.js';
import { jsonReplacer } from '../kms/hresult.js';
import type { HistoryQuery } from '../store/store.js';

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
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, jsonReplacer, 2);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
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

/** The history filters shared by /history and /events: from, to, since, limit, cmid, applicationId, wouldActivate. */
export function historyQuery(url: URL): HistoryQuery {
  const q: HistoryQuery = {};
  const time = (k: string) => {
    const v = url.searchParams.get(k);
    if (v === null) return undefined;
    const t = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
    if (Number.isNaN(t)) throw new HttpError(400, `${k}: not a time`);
    return t;
  };
  const from = time('from');
  const to = time('to');
  if (from !== undefined) q.from = from;
  if (to !== undefined) q.to = to;
  const since = url.searchParams.get('since');
  if (since !== null) q.sinceSeq = Number(since);
  const limit = url.searchParams.get('limit');
  if (limit !== null) q.limit = Number(limit);
  const cmid = url.searchParams.get('cmid');
  if (cmid) q.cmid = cmid.toLowerCase();
  const app = url.searchParams.get('applicationId');
  if (app) q.applicationId = app.toLowerCase();
  const wa = url.searchParams.get('wouldActivate');
  if (wa !== null) q.wouldActivate = wa === 'true' || wa === '1';
  return q;
}

export function createControlApi(opts: ControlApiOptions): http.Server {
  const { service } = opts;
  const streams = new Set<http.ServerResponse>();
  service.onEvent((e: ActivationEvent) => {
    if (streams.size === 0) return;
    const line = `${JSON.stringify(e, jsonReplacer)}\n`;
    for (const s of streams) s.write(line);
  });

  const handler = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://control');
    const route = `${req.method} ${url.pathname}`;
    for (const extra of opts.extraRoutes ?? []) {
      if (await extra(req, res, url)) return;
    }
    switch (route) {
      case 'GET /status':
        return sendJson(res, 200, service.status());
      case 'GET /clients':
        return sendJson(res, 200, {
          time: new Date(service.clock.now()).toISOString(),
          clients: service.clients(),
        });
      case 'GET /history':
        return sendJson(res, 200, { records: service.store.history(historyQuery(url)) });
      case 'POST /clock/advance': {
        if (!(service.clock instanceof ManualClock))
          throw new HttpError(409, 'the host runs on the system clock; start it with --clock manual');
        const body = (await readJson(req)) as Record<string, number>;
        const ms = parseDuration(body);
        if (ms < 0) throw new HttpError(400, 'advance must not be negative (use /clock/set)');
        service.clock.advance(ms);
        service.saveClock();
        opts.onClockChange?.();
        return sendJson(res, 200, { time: new Date(service.clock.now()).toISOString() });
      }
      case 'POST /clock/set': {
        if (!(service.clock instanceof ManualClock))
          throw new HttpError(409, 'the host runs on the system clock; start it with --clock manual');
        const body = (await readJson(req)) as { time?: string };
        const t = Date.parse(String(body.time));
        if (Number.isNaN(t)) throw new HttpError(400, 'time must be an ISO-8601 string');
        service.clock.set(t);
        service.saveClock();
        opts.onClockChange?.();
        return sendJson(res, 200, { time: new Date(t).toISOString() });
      }
      case 'POST /reset':
        service.reset();
        opts.onReset?.();
        return sendJson(res, 200, { ok: true });
      case 'GET /healthz': {
        try {
          const r = await opts.healthCheck();
          return sendJson(res, 200, { ok: true, ...r });
        } catch (e) {
          return sendJson(res, 503, { ok: false, error: (e as Error).message });
        }
      }
      case 'GET /events': {
        const q = historyQuery(url);
        const follow = url.searchParams.get('follow') !== 'false' && url.searchParams.get('follow') !== '0';
        res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
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
  return server;
}
