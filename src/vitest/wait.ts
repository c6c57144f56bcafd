import type { Catalog } from '../catalog/products.js';
import { applicationId, type LabHost } from '../harness/lab-host.js';
import type { ActivationEvent } from '../host/events.js';

/**
 * Which activations a test is waiting for or expects: a CMID or product name as a string, or fields that
 * must all hold. `product` is a catalog product name (case-insensitive) or a SKU id; `application` is
 * `windows`, `office2010`, `office2013` or an application id.
 */
export type ActivationMatch =
  | string
  | {
      cmid?: string;
      product?: string;
      application?: string;
      decision?: ActivationEvent['decision'];
    };

export interface WaitOptions {
  /** Wall-clock ms to wait for the event (default 5000): the code under test runs in real time. */
  timeoutMs?: number;
}

export const DEFAULT_WAIT_MS = 5_000;

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The SKU ids a product name or id means in `catalog` (the names the client emulator takes). */
function skuIds(product: string, catalog: Catalog): Set<string> {
  const ids = new Set([product.toLowerCase()]);
  try {
    ids.add(catalog.findSku(product).id);
  } catch {
    // Not a catalog name: matched as a SKU id or as the host's product name only.
  }
  return ids;
}

/** A predicate for `match`; product names are looked up in `host`'s catalog. */
export function activationMatcher(host: LabHost, match: ActivationMatch): (e: ActivationEvent) => boolean {
  const m = typeof match === 'string' ? (GUID.test(match) ? { cmid: match } : { product: match }) : match;
  const cmid = m.cmid?.toLowerCase();
  const skus = m.product === undefined ? undefined : skuIds(m.product, host.runtime.service.state.catalog);
  const app = m.application === undefined ? undefined : applicationId(m.application);
  return (e) =>
    (cmid === undefined || e.cmid === cmid) &&
    (skus === undefined || skus.has(e.skuId) || skus.has(e.productName?.toLowerCase() ?? '')) &&
    (app === undefined || e.applicationId === app) &&
    (m.decision === undefined || e.decision === m.decision);
}

function describeMatch(match: ActivationMatch): string {
  return typeof match === 'string'
    ? JSON.stringify(match)
    : JSON.stringify(match).replace(/"(\w+)":/g, '$1: ');
}

/** One line per activation, for failure messages. */
export function describeActivations(list: readonly ActivationEvent[], max = 10): string {
  if (list.length === 0) return 'none';
  const lines = list
    .slice(0, max)
    .map((e) => `  ${e.cmid} ${e.productName ?? e.skuId} (${e.decision}, count ${e.count}) from ${e.peer}`);
  if (list.length > max) lines.push(`  ... and ${list.length - max} more`);
  return `\n${lines.join('\n')}`;
}

/** The activations each host's waits have returned, so two waits never return the same one. */
const consumed = new WeakMap<LabHost, WeakSet<ActivationEvent>>();

/**
 * Resolves with the earliest activation matching `match` that no earlier `nextActivation` on this host
 * returned, waiting on the host's event stream if there is none yet (so it works whether the code under
 * test ran before or after the call). Rejects with the activations the host did see when none matches
 * within `timeoutMs`, or when the host closes first.
 */
export function nextActivation(
  host: LabHost,
  match: ActivationMatch,
  opts: WaitOptions = {},
): Promise<ActivationEvent> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_WAIT_MS;
  let taken = consumed.get(host);
  if (!taken) {
    taken = new WeakSet();
    consumed.set(host, taken);
  }
  const seen = taken;
  const matches = activationMatcher(host, match);
  let cancelled = false;
  const found = host.events.first('activation', (e) => {
    // Claimed inside the predicate, so a second wait running on the same event skips it; a wait that
    // timed out claims nothing.
    if (cancelled || seen.has(e) || !matches(e)) return false;
    seen.add(e);
    return true;
  });
  const failure = (why: string) =>
    new Error(
      `kmslab: no activation matching ${describeMatch(match)} ${why}. The host saw ` +
        `${describeActivations(host.events.all('activation'))}`,
    );
  return new Promise<ActivationEvent>((resolve, reject) => {
    const timer = setTimeout(() => {
      cancelled = true;
      reject(failure(`within ${timeoutMs} ms`));
    }, timeoutMs);
    found.then(
      (e) => {
        clearTimeout(timer);
        resolve(e);
      },
      () => {
        clearTimeout(timer);
        reject(failure('before the host closed'));
      },
    );
  });
}
