import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { startLabHost } from '../../src/index.js';
import { createKmsTest, kmsFixture, nextActivation } from '../../src/vitest/index.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'kmslab-vitest-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Report {
  numPassedTests: number;
  numFailedTests: number;
  testResults: { assertionResults: { title: string; status: string; failureMessages: string[] }[] }[];
}

/** Runs a nested vitest project (its own config) in a child process; its JSON report. */
async function vitest(config: string): Promise<Report> {
  const out = join(dir, `${config.replace(/\W/g, '_')}.json`);
  await run(
    process.execPath,
    ['node_modules/vitest/vitest.mjs', 'run', '--config', config, '--reporter=json', `--outputFile=${out}`],
    { env: { ...process.env, KMSLAB_JSON_REPORT: '' }, timeout: 120_000 },
  ).catch((e: { code?: number }) => {
    if (e.code !== 1) throw e; // 1: some test failed, which the strict project expects
  });
  return JSON.parse(readFileSync(out, 'utf8')) as Report;
}

describe('kmslab/vitest in a real vitest run', () => {
  it('globalSetup starts one host and inject() gives the tests its address', async () => {
    const r = await vitest('test/examples/vitest/vitest.config.ts');
    expect(r.numFailedTests).toBe(0);
    expect(r.numPassedTests).toBe(2);
  });

  it('strict mode fails a test whose host saw a request nobody expected, and names it', async () => {
    const r = await vitest('test/harness/vitest-strict/vitest.config.ts');
    const results = r.testResults.flatMap((f) => f.assertionResults);
    expect(results.map((t) => [t.title, t.status])).toEqual([
      ['a request nobody expected fails the test', 'failed'],
      ['the same request, declared, passes', 'passed'],
    ]);
    const message = results[0]!.failureMessages.join('\n');
    expect(message).toContain('kmslab strict mode: the host saw 1 request(s) nobody expected');
    expect(message).toContain('0badc0de-0000-4000-8000-000000000001');
  });
});

describe('nextActivation', () => {
  it('fails after its timeout with what the host did see', async () => {
    await using kms = await startLabHost({ seed: 'wait' });
    await kms.activate({ product: 'Windows 11 Pro', cmid: '00000000-0000-4000-8000-00000000000a' });
    await expect(
      nextActivation(kms, '00000000-0000-4000-8000-00000000000b', { timeoutMs: 50 }),
    ).rejects.toThrow(
      /no activation matching "00000000-0000-4000-8000-00000000000b" within 50 ms\. The host saw \n {2}00000000-0000-4000-8000-00000000000a/,
    );
  });

  it('returns each activation once, in order, whether it came before or after the call', async () => {
    await using kms = await startLabHost({ seed: 'wait' });
    const fixture = kmsFixture(kms);
    await kms.activate({ product: 'Windows 11 Pro', cmid: '00000000-0000-4000-8000-000000000001' });
    const a = fixture.nextActivation({ application: 'windows' }); // the one already seen
    const b = fixture.nextActivation({ application: 'windows' }); // waits for the next
    await kms.activate({ product: 'Windows 11 Pro', cmid: '00000000-0000-4000-8000-000000000002' });
    expect([(await a).cmid, (await b).cmid]).toEqual([
      '00000000-0000-4000-8000-000000000001',
      '00000000-0000-4000-8000-000000000002',
    ]);
  });

  it('matches a product by catalog name, and rejects when the host closes first', async () => {
    const kms = await startLabHost({ seed: 'wait' });
    await kms.activate({ product: 'Office Professional Plus 2021' });
    const office = await nextActivation(kms, 'Office Professional Plus 2021', { timeoutMs: 1000 });
    expect(office.applicationId).toBe('0ff1ce15-a989-479d-af46-f275c6370663');
    const never = nextActivation(kms, { product: 'Windows 11 Pro' }, { timeoutMs: 10_000 });
    await kms.close();
    await expect(never).rejects.toThrow('before the host closed');
  });
});

// The fixture itself, used directly.
const kmsTest = createKmsTest({ seed: 'fixture', start: '2026-06-01T00:00:00Z' });
kmsTest('the fixture host has a manual clock at the given start', async ({ kms }) => {
  expect(kms.clock.now()).toBe(Date.parse('2026-06-01T00:00:00Z'));
  await kms.advance('1d');
  expect(kms.clock.now()).toBe(Date.parse('2026-06-02T00:00:00Z'));
});

describe('options overridden for a suite', () => {
  kmsTest.override({ kmsOptions: { seed: 'override', start: '2027-01-01T00:00:00Z' } });
  kmsTest('the suite gets hosts with its own options', async ({ kms }) => {
    expect(kms.seed).toBe('override');
    expect(kms.clock.now()).toBe(Date.parse('2027-01-01T00:00:00Z'));
  });
});
