import { expect, test } from 'vitest';
import { type LabEvent, startLabHost } from '../../src/index.js';

test('await using closes the lab host when the block ends', async () => {
  let events: AsyncIterable<LabEvent>;
  {
    await using kms = await startLabHost({ seed: 'await-using' });
    events = kms.events;
    const [r] = await kms.activate({ product: 'Windows 11 Enterprise' });
    expect(r!.count).toBe(1);
  } // kms[Symbol.asyncDispose]() runs here, also when the block throws: no afterEach, no try/finally

  // The host is closed, so its event stream has ended: iterating it finishes instead of waiting.
  const types: string[] = [];
  for await (const e of events) types.push(e.type);
  expect(types).toContain('activation');
});

test('at the top of a test, the host lives exactly as long as the test', async () => {
  await using kms = await startLabHost({ seed: 'await-using' });
  await kms.activate({ product: 'Windows 11 Enterprise' });
  await kms.advance({ days: 31 }); // the CMID decays out of the count
  expect(kms.count('windows')).toBe(0);
});
