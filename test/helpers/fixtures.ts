import { readdirSync, readFileSync } from 'node:fs';
import { fromHex } from '../../src/wire/utf16.js';

/** Loads fixtures from the project (never from ../shared): tests run from a clean clone. */
const root = new URL('../../fixtures/', import.meta.url);

export function fixtureJson<T = unknown>(rel: string): T {
  return JSON.parse(readFileSync(new URL(rel, root), 'utf8')) as T;
}

export interface CapturedPdu {
  dir: 'c2s' | 's2c';
  conn: number;
  hex?: string;
  event?: string;
  rpc?: Record<string, unknown> & { ptype?: number; syntax?: string; call_id?: number; ctx_id?: number };
}

export interface Capture {
  name: string;
  description: string;
  vlmcsd_options: string[];
  vlmcs_options?: string[];
  pdus: CapturedPdu[];
  kms_decoded_by_vlmcs?: { requests: Record<string, string>[]; responses: Record<string, string>[] };
  outcome?: { closed: boolean | string; server_alive: boolean; valid_request_ok_after: boolean };
}

export function captureNames(prefix?: RegExp): string[] {
  return readdirSync(new URL('vectors/vlmcsd/', root))
    .filter((f) => f.endsWith('.json') && (!prefix || prefix.test(f)))
    .map((f) => f.replace(/\.json$/, ''))
    .sort();
}

export function loadCapture(name: string): Capture {
  return fixtureJson<Capture>(`vectors/vlmcsd/${name}.json`);
}

export function pduBytes(p: CapturedPdu): Uint8Array {
  return fromHex(p.hex!);
}

/** The KMS test vectors of the spec author (crypto checks, whole messages, RPC PDUs). */
export function kmsVectors(): {
  crypto_checks: Record<string, unknown>;
  messages: Record<string, Record<string, string | number>>;
  rpc: Record<string, string>;
} {
  return fixtureJson('vectors/kms-test-vectors.json');
}

/** A Random stand-in that replays fixed values (to reproduce captured bytes). */
export function replayRandom(...chunks: Uint8Array[]): (n: number) => Uint8Array {
  let i = 0;
  return (n) => {
    const c = chunks[i++];
    if (!c || c.length !== n) throw new Error(`replayRandom: no ${n}-byte value at ${i - 1}`);
    return c;
  };
}
