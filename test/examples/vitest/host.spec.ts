import { expect, test } from 'vitest';
import { activate } from '../../../src/index.js';
import { kmslabHost } from '../../../src/vitest/index.js';

// The host runs in vitest's main process; every test file of the run reaches it over loopback.
const kms = kmslabHost(); // inject('kmslab'): { host, port, address, controlUrl }

test('the shared host answers', async () => {
  const [r] = await activate({ host: kms.host, port: kms.port, product: 'Windows Server 2022 Standard' });
  expect(r!.error).toBeUndefined();
  expect(r!.count).toBeGreaterThanOrEqual(1);
});

const hostTime = async () => {
  const status = (await (await fetch(`${kms.controlUrl}/status`)).json()) as { time: string };
  return Date.parse(status.time);
};

test('its manual clock moves through the control API', async () => {
  const before = await hostTime();
  await fetch(`${kms.controlUrl}/clock/advance`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ days: 1 }),
  });
  expect((await hostTime()) - before).toBe(86_400_000);
});
