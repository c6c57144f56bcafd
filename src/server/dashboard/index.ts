import type http from 'node:http';
import { type Catalog, defaultCatalog } from '../../catalog/products.js';
import type { ExtraRoute } from '../metrics.js';
import { DASHBOARD_JS } from './app.js';
import { DASHBOARD_HTML } from './page.js';
import { DASHBOARD_CSS } from './styles.js';

/**
 * The dashboard: one page on the control port (`GET /`), plain HTML + a small vanilla script + CSS,
 * kept as strings in TS modules so they ship in dist/ without a copy step. The page reads the control
 * API (/status, /clients, /events?follow=false, /history) and steers the manual clock (/clock/advance)
 * and /reset. Product names come from `/dashboard/catalog.json`.
 */
export interface DashboardOptions {
  catalog?: Catalog;
}

export const DASHBOARD_PATHS = {
  page: '/',
  script: '/dashboard/app.js',
  styles: '/dashboard/app.css',
  catalog: '/dashboard/catalog.json',
} as const;

/** What the page needs before it has a token (no data in any of them): served without one. */
export const DASHBOARD_PUBLIC_PATHS: ReadonlySet<string> = new Set([
  '/',
  '/index.html',
  '/dashboard',
  '/dashboard/',
  DASHBOARD_PATHS.script,
  DASHBOARD_PATHS.styles,
  DASHBOARD_PATHS.catalog,
]);

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/** SKU and KMS id names, thresholds per application: what the page needs to label things. */
export function dashboardCatalog(catalog: Catalog) {
  return {
    applications: catalog.applications.map((a) => ({
      id: a.id,
      name: a.name,
      shortName: a.vlmcsdName,
      capacity: a.cacheSize,
    })),
    skus: Object.fromEntries(catalog.skus.map((s) => [s.id, s.name])),
    kmsIds: Object.fromEntries(catalog.kmsIds.map((k) => [k.id, { name: k.name, requiredCount: k.nPolicy }])),
  };
}

export function dashboardRoute(opts: DashboardOptions = {}): ExtraRoute {
  let catalogJson: string | null = null;
  const send = (res: http.ServerResponse, type: string, body: string, head: boolean) => {
    res.writeHead(200, {
      'content-type': type,
      'content-length': Buffer.byteLength(body),
      ...SECURITY_HEADERS,
    });
    res.end(head ? undefined : body);
  };
  return (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const head = req.method === 'HEAD';
    switch (url.pathname) {
      case '/':
      case '/index.html':
      case '/dashboard':
      case '/dashboard/':
        send(res, 'text/html; charset=utf-8', DASHBOARD_HTML, head);
        return true;
      case DASHBOARD_PATHS.script:
        send(res, 'text/javascript; charset=utf-8', DASHBOARD_JS, head);
        return true;
      case DASHBOARD_PATHS.styles:
        send(res, 'text/css; charset=utf-8', DASHBOARD_CSS, head);
        return true;
      case DASHBOARD_PATHS.catalog:
        catalogJson ??= JSON.stringify(dashboardCatalog(opts.catalog ?? defaultCatalog()));
        send(res, 'application/json; charset=utf-8', catalogJson, head);
        return true;
      default:
        return false;
    }
  };
}

export { DASHBOARD_CSS, DASHBOARD_HTML, DASHBOARD_JS };
