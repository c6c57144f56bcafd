/**
 * A kmslab host for `bench/load.ts --host child`: listens on 127.0.0.1:0, prints `{"port":N}` on
 * stdout, and runs until SIGTERM. Arguments: `--store memory|PATH`.
 */
import { startHostRuntime } from '../src/server/runtime.js';
import { closeOnSignal } from './common.js';

const i = process.argv.indexOf('--store');
const store = i > 0 ? process.argv[i + 1]! : 'memory';
const rt = await startHostRuntime({
  listen: [{ host: '127.0.0.1', port: 0 }],
  store,
  clock: 'system',
  seed: 'bench-load',
});
process.stdout.write(`${JSON.stringify({ port: rt.addresses[0]!.port, pid: process.pid })}\n`);
closeOnSignal(rt);
