import { expect, test } from 'vitest';
import { hostDown, type LabHost, startLabHost } from '../../src/index.js';

// The code under test: activation with retries, waiting between attempts. The wait is injected, so
// the test moves the lab host's clock instead of sleeping.
async function activateWithRetry(kms: LabHost, wait: () => Promise<unknown>, attempts = 5) {
  const log: string[] = [];
  for (let i = 1; i <= attempts; i++) {
    const [r] = await kms.activate({
      product: 'Office LTSC Professional Plus 2021',
      cmid: 'ab9c4f1e-70a2-4f5e-9a43-1e6d4b2c8f10',
    });
    log.push(r!.error ? `attempt ${i}: ${r!.error.kind} error` : `attempt ${i}: count ${r!.count}`);
    if (!r!.error) return { ok: true, log };
    await wait();
  }
  return { ok: false, log };
}

test('a retry after an injected outage succeeds once the host is back', async () => {
  // The host is down for the first 5 hours of host-clock time.
  const kms = await startLabHost({ seed: 'outage', faults: [hostDown(0, '5h')] });
  try {
    const result = await activateWithRetry(kms, () => kms.advance('2h'));
    expect(result).toEqual({
      ok: true,
      log: [
        'attempt 1: transport error',
        'attempt 2: transport error',
        'attempt 3: transport error',
        'attempt 4: count 1',
      ],
    });
    // Each refused connection is marked in the event stream, at the host time it happened.
    const refused = kms.events.all('fault');
    expect(refused.map((f) => [f.action, new Date(f.time).toISOString()])).toEqual([
      ['refuse-connection', '2026-01-01T00:00:00.000Z'],
      ['refuse-connection', '2026-01-01T02:00:00.000Z'],
      ['refuse-connection', '2026-01-01T04:00:00.000Z'],
    ]);
    // The outage never reached the host's history: one request, at hour 6.
    expect(kms.history().map((h) => new Date(h.time).toISOString())).toEqual(['2026-01-01T06:00:00.000Z']);
  } finally {
    await kms.close();
  }
});
