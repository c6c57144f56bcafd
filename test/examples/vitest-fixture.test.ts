import { activate } from '../../src/index.js';
import { createKmsTest, test } from '../../src/vitest/index.js';

// The code under test: an agent that activates in the background; the test cannot await it directly.
function startAgent(kms: { host: string; port: number }, cmid: string): void {
  void activate({ host: kms.host, port: kms.port, product: 'Windows 11 Enterprise', cmid });
}

// `kms` is a fresh lab host for this test (port 0, manual clock, memory store), closed after it.
test('the agent activates its machine', async ({ kms, expect }) => {
  startAgent(kms, '6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b');
  const e = await kms.nextActivation('6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b', { timeoutMs: 5_000 });
  expect(e).toMatchObject({ count: 1, decision: 'count-insufficient', workstation: expect.any(String) });
});

test('waits by product, and the manual clock moves only when told', async ({ kms, expect }) => {
  startAgent(kms, '00000000-0000-4000-8000-000000000001');
  await kms.nextActivation('Windows 11 Enterprise');
  await kms.advance({ days: 31 });
  expect(kms.count('windows')).toBe(0); // the CMID expired 30 days after it was last seen
});

// Strict mode: a request that no expectActivation / nextActivation / kms.activate accounts for fails
// the test after it ran (msw's onUnhandledRequest: 'error').
const strictTest = createKmsTest({ strict: true, seed: 'strict' });

strictTest('every request the host saw was expected', async ({ kms, expect }) => {
  kms.expectActivation({ product: 'Windows 11 Enterprise' });
  startAgent(kms, '00000000-0000-4000-8000-000000000002');
  await kms.nextActivation({ cmid: '00000000-0000-4000-8000-000000000002' });
  await kms.activate({ product: 'Office Professional Plus 2021' }); // the test's own requests count as expected
  expect(kms.unexpectedActivations()).toEqual([]);
});
