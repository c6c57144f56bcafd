import type { KmsServer } from '../../src/server/tcp.js';

/**
 * Resolves once `cond()` holds, checked now and after each of the server's observations (connection
 * open / close, bind, call: what changes the counts a test reads). No timer of its own: vitest's test
 * timeout bounds a host that never gets there, so a slow machine cannot fail it early.
 */
export function until(server: Pick<KmsServer, 'observe'>, cond: () => boolean): Promise<void> {
  if (cond()) return Promise.resolve();
  return new Promise((resolve) => {
    const stop = server.observe(() => {
      if (cond()) {
        stop();
        resolve();
      }
    });
  });
}
