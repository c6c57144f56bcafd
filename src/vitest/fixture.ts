import { test as baseTest } from 'vitest';
import { type LabHost, type LabHostOptions, startLabHost } from '../harness/lab-host.js';
import type { ActivationEvent } from '../host/events.js';
import {
  type ActivationMatch,
  activationMatcher,
  DEFAULT_WAIT_MS,
  describeActivations,
  nextActivation,
  type WaitOptions,
} from './wait.js';

export interface KmsFixtureOptions extends LabHostOptions {
  /**
   * Fail the test when the host saw a KMS request nobody expected (like msw's
   * `onUnhandledRequest: 'error'`). Expected are: requests matching `expectActivation(...)` or a
   * `nextActivation(...)` wait, and requests made by the fixture's own `activate()`. Default false.
   */
  strict?: boolean;
  /** Default timeout of `nextActivation`, wall-clock ms (default 5000). */
  waitTimeoutMs?: number;
}

/** A lab host (manual clock unless `clock` says otherwise) with the waiting and strict-mode helpers. */
export interface KmsFixture extends LabHost {
  /** The next activation matching `match` (a CMID, a product name, or fields); see `nextActivation`. */
  nextActivation(match: ActivationMatch, opts?: WaitOptions): Promise<ActivationEvent>;
  /** Declares requests the code under test is expected to make (strict mode lets them through). */
  expectActivation(match: ActivationMatch): void;
  /** The requests strict mode would fail the test for, so far. */
  unexpectedActivations(): ActivationEvent[];
}

/** Wraps a lab host with the fixture's helpers; `strict` decides only what `check()` reports. */
export function kmsFixture(
  host: LabHost,
  opts: Pick<KmsFixtureOptions, 'waitTimeoutMs'> = {},
): KmsFixture & { check(): void } {
  const expected: ((e: ActivationEvent) => boolean)[] = [];
  const ownCmids = new Set<string>();
  const labActivate = host.activate.bind(host);
  const unexpected = () =>
    host.events.all('activation').filter((e) => !ownCmids.has(e.cmid) && !expected.some((m) => m(e)));
  return Object.assign(host, {
    async activate(o?: Parameters<LabHost['activate']>[0]) {
      const results = await labActivate(o);
      for (const r of results) ownCmids.add(r.cmid);
      return results;
    },
    nextActivation(match: ActivationMatch, w: WaitOptions = {}) {
      expected.push(activationMatcher(host, match));
      return nextActivation(host, match, { timeoutMs: w.timeoutMs ?? opts.waitTimeoutMs ?? DEFAULT_WAIT_MS });
    },
    expectActivation(match: ActivationMatch) {
      expected.push(activationMatcher(host, match));
    },
    unexpectedActivations: unexpected,
    check() {
      const list = unexpected();
      if (list.length > 0)
        throw new Error(
          `kmslab strict mode: the host saw ${list.length} request(s) nobody expected ` +
            `(declare them with kms.expectActivation(...) or wait for them with kms.nextActivation(...)):` +
            describeActivations(list),
        );
    },
  });
}

/**
 * A vitest `test` whose `kms` fixture is a fresh lab host for each test that uses it (port 0, manual
 * clock, memory store), closed after the test. `kmsOptions` are the host's options; override them for a
 * file or a suite with `test.override({ kmsOptions: { strict: true } })`.
 */
export function createKmsTest(defaults: KmsFixtureOptions = {}) {
  return baseTest.extend<{ kmsOptions: KmsFixtureOptions; kms: KmsFixture }>({
    kmsOptions: defaults,
    kms: async ({ kmsOptions }, use) => {
      const { strict = false, waitTimeoutMs, ...hostOptions } = kmsOptions;
      const fixture = kmsFixture(await startLabHost(hostOptions), { waitTimeoutMs });
      try {
        await use(fixture);
        // Thrown from the fixture's teardown: vitest fails the test with this message.
        if (strict) fixture.check();
      } finally {
        await fixture.close();
      }
    },
  });
}

/** `createKmsTest()` with the defaults: `import { test } from 'kmslab/vitest'`. */
export const test = createKmsTest();
