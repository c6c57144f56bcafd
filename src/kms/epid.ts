import { ProtocolError } from '../wire/errors.js';

/**
 * The host's extended PID (spec e.1): `PPPPP-GGGGG-KKK-KKKKKK-03-LLLL-BBBBB.0000-DDDYYYY`.
 */
export interface EpidParts {
  platformId: number;
  groupId: number;
  keyId: number;
  /** Always 3 (volume) for a KMS host key. */
  channel: number;
  lcid: number;
  hostBuild: number;
  /** Day of year 1–366 and year of the host's activation. */
  activationDay: number;
  activationYear: number;
}

const EPID_RE = /^(\d{5})-(\d{5})-(\d{3})-(\d{6})-(\d{2})-(\d{1,5})-(\d{1,5})\.0000-(\d{3})(\d{4})$/;

export function formatEpid(p: EpidParts): string {
  const pad = (n: number, w: number) => String(n).padStart(w, '0');
  return [
    pad(p.platformId, 5),
    pad(p.groupId, 5),
    pad(Math.floor(p.keyId / 1_000_000), 3),
    pad(p.keyId % 1_000_000, 6),
    pad(p.channel, 2),
    String(p.lcid),
    `${p.hostBuild}.0000`,
    `${pad(p.activationDay, 3)}${pad(p.activationYear, 4)}`,
  ].join('-');
}

/** Parses and bounds-checks an ePID; throws BAD_EPID naming what is wrong. */
export function parseEpid(s: string): EpidParts {
  const m = EPID_RE.exec(s);
  if (!m)
    throw new ProtocolError(
      'BAD_EPID',
      `not an ePID (PPPPP-GGGGG-KKK-KKKKKK-03-LCID-BUILD.0000-DDDYYYY): ${s}`,
    );
  const n = (i: number) => Number(m[i]);
  const parts: EpidParts = {
    platformId: n(1),
    groupId: n(2),
    keyId: n(3) * 1_000_000 + n(4),
    channel: n(5),
    lcid: n(6),
    hostBuild: n(7),
    activationDay: n(8),
    activationYear: n(9),
  };
  if (parts.activationDay < 1 || parts.activationDay > 366) {
    throw new ProtocolError('BAD_EPID', `ePID activation day ${parts.activationDay} outside 1..366`);
  }
  if (s.length > 63) throw new ProtocolError('BAD_EPID', 'ePID longer than 63 characters');
  return parts;
}

export function isValidEpid(s: string): boolean {
  try {
    parseEpid(s);
    return true;
  } catch {
    return false;
  }
}
