/**
 * Where the host's per-request JS heap allocation goes (diagnosis for the speed and RSS work):
 *   npx tsx bench/alloc.ts [--calls 50000] [--top 30]
 * Runs V6 `handleCall` in commit groups (as the TCP server does) on an in-process memory-store host,
 * 256 distinct CMIDs cycling through the 50-entry pool (so evictions run too), with V8's sampling heap
 * profiler counting objects that were already collected as well, and prints bytes per call by function.
 */
import { defaultCatalog } from '../src/catalog/products.js';
import { ManualClock } from '../src/host/clock.js';
import { randomGuid, SeededRandom } from '../src/host/random.js';
import { KmsService } from '../src/host/service.js';
import { encodeRequest } from '../src/kms/envelope.js';
import { wrapRequestStub } from '../src/kms/stub.js';
import { MemoryStore } from '../src/store/memory.js';
import { fileTimeFromMs } from '../src/wire/filetime.js';
import { benchRequestBody, sampleAllocations } from './common.js';

const catalog = defaultCatalog();
const sku = catalog.findSku('Windows 10/11 Enterprise');
const clock = new ManualClock();
const random = new SeededRandom('alloc');
const service = new KmsService({ clock, random: random.fork('host'), store: new MemoryStore(), catalog });
const rc = random.fork('client');
const stubs: Uint8Array[] = [];
for (let i = 0; i < 256; i++) {
  const { message } = encodeRequest(
    benchRequestBody(
      sku,
      6,
      randomGuid(rc),
      fileTimeFromMs(clock.now()),
      `DESKTOP-${i.toString(36).toUpperCase().padStart(7, '0')}`,
    ),
    { random: (n) => rc.bytes(n) },
  );
  stubs.push(wrapRequestStub(message, 'ndr32'));
}
const conn = { peer: 'x', connectionId: 1 };
const run = (n: number) => {
  for (let i = 0; i < n; i++) {
    const g = service.openGroup();
    service.handleCall(stubs[i & 255]!, 'ndr32', conn, undefined, g);
    service.commitGroup(g);
  }
};
const N = Number(process.argv[process.argv.indexOf('--calls') + 1] ?? 0) || 50_000;
const TOP = Number(process.argv[process.argv.indexOf('--top') + 1] ?? 0) || 30;
run(20000);
const { total, byFunction: agg } = await sampleAllocations(() => run(N), 256);
console.log(`${Math.round(total / N)} bytes of JS heap allocated per V6 handleCall (sampled, ${N} calls)`);
for (const [k, v] of [...agg].sort((a, b) => b[1] - a[1]).slice(0, TOP))
  console.log(String(Math.round(v / N)).padStart(6), 'B', k);
