import { afterEach, beforeEach, expect, test } from 'vitest';
import { activate, type LabHost, startLabHost } from '../../src/index.js';

// The code under test: a provisioning script that activates a machine against a KMS host, then
// reports its status the way a dashboard would want it.
async function provision(kms: { host: string; port: number }, cmid: string) {
  const [result] = await activate({ host: kms.host, port: kms.port, product: 'Windows 11 Enterprise', cmid });
  if (result!.error) return { status: 'unreachable', detail: result!.error.message };
  return result!.activated
    ? { status: 'activated', count: result!.count }
    : { status: 'waiting', detail: result!.hresultText };
}

let kms: LabHost;
beforeEach(async () => {
  kms = await startLabHost({ seed: 'provisioning' });
});
afterEach(() => kms.close());

test('the script activates, and the host saw exactly that machine', async () => {
  // Charge the host with 24 other machines so the script's machine is the 25th.
  for (let i = 0; i < 24; i++) await kms.activate({ product: 'Windows 11 Enterprise' });

  const cmid = '2f0c6a52-3b7e-4c1a-9d55-6a7e0f1b2c3d';
  expect(await provision(kms, cmid)).toEqual({ status: 'activated', count: 25 });

  // The host's side of the story: who activated, when, with what count.
  const [row] = kms.history({ cmid, wouldActivate: true });
  expect(row).toMatchObject({ count: 25, hresult: 0, time: Date.parse('2026-01-01T00:00:00Z') });
  expect(kms.state().pools.find((p) => p.name.startsWith('Windows'))?.count).toBe(25);
});

test('the script reports "waiting" below the threshold and "unreachable" when the host is down', async () => {
  expect(await provision(kms, '00000000-0000-4000-8000-000000000001')).toMatchObject({ status: 'waiting' });

  kms.setFaults([{ name: 'down', action: { type: 'refuse-connection' } }]);
  expect(await provision(kms, '00000000-0000-4000-8000-000000000001')).toMatchObject({
    status: 'unreachable',
  });
  expect(kms.events.all('fault').map((f) => f.rule)).toEqual(['down']);
});
