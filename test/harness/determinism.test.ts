import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runScenario, type Scenario } from '../../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'kmslab-det-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every protocol and syntax, renewals, decay, and faults of every level (probabilities included). */
const mixed: Scenario = {
  name: 'determinism mix',
  host: { seed: 42, start: '2026-06-01T08:00:00Z' },
  faults: [
    { name: 'flaky', match: { probability: 0.3 }, action: { type: 'hresult', hresult: '0xC004F039' } },
    { name: 'cut', match: { nth: 7 }, action: { type: 'close-mid-response' } },
    { name: 'nak', match: { nth: 4 }, action: { type: 'bind-nak' } },
    { name: 'down', match: { window: { from: '2d', to: '3d' } }, action: { type: 'refuse-connection' } },
    { name: 'tamper', match: { protocol: 5 }, action: { type: 'tamper', what: 'ciphertext' } },
  ],
  steps: [
    { activate: { product: 'Windows 10 Enterprise', machines: 6, group: 'w', requests: 2 } },
    { activate: { product: 'Windows 7 Professional', protocol: 4, machines: 3 } },
    { activate: { product: 'Windows 8 Professional', protocol: 5, ndr64: false, machines: 2 } },
    { activate: { product: 'Office Professional Plus 2016', machines: 4, group: 'o' } },
    { advance: '2d1h' },
    { activate: { product: 'Office Professional Plus 2016', machines: 2, group: 'o' } },
    { advance: '31d' },
    {
      activate: {
        product: 'Windows 10 Enterprise',
        machines: 6,
        group: 'w',
        newConnection: true,
        requests: 2,
      },
    },
  ],
};

async function transcriptOf(s: Scenario | string, name: string): Promise<Buffer> {
  const path = join(dir, name);
  const r = await runScenario(s, { record: path });
  expect(r.error).toBeUndefined();
  return readFileSync(path);
}

describe('determinism', () => {
  it('the same seed, manual clock and client inputs give byte-identical transcripts (responses included)', async () => {
    const a = await transcriptOf(mixed, 'a.ndjson');
    const b = await transcriptOf(mixed, 'b.ndjson');
    expect(a.length).toBeGreaterThan(10_000);
    expect(b.equals(a)).toBe(true);
    const text = a.toString('utf8');
    // The mix really exercised what it claims to.
    for (const rule of ['flaky', 'cut', 'nak', 'down', 'tamper']) expect(text).toContain(`"rule":"${rule}"`);
    for (const v of [4, 5, 6]) expect(text).toContain(`"version":${v}`);
    expect(text).toContain('"ndr":"ndr64"');
    // And a different seed changes the bytes.
    const c = await transcriptOf({ ...mixed, host: { ...mixed.host, seed: 43 } }, 'c.ndjson');
    expect(c.equals(a)).toBe(false);
  });

  it('every shipped scenario records the same bytes twice', async () => {
    for (const f of readdirSync('fixtures/scenarios')) {
      const a = await transcriptOf(`fixtures/scenarios/${f}`, `${f}.1`);
      const b = await transcriptOf(`fixtures/scenarios/${f}`, `${f}.2`);
      expect(b.equals(a), f).toBe(true);
    }
  });
});
