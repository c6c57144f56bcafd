import type { TestProject } from 'vitest/node';
import { type LabHostOptions, startLabHost } from '../harness/lab-host.js';

/** What the global host tells the tests, through vitest's `provide`/`inject` (key `kmslab`). */
export interface ProvidedKmsHost {
  host: string;
  port: number;
  /** `host:port` of the KMS listener. */
  address: string;
  /** `http://host:port` of its control API (clock, reset, faults, status), or null without one. */
  controlUrl: string | null;
}

declare module 'vitest' {
  interface ProvidedContext {
    kmslab: ProvidedKmsHost;
  }
}

/**
 * A vitest `globalSetup` that starts one lab host for the whole run (in vitest's main process, so every
 * worker reaches the same host over loopback) and provides its address as `inject('kmslab')`. The
 * control API is on by default, since tests in workers cannot call the host's methods: they move its
 * manual clock or set faults over HTTP. Use it as a globalSetup file's default export:
 *
 *     export default kmslabGlobalSetup({ seed: 'ci' });
 *
 * This module loads no vitest code (a globalSetup runs outside the test runner), so it is its own entry
 * point, `kmslab/vitest/global-setup`.
 */
export function kmslabGlobalSetup(options: LabHostOptions = {}) {
  return async function setup(project: TestProject): Promise<() => Promise<void>> {
    const host = await startLabHost({ control: true, ...options });
    project.provide('kmslab', {
      host: host.host,
      port: host.port,
      address: host.address,
      controlUrl: host.controlUrl,
    });
    return () => host.close();
  };
}
