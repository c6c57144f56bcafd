/**
 * Control-API routes of the lab harness, plugged in through the control API's `extraRoutes`:
 *
 *   GET    /faults   the active rules (normalised)
 *   POST   /faults   replace every rule: body `[rule, ...]` or `{ "faults": [...] }`; 400 lists every error
 *   DELETE /faults   remove every rule
 *   GET    /events   like the plain control API's (history rows, then live), but the live part is the
 *                    lab host's whole event stream: activations, fault markers (connection and bind
 *                    faults too) and, with `connections=1`, connection events
 */
import type http from 'node:http';
import { jsonReplacer } from '../kms/hresult.js';
import {
  followParam,
  HttpError,
  historyQuery,
  NDJSON_HEADERS,
  readJson,
  sendJson,
} from '../server/control-api.js';
import type { Store } from '../store/store.js';
import type { LabEvent, LabEvents } from './events.js';
import { type FaultEngine, FaultRuleError } from './faults.js';

export type ControlRoute = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
) => Promise<boolean> | boolean;

/** `GET/POST/DELETE /faults` over a fault engine. */
export function faultRoutes(engine: FaultEngine): ControlRoute {
  return async (req, res, url) => {
    if (url.pathname !== '/faults') return false;
    switch (req.method) {
      case 'GET':
        sendJson(res, 200, { faults: engine.rules });
        return true;
      case 'POST':
      case 'PUT': {
        const body = await readJson(req);
        try {
          sendJson(res, 200, { faults: engine.setRules(body) });
        } catch (e) {
          if (e instanceof FaultRuleError)
            sendJson(res, 400, { error: 'invalid fault rules', errors: e.errors });
          else throw e;
        }
        return true;
      }
      case 'DELETE':
        sendJson(res, 200, { faults: engine.setRules([]) });
        return true;
      default:
        throw new HttpError(405, `${req.method} /faults: use GET, POST or DELETE`);
    }
  };
}

/** `GET /events` with the lab host's fault and connection events in the live part. */
export function labEventsRoute(store: Store, events: LabEvents): ControlRoute {
  return (req, res, url) => {
    if (req.method !== 'GET' || url.pathname !== '/events') return false;
    const q = historyQuery(url, ['follow', 'connections']);
    const follow = followParam(url);
    const connections =
      url.searchParams.get('connections') === '1' || url.searchParams.get('connections') === 'true';
    res.writeHead(200, NDJSON_HEADERS);
    res.flushHeaders();
    for (const r of store.history(q))
      res.write(`${JSON.stringify({ type: 'history', ...r }, jsonReplacer)}\n`);
    if (!follow || events.ended) {
      res.end();
      return true;
    }
    const fn = (e: LabEvent) => {
      if (e.type === 'connection' && !connections) return;
      res.write(`${JSON.stringify(e, jsonReplacer)}\n`);
    };
    events.on('event', fn);
    const stop = () => {
      events.off('event', fn);
      res.end();
    };
    req.on('close', stop);
    res.on('close', () => events.off('event', fn));
    return true;
  };
}
