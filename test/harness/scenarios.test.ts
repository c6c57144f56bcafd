import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { faultActions } from '../../src/harness/faults.js';
import {
  formatScenarioReport,
  loadScenario,
  parseScenario,
  runScenario,
  ScenarioError,
} from '../../src/index.js';

/** Every action type, in the descriptors' order (error messages list them so). */
const ACTION_TYPES = faultActions()
  .map((a) => a.type)
  .join(', ');

const shipped = readdirSync('fixtures/scenarios').filter((f) => /\.(ya?ml|json)$/.test(f));

describe('shipped scenarios', () => {
  it('are the five documented ones', () => {
    expect(shipped.sort()).toEqual([
      'clock-skew.yaml',
      'decay-30-days.yaml',
      'host-outage.yaml',
      'threshold-charging.yaml',
      'unknown-product.yaml',
    ]);
  });

  for (const f of shipped) {
    it(`${f} passes`, async () => {
      const r = await runScenario(`fixtures/scenarios/${f}`);
      expect(r.error, formatScenarioReport(r)).toBeUndefined();
      expect(
        r.expectations.filter((e) => !e.passed),
        formatScenarioReport(r),
      ).toEqual([]);
      expect(r.expectations.length).toBeGreaterThan(5);
      expect(r.passed).toBe(true);
    });
  }
});

describe('scenario runner', () => {
  it('reports each failed expectation with what was expected and what happened', async () => {
    const r = await runScenario({
      name: 'wrong on purpose',
      steps: [
        {
          activate: { product: 'Windows 10 Enterprise', machines: 3 },
          expect: { hresult: 0, counts: [1, 2, 4], lastCount: 3 },
        },
        { check: { counts: { windows: 2 }, clients: 3 } },
      ],
      expect: { history: { wouldActivate: true, length: 1 } },
    });
    expect(r.passed).toBe(false);
    const text = formatScenarioReport(r);
    expect(text).toContain(
      '✗ step 1: activate 3× Windows 10 Enterprise: hresult: expected "0x00000000", got 3× 0xC004F038',
    );
    expect(text).toContain(
      '✗ step 1: activate 3× Windows 10 Enterprise: counts: expected [1,2,4], got [1,2,3]',
    );
    expect(text).toContain('✓ step 1: activate 3× Windows 10 Enterprise: last count');
    expect(text).toContain('✗ step 2: check: windows count: expected 2, got 3');
    expect(text).toContain('✓ step 2: check: live clients');
    expect(text).toContain('✗ final: history {"wouldActivate":true}: expected 1, got 0');
    expect(text).toMatch(/FAIL wrong on purpose: 4 of 6 expectations failed/);
  });

  it('stops at a step that cannot run and says why', async () => {
    const r = await runScenario({
      name: 'system clock',
      host: { clock: 'system' },
      steps: [{ advance: '1d' }],
    });
    expect(r.passed).toBe(false);
    expect(r.error).toMatch(/step 1 \(advance\): this lab host runs on the system clock/);
  });

  it('faults steps change the rules over time; groups keep their CMIDs', async () => {
    const r = await runScenario({
      name: 'faults over time',
      steps: [
        {
          activate: { product: 'Office Professional Plus 2019', machines: 3, group: 'g' },
          expect: { counts: [1, 2, 3] },
        },
        { faults: [{ name: 'off', action: { type: 'hresult', hresult: '0xC004F039' } }] },
        {
          activate: { product: 'Office Professional Plus 2019', machines: 3, group: 'g' },
          expect: { hresult: '0xC004F039' },
        },
        { faults: [] },
        {
          activate: { product: 'Office Professional Plus 2019', machines: 4, group: 'g' },
          expect: { counts: [3, 3, 3, 4] },
        },
        { reset: true },
        { check: { counts: { office2013: 0 }, faultEvents: { off: 3 }, activations: 10 } },
      ],
    });
    expect(r.passed, formatScenarioReport(r)).toBe(true);
  });

  it('validates scenario files with every problem listed', async () => {
    let err: unknown;
    try {
      parseScenario({
        host: { seed: [1], policy: { maxClockSkew: 'a while', refuseUnknow: true }, clock: 'atomic' },
        faults: [{ action: { type: 'explode' } }],
        steps: [
          { advance: '1d', at: '2d' },
          {
            activate: { product: 1, machines: 0, cmids: ['a'], clockSkew: '-5h' },
            expect: { hresult: 'maybe', error: 'dns' },
          },
          { check: { history: { wouldActivate: 'yes' } } },
          { teleport: true },
        ],
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ScenarioError);
    expect((err as ScenarioError).errors).toEqual([
      'scenario.name: a name is required',
      'scenario.host.seed: a string or number, got [1]',
      'scenario.host.clock: "manual" or "system", got "atomic"',
      'scenario.host.policy.maxClockSkew: bad duration "a while" (use e.g. 30s, 120m, 4h, 7d)',
      'scenario.host.policy.refuseUnknow: unknown key (did you mean "refuseUnknown"?)',
      `scenario.faults: invalid fault rules:\n  faults[0].action.type: one of ${ACTION_TYPES}; got "explode"`,
      'scenario.steps[0]: exactly one of advance, at, faults, reset, activate, check; got advance and at',
      'scenario.steps[1].activate.product: a string, got 1',
      'scenario.steps[1].activate.machines: an integer ≥ 1, got 0',
      'scenario.steps[1].activate.cmids: 1 CMIDs for 0 machines',
      'scenario.steps[1].expect.hresult: not an HRESULT: maybe',
      'scenario.steps[1].expect.error: transport, rpc, verification, or null',
      'scenario.steps[2].check.history.wouldActivate: a boolean, got "yes"',
      'scenario.steps[2].check.history.length: the number of matching rows is required',
      'scenario.steps[3]: exactly one of advance, at, faults, reset, activate, check; got none',
    ]);
  });

  it('loads JSON as well as YAML, and names the file in errors', async () => {
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const d = mkdtempSync(join(tmpdir(), 'kmslab-scn-'));
    writeFileSync(
      join(d, 'ok.json'),
      JSON.stringify({ name: 'j', steps: [{ activate: {}, expect: { count: { min: 1, max: 1 } } }] }),
    );
    writeFileSync(join(d, 'bad.yaml'), 'name: x\nsteps: [ {advance: }\n');
    expect((await runScenario(join(d, 'ok.json'))).passed).toBe(true);
    await expect(loadScenario(join(d, 'bad.yaml'))).rejects.toThrow(/bad\.yaml/);
  });
});
