import { expect, test } from 'vitest';
import { type ActivationResult, HResult, startLabHost } from '../../src/index.js';

// The code under test: tooling that turns a client's activation result into an action.
function nextAction(r: ActivationResult): 'done' | 'retry-later' | 'escalate' {
  if (r.activated) return 'done';
  if (r.hresult === HResult.COUNT_INSUFFICIENT) return 'retry-later'; // 0xC004F038: not enough machines yet
  return 'escalate';
}

test('tooling waits on 0xC004F038 until the 25th machine, then every machine activates', async () => {
  const kms = await startLabHost({ seed: 'threshold' });
  try {
    const cmids = Array.from(
      { length: 25 },
      (_, i) => `00000000-0000-4000-8000-${String(i + 1).padStart(12, '0')}`,
    );
    const first: string[] = [];
    for (const cmid of cmids) {
      const [r] = await kms.activate({ product: 'Windows 10 Pro', cmid });
      first.push(`${r!.count}:${nextAction(r!)}`);
    }
    // Machines 1..24 are counted but told the count is insufficient; the 25th activates.
    expect(first.slice(0, 24)).toEqual(cmids.slice(0, 24).map((_, i) => `${i + 1}:retry-later`));
    expect(first[24]).toBe('25:done');

    // Windows clients retry every 2 hours (VLActivationInterval); by then the count is 25 for all.
    await kms.advance({ hours: 2 });
    for (const cmid of cmids.slice(0, 24)) {
      const [r] = await kms.activate({ product: 'Windows 10 Pro', cmid });
      expect(nextAction(r!)).toBe('done');
    }
    expect(kms.count('windows')).toBe(25);
    expect(kms.history({ wouldActivate: true, from: '2026-01-01T02:00:00Z' })).toHaveLength(24);
  } finally {
    await kms.close();
  }
});
