/**
 * `kmslab/vitest`: kmslab in vitest (an optional peer dependency, 4.1 or later).
 *
 * - `test`, `createKmsTest(defaults)`: a `kms` fixture, a fresh lab host per test on a manual clock,
 *   with `nextActivation(...)` waits and an optional strict mode;
 * - `kmsFixture(host)`: the same helpers on a host you started yourself;
 * - `nextActivation(host, match, { timeoutMs })`: wait for an activation of a CMID or a product;
 * - `kmslabHost()`: the address of the host `kmslabGlobalSetup` (from `kmslab/vitest/global-setup`, which
 *   does not load vitest's test runner, as a globalSetup file must not) started for the whole run;
 *   the same as `inject('kmslab')`.
 */

import { inject } from 'vitest';
import type { ProvidedKmsHost } from './global-setup.js';

export { createKmsTest, type KmsFixture, type KmsFixtureOptions, kmsFixture, test } from './fixture.js';
export type { ProvidedKmsHost } from './global-setup.js';
export { type ActivationMatch, nextActivation, type WaitOptions } from './wait.js';

/** The host `kmslabGlobalSetup` started; throws a clear error when the config has no such globalSetup. */
export function kmslabHost(): ProvidedKmsHost {
  const provided = inject('kmslab');
  if (!provided)
    throw new Error(
      "kmslab: no host was provided; add a globalSetup file exporting kmslabGlobalSetup() to the vitest config's test.globalSetup",
    );
  return provided;
}
