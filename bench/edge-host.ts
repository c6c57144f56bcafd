/**
 * kmslab's connection edge with the KMS service taken out, for `bench/profile-load.ts --server-cmd`:
 * the real runtime (socket driver, Connection, association, framer, turn) on a memory store, but every
 * call after the first is answered with the first call's answer, cached: no crypto, no policy, no store.
 * Beside the no-op host and `serve` in the same run it splits kmslab's CPU per operation into Node's
 * floor, the edge, and the service (docs/benchmarks.md, "by layer"). Loopback only; runs until SIGTERM.
 *
 *   npx tsx bench/profile-load.ts --phase both --server-cmd "node --import tsx bench/edge-host.ts"
 *
 * The last argument is the port (profile-load appends it).
 */
import type { CallOutcome } from '../src/host/service.js';
import { startHostRuntime } from '../src/server/runtime.js';
import { closeOnSignal } from './common.js';

const port = Number(process.argv.at(-1));
if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new RangeError('usage: edge-host.ts PORT');
const rt = await startHostRuntime({
  listen: [{ host: '127.0.0.1', port }],
  store: 'memory',
  clock: 'system',
  seed: 'bench-edge',
});
const service = rt.service;
const real = service.handleCall.bind(service);
let cached: CallOutcome | null = null;
// No group: the answer is not staged, so the edge answers at once (as for a call with nothing to commit).
service.handleCall = (stub, syntax, meta, shaper) => {
  if (cached !== null) return cached;
  const o = real(stub, syntax, meta, shaper, undefined);
  cached = o.kind === 'response' ? { kind: 'response', stub: o.stub, event: null, error: null } : o;
  return cached;
};
closeOnSignal(rt);
