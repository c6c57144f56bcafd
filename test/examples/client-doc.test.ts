import { afterEach, beforeEach, expect, test } from 'vitest';
import { KmsClient } from '../../src/client/index.js';
import { activate, HResult, hresultHex, type LabHost, startLabHost } from '../../src/index.js';

// A lab host on 127.0.0.1 and an ephemeral port: NDR64 + BTFN like Windows 8 and later hosts.
let kms: LabHost;
beforeEach(async () => {
  kms = await startLabHost({ seed: 'client-doc' });
});
afterEach(() => kms.close());

test('activate(): five servers reach the Windows Server threshold of 5', async () => {
  const seen: string[] = [];
  for (let i = 1; i <= 5; i++) {
    const [r] = await activate({
      host: kms.host,
      port: kms.port,
      product: 'Windows Server 2022 Standard',
      cmid: `00000000-0000-4000-8000-00000000000${i}`,
    });
    seen.push(`${r!.count}/${r!.requiredCount} ${hresultHex(r!.hresult)}`);
    if (i === 5) {
      // Every field of the fifth result: a verified V6 answer on NDR32, the host's identity in it.
      expect(r).toEqual({
        protocol: 6,
        host: '127.0.0.1',
        port: kms.port,
        epid: kms.state().epids['Windows'],
        hwid: expect.stringMatching(/^[0-9A-F]{16}$/),
        count: 5,
        requiredCount: 5,
        activationInterval: 120,
        renewalInterval: 10080,
        activated: true,
        hresult: HResult.S_OK,
        hresultText: 'activated: the host counts 5 machines, this product needs 5',
        cmid: '00000000-0000-4000-8000-000000000005',
        ndr: 'ndr32',
        callId: 2,
        hmacSlot: 0,
      });
    }
  }
  // The client decides: below its RequiredClientCount the answer is 0xC004F038, not a failure.
  expect(seen).toEqual([
    '1/5 0xC004F038',
    '2/5 0xC004F038',
    '3/5 0xC004F038',
    '4/5 0xC004F038',
    '5/5 0x00000000',
  ]);
});

test('KmsClient: one bind (alter_context for NDR32), then NDR32 first and NDR64 after', async () => {
  const client = new KmsClient({
    host: kms.host,
    port: kms.port,
    product: 'Office LTSC Professional Plus 2021',
  });
  expect(await client.connect()).toMatchObject({
    ndr32Context: 0,
    ndr64Context: 1,
    alteredContext: true,
    btfnAcknowledged: 3,
  });
  const results = await client.run(3); // three requests on that connection, then close
  expect(results.map((r) => [r.ndr, r.callId, r.count, r.requiredCount, r.activated])).toEqual([
    ['ndr32', 2, 1, 5, false],
    ['ndr64', 3, 1, 5, false],
    ['ndr64', 4, 1, 5, false],
  ]);
});

test('a refusal is an HRESULT; a damaged answer is a failure with a reason', async () => {
  const opts = { host: kms.host, port: kms.port, product: 'Windows 11 Enterprise' };
  kms.setFaults([{ name: 'refuse', action: { type: 'hresult', hresult: '0xC004F042' } }]);
  const [refused] = await activate(opts);
  expect(refused).toMatchObject({ hresult: HResult.KMS_ID_MISMATCH, activated: false, epid: null });
  expect(refused!.error).toBeUndefined();

  kms.setFaults([{ name: 'bad-hmac', action: { type: 'tamper', what: 'hmac' } }]);
  const [damaged] = await activate(opts);
  expect(damaged).toMatchObject({
    activated: false,
    hresult: HResult.NO_KMS, // 0xC004F074
    error: { kind: 'verification', code: 'BAD_MAC', field: 'HMAC' },
  });
});
