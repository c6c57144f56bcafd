import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  defaultCatalog,
  OFFICE2010_APP_ID,
  OFFICE2013_APP_ID,
  WINDOWS_APP_ID,
} from '../../../src/catalog/products.js';
import { DAY } from '../../../src/host/clock.js';
import { createIdentity, epidFor, generateEpid, parseHwid } from '../../../src/host/identity.js';
import { SeededRandom } from '../../../src/host/random.js';
import { parseEpid } from '../../../src/kms/epid.js';

const catalog = defaultCatalog();
const NOW = Date.UTC(2026, 0, 1);

/** Spec e.1 platform-id table. */
const PLATFORM: [number, number][] = [
  [6002, 55041],
  [7601, 55041],
  [9200, 5426],
  [9600, 6401],
  [14393, 3612],
  [17763, 3612],
  [20348, 3612],
  [26100, 3612],
];

function releaseOfBuild(b: number): number {
  let r = Number.NEGATIVE_INFINITY;
  for (const h of catalog.hostBuilds) if (h.buildNumber <= b) r = Date.parse(h.releaseDate);
  return r;
}

describe('ePID generation (spec e.1)', () => {
  it.each(PLATFORM)('host build %d → platform id %d', (build, platform) => {
    const pool = catalog.epidPool('Windows')!;
    const e = generateEpid(catalog, pool, new SeededRandom(build), NOW, build, 1033);
    expect(parseEpid(e).platformId).toBe(platform);
    expect(e.slice(0, 5)).toBe(String(platform).padStart(5, '0'));
  });

  it('has the format PPPPP-GGGGG-KKK-KKKKKK-03-LLLL-BBBBB.0000-DDDYYYY with every part in bounds', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...catalog.epidPools),
        fc.constantFrom(...PLATFORM.map(([b]) => b), 17000, 19045, 22631),
        fc.constantFrom(1033, 1031, 2052, 1041, 10250),
        fc.string(),
        fc.integer({ min: Date.UTC(2024, 0, 1), max: Date.UTC(2040, 0, 1) }),
        (pool, build, lcid, seed, now) => {
          const e = generateEpid(catalog, pool, new SeededRandom(seed), now, build, lcid);
          expect(e).toMatch(/^\d{5}-\d{5}-\d{3}-\d{6}-03-\d{4,5}-\d{4,5}\.0000-\d{3}\d{4}$/);
          expect(e.length).toBeGreaterThanOrEqual(47);
          expect(e.length).toBeLessThanOrEqual(50);
          const p = parseEpid(e);
          expect(p.platformId).toBe(catalog.platformIdFor(build));
          expect(p.groupId).toBe(pool.groupId);
          expect(p.keyId).toBeGreaterThanOrEqual(pool.minKeyId);
          expect(p.keyId).toBeLessThanOrEqual(pool.maxKeyId);
          expect(p.channel).toBe(3);
          expect(p.lcid).toBe(lcid);
          expect(p.hostBuild).toBe(build);
          // Day of year 1..366 of that year, between max(CSVLK release, host build release) and now.
          expect(p.activationDay).toBeGreaterThanOrEqual(1);
          const yearDays = (Date.UTC(p.activationYear + 1, 0, 1) - Date.UTC(p.activationYear, 0, 1)) / DAY;
          expect(p.activationDay).toBeLessThanOrEqual(yearDays);
          const day = Date.UTC(p.activationYear, 0, 1) + (p.activationDay - 1) * DAY;
          const from = Math.max(Date.parse(pool.releaseDate), releaseOfBuild(build));
          expect(day).toBeGreaterThanOrEqual(from - (from % DAY));
          // (A clock set before the host build's release leaves no valid day: the release day is used.)
          expect(day).toBeLessThanOrEqual(Math.max(now, from));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('formats the key id as KKK-KKKKKK with zero padding (WinChinaGov: 015-000000 and up)', () => {
    const pool = catalog.epidPool('WinChinaGov')!;
    const p = parseEpid(generateEpid(catalog, pool, new SeededRandom(3), NOW, 17763, 1033));
    expect(p.groupId).toBe(3858);
    const e = generateEpid(catalog, pool, new SeededRandom(3), NOW, 17763, 1033);
    expect(e.split('-')[1]).toBe('03858');
    expect(Number(e.split('-')[2]) * 1_000_000 + Number(e.split('-')[3])).toBe(p.keyId);
  });

  it('dates the activation no earlier than the host build even when the build is not in the table', () => {
    // 17000 lies between 16299 (2017-10-17) and 17134: the date must not precede 16299's release.
    for (let s = 0; s < 50; s++) {
      const e = generateEpid(catalog, catalog.epidPool('Office2010')!, new SeededRandom(s), NOW, 17000, 1033);
      const p = parseEpid(e);
      const day = Date.UTC(p.activationYear, 0, 1) + (p.activationDay - 1) * DAY;
      expect(day).toBeGreaterThanOrEqual(Date.UTC(2017, 9, 17));
    }
  });
});

describe('host identity', () => {
  it('has one ePID per CSVLK pool and an 8-byte HwId, stable for a seed (spec e.1 step 6, e.3)', () => {
    const a = createIdentity(catalog, new SeededRandom('id'), NOW);
    const b = createIdentity(catalog, new SeededRandom('id'), NOW);
    const c = createIdentity(catalog, new SeededRandom('other'), NOW);
    expect(Object.keys(a.epids).sort()).toEqual(catalog.epidPools.map((p) => p.name).sort());
    expect(a).toEqual(b);
    expect(a.epids).not.toEqual(c.epids);
    expect(a.hwid.length).toBe(8);
    expect(a.hostBuild).toBe(17763);
    expect(a.lcid).toBe(1033);
    for (const e of Object.values(a.epids)) expect(() => parseEpid(e)).not.toThrow();
  });

  it('takes ePID, HwId, build and LCID overrides, and checks them', () => {
    const id = createIdentity(catalog, new SeededRandom(1), NOW, {
      epids: { windows: '03612-00206-556-123727-03-1033-17763.0000-2972018' },
      hwid: parseHwid('3A1C049600B60076'),
      hostBuild: 9600,
      lcid: 1031,
    });
    expect(id.epids['Windows']).toBe('03612-00206-556-123727-03-1033-17763.0000-2972018');
    expect(parseEpid(id.epids['Office2016']!).platformId).toBe(6401);
    expect(parseEpid(id.epids['Office2016']!).lcid).toBe(1031);
    expect(Buffer.from(id.hwid).toString('hex')).toBe('3a1c049600b60076');
    expect(() => createIdentity(catalog, new SeededRandom(1), NOW, { epids: { Windows: 'nope' } })).toThrow();
    expect(() =>
      createIdentity(catalog, new SeededRandom(1), NOW, { epids: { Nowhere: id.epids['Windows']! } }),
    ).toThrow(/unknown ePID pool/);
    expect(() => createIdentity(catalog, new SeededRandom(1), NOW, { hwid: new Uint8Array(7) })).toThrow(
      /8 bytes/,
    );
  });

  it('parses HwIds as 16 hex digits in the order written', () => {
    expect(Array.from(parseHwid('0x0102030405060708'))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(Array.from(parseHwid(' 3a1c049600b60076 '))).toEqual([
      0x3a, 0x1c, 0x04, 0x96, 0x00, 0xb6, 0x00, 0x76,
    ]);
    for (const bad of ['', '3A1C', '3A1C049600B6007G', '3A1C049600B600761']) {
      expect(() => parseHwid(bad)).toThrow(RangeError);
    }
  });

  it('answers each KMS id with the ePID of its CSVLK pool, unknown ones by application (spec e.1 step 3)', () => {
    const id = createIdentity(catalog, new SeededRandom(2), NOW);
    const win10 = '58e2134f-8e11-4d17-9cb2-91069c151148';
    const office2010 = 'e85af946-2e25-47b7-83e1-bebcebeac611';
    const office2016 = '85b5f61b-320b-4be3-814a-b76b2bfafc82';
    const chinaGov = '7ba0bf23-d0f5-4072-91d9-d55af5a481b6';
    const unknown = 'deadbeef-0000-4000-8000-000000000001';
    expect(epidFor(id, catalog, win10, WINDOWS_APP_ID)).toBe(id.epids['Windows']);
    expect(epidFor(id, catalog, office2010, OFFICE2010_APP_ID)).toBe(id.epids['Office2010']);
    expect(epidFor(id, catalog, office2016, OFFICE2013_APP_ID)).toBe(id.epids['Office2016']);
    expect(epidFor(id, catalog, chinaGov, WINDOWS_APP_ID)).toBe(id.epids['WinChinaGov']);
    expect(epidFor(id, catalog, unknown, WINDOWS_APP_ID)).toBe(id.epids['Windows']);
    expect(epidFor(id, catalog, unknown, OFFICE2010_APP_ID)).toBe(id.epids['Office2010']);
    expect(epidFor(id, catalog, unknown, OFFICE2013_APP_ID)).toBe(id.epids['Office2019']);
    expect(epidFor(id, catalog, unknown, unknown)).toBe(id.epids['Windows']);
  });
});
