/** Loading the vlmcsd conversation captures (fixtures/vectors/vlmcsd, see CAPTURES.md) for the rpc tests. */
import { readdirSync, readFileSync } from 'node:fs';
import { Association, type AssociationOptions } from '../../../src/rpc/association.js';
import type { HostProfile } from '../../../src/rpc/negotiate.js';

export const VLMCSD_DIR = new URL('../../../fixtures/vectors/vlmcsd/', import.meta.url);
export const VECTORS_FILE = new URL('../../../fixtures/vectors/kms-test-vectors.json', import.meta.url);

export type Annotation = Record<string, unknown>;

export interface CapturedPdu {
  dir: 'c2s' | 's2c';
  conn?: number;
  hex?: string;
  rpc?: Annotation;
  /** bad-* only: how the server ended the connection instead of a PDU. */
  event?: string;
}

export interface ConnectionEvent {
  conn: number;
  dir: 'c2s' | 's2c';
  event: string;
  after_pdu_count: number;
}

export interface Capture {
  file: string;
  name: string;
  description: string;
  vlmcsd_options: string[];
  pdus: CapturedPdu[];
  connection_events?: ConnectionEvent[];
  outcome?: { closed: boolean | string; server_alive: boolean; valid_request_ok_after: boolean };
}

export function loadCaptures(filter: (file: string) => boolean): Capture[] {
  return readdirSync(VLMCSD_DIR)
    .filter((f) => f.endsWith('.json') && filter(f))
    .sort()
    .map((file) => ({
      file,
      ...(JSON.parse(readFileSync(new URL(file, VLMCSD_DIR), 'utf8')) as Omit<Capture, 'file'>),
    }));
}

/** v4-*, v5-*, v6-* and err-*: complete vlmcs/vlmcsd conversations. */
export const conversationCaptures = (): Capture[] => loadCaptures((f) => /^(v[456]|err)-/.test(f));
export const badCaptures = (): Capture[] => loadCaptures((f) => f.startsWith('bad-'));

export function loadRpcVectors(): Record<string, string> {
  return (JSON.parse(readFileSync(VECTORS_FILE, 'utf8')) as { rpc: Record<string, string> }).rpc;
}

/** The host profile of a capture's server: -N0 = no NDR64, -B0 = BTFN off (vlmcsd options). */
export function hostProfile(c: Capture): HostProfile {
  return { ndr64: !c.vlmcsd_options.includes('-N0'), btfn: !c.vlmcsd_options.includes('-B0') };
}

export function fromHex(h: string): Uint8Array {
  return new Uint8Array(Buffer.from(h, 'hex'));
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Connection indices of a capture (bad-* files have no `conn`: one connection, 0). */
export function connections(c: Capture): number[] {
  return [...new Set(c.pdus.map((p) => p.conn ?? 0))].sort((a, b) => a - b);
}

/**
 * The PDUs of one connection in one direction, as bytes. For c2s, PDUs the client sent after the
 * server had closed (vlmcsd -d) are left out: they never reached a live server.
 */
export function pdusOf(c: Capture, conn: number, dir: 'c2s' | 's2c'): Uint8Array[] {
  const serverEof = c.connection_events?.find((e) => e.conn === conn && e.dir === 's2c' && e.event === 'eof');
  const out: Uint8Array[] = [];
  c.pdus.forEach((p, i) => {
    if ((p.conn ?? 0) !== conn || p.dir !== dir || p.hex === undefined) return;
    if (dir === 'c2s' && serverEof && i >= serverEof.after_pdu_count) return;
    out.push(fromHex(p.hex));
  });
  return out;
}

/** Every hex PDU of every capture, labelled, for the golden and fuzz tests. */
export function allCapturedPdus(
  captures: Capture[],
): { label: string; dir: string; hex: string; rpc?: Annotation }[] {
  return captures.flatMap((c) =>
    c.pdus.flatMap((p, i) =>
      p.hex === undefined ? [] : [{ label: `${c.name}#${i} ${p.dir}`, dir: p.dir, hex: p.hex, rpc: p.rpc }],
    ),
  );
}

/** An association as a default host has it (NDR64 + BTFN, port 1688, 5840-byte PDUs, group 0xabcdef01). */
export function testAssociation(over: Partial<AssociationOptions> = {}): Association {
  return new Association({
    profile: { ndr64: true, btfn: true },
    secondaryAddress: '1688',
    maxPduSize: 5840,
    maxCallSize: 65536,
    newAssocGroupId: () => 0xabcdef01,
    ...over,
  });
}
