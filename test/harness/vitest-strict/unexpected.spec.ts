import { activate } from '../../../src/index.js';
import { createKmsTest } from '../../../src/vitest/index.js';

const test = createKmsTest({ strict: true });

test('a request nobody expected fails the test', async ({ kms, expect }) => {
  await activate({ host: kms.host, port: kms.port, product: 'Windows 11 Pro', cmid: UNEXPECTED });
  expect(kms.count('windows')).toBe(1); // passes: only strict mode, at the end of the test, fails it
});

test('the same request, declared, passes', async ({ kms, expect }) => {
  kms.expectActivation({ application: 'windows' });
  await activate({ host: kms.host, port: kms.port, product: 'Windows 11 Pro', cmid: UNEXPECTED });
  expect(kms.count('windows')).toBe(1);
});

const UNEXPECTED = '0badc0de-0000-4000-8000-000000000001';
