/**
 * Codec bench: what one KMS exchange costs on the host, per protocol version.
 *
 * - `host`: KmsService.handleCall on a pre-encoded NDR32 request stub: unwrap, decrypt and decode the
 *   request, pool update, store commit (memory store, with its history, as `serve --store memory`),
 *   response encryption / HMAC / MAC, NDR wrap. 256 distinct CMIDs cycle through the 50-entry pool.
 * - `envelope`: decodeRequest + encodeResponse of src/kms only (no pool, no store).
 * - `client`: the client side with src/kms (encodeRequest + verifyResponse).
 * - `exchange`: a whole in-process exchange as a fleet machine makes it (client encode, handleCall,
 *   client verify), through the fleet's in-process host: src/kms's ClientExchange, each machine's
 *   request prepared once.
 *
 * The aim: under 20 µs per V6 exchange on the host.
 */
import crypto from 'node:crypto';
import { defaultCatalog } from '../src/catalog/products.js';
import { type ExchangeRequest, InProcessFleetHost, planFleet } from '../src/client/fleet.js';
import { sha256Into, v6HmacInto, v6HmacKey } from '../src/crypto/v6-hmac.js';
import { ManualClock } from '../src/host/clock.js';
import { randomGuid, SeededRandom } from '../src/host/random.js';
import { KmsService } from '../src/host/service.js';
import { decodeRequest, encodeRequest, encodeResponse, verifyResponse } from '../src/kms/envelope.js';
import type { KmsRequestBody, KmsResponseBody, KmsVersion, RequestContext } from '../src/kms/messages.js';
import { unwrapResponseStub, wrapRequestStub } from '../src/kms/stub.js';
import { MemoryStore } from '../src/store/memory.js';
import { fileTimeFromMs } from '../src/wire/filetime.js';
import {
  type BenchRow,
  type BenchSection,
  benchRequestBody,
  isMain,
  num,
  parseArgs,
  runStandalone,
  timeLoop,
} from './common.js';

const AIM_US = 20;
const DISTINCT = 256;

export interface CodecBenchOptions {
  /** Measured milliseconds per line (default 400). */
  ms?: number;
  versions?: KmsVersion[];
}

export async function runCodecBench(opts: CodecBenchOptions = {}): Promise<BenchSection> {
  const ms = opts.ms ?? 400;
  const versions = opts.versions ?? [6, 5, 4];
  const catalog = defaultCatalog();
  const sku = catalog.findSku('Windows 10/11 Enterprise');
  const rows: BenchRow[] = [];
  const data: Record<string, unknown> = { msPerMeasure: ms, distinctRequests: DISTINCT };
  for (const v of versions) {
    const clock = new ManualClock();
    const random = new SeededRandom(`codec-${v}`);
    const service = new KmsService({ clock, random: random.fork('host'), store: new MemoryStore(), catalog });
    const bodies: KmsRequestBody[] = [];
    const messages: Uint8Array[] = [];
    const contexts: RequestContext[] = [];
    const stubs: Uint8Array[] = [];
    const rc = random.fork('client');
    for (let i = 0; i < DISTINCT; i++) {
      const body = benchRequestBody(
        sku,
        v,
        randomGuid(rc),
        fileTimeFromMs(clock.now()),
        `DESKTOP-${i.toString(36).toUpperCase().padStart(7, '0')}`,
      );
      const { message, context } = encodeRequest(body, { random: (n) => rc.bytes(n) });
      bodies.push(body);
      messages.push(message);
      contexts.push(context);
      stubs.push(wrapRequestStub(message, 'ndr32'));
    }
    const conn = { peer: 'bench', connectionId: 1 };
    // Host: the whole call.
    const host = timeLoop((i) => {
      service.handleCall(stubs[i % DISTINCT]!, 'ndr32', conn);
    }, ms);
    // Envelope only.
    const decoded = messages.map((m) => decodeRequest(m));
    const epid = service.state.identity.epids['Windows'] ?? Object.values(service.state.identity.epids)[0]!;
    const respBodies: KmsResponseBody[] = bodies.map((b) => ({
      minorVersion: 0,
      majorVersion: v,
      epid,
      cmid: b.cmid,
      clientTime: b.clientTime,
      currentCount: 50,
      activationInterval: 120,
      renewalInterval: 10_080,
    }));
    const hwid = service.state.identity.hwid;
    const rr = random.fork('resp');
    const respRandom = (n: number) => rr.bytes(n);
    const envelope = timeLoop((i) => {
      const k = i % DISTINCT;
      const d = decodeRequest(messages[k]!);
      encodeResponse(d, respBodies[k]!, { random: respRandom, hwid });
    }, ms);
    // Client side through the value wrappers (encodeRequest / verifyResponse over ClientExchange): encode,
    // and verify answers prepared in advance.
    const responses = decoded.map((d, k) => encodeResponse(d, respBodies[k]!, { random: respRandom, hwid }));
    const clientEncode = timeLoop((i) => {
      encodeRequest(bodies[i % DISTINCT]!, { random: (n) => rc.bytes(n) });
    }, ms / 2);
    const clientVerify = timeLoop((i) => {
      const k = i % DISTINCT;
      verifyResponse(responses[k]!, contexts[k]!);
    }, ms / 2);
    // Whole exchanges, fleet style (the host's own clock and a memory store without history); the
    // client side is src/kms's ClientExchange, the one client implementation.
    const plan = planFleet({ windows: DISTINCT, days: 1, seed: `codec-${v}` });
    const fh = new InProcessFleetHost({ seed: `codec-${v}`, start: plan.start });
    const product = { ...plan.products.windows, protocol: v };
    let now = plan.start;
    const exchange = timeLoop((i) => {
      now += 1000;
      const req: ExchangeRequest = {
        machine: plan.machines[i % DISTINCT]!,
        product,
        now,
        licenseStatus: 2,
        bindingExpiration: 43_200,
      };
      const o = fh.exchange(req);
      if (o.error) throw new Error(o.error);
    }, ms);
    // Sanity: the answers are real.
    const check = service.handleCall(stubs[0]!, 'ndr32', conn);
    if (check.kind !== 'response') throw new Error('host answered a fault');
    const msg = unwrapResponseStub(check.stub, 'ndr32').message;
    if (!msg) throw new Error('host answered an error stub');
    verifyResponse(msg, contexts[0]!);

    const aim = (us: number) =>
      v === 6 ? (us < AIM_US ? `aim < ${AIM_US} µs: met` : `aim < ${AIM_US} µs: NOT met`) : '';
    rows.push(
      {
        metric: `V${v} host handleCall`,
        value: host.us,
        unit: 'µs/exchange',
        note: `${host.perSecond}/s, cpu ${host.cpuUs} µs; ${aim(host.cpuUs)}`,
      },
      {
        metric: `V${v} envelope decode+encode`,
        value: envelope.us,
        unit: 'µs/exchange',
        note: `${envelope.perSecond}/s, cpu ${envelope.cpuUs} µs; ${aim(envelope.cpuUs)}`,
      },
      {
        metric: `V${v} client encodeRequest`,
        value: clientEncode.us,
        unit: 'µs',
        note: `cpu ${clientEncode.cpuUs} µs`,
      },
      {
        metric: `V${v} client verifyResponse`,
        value: clientVerify.us,
        unit: 'µs',
        note: `cpu ${clientVerify.cpuUs} µs`,
      },
      {
        metric: `V${v} fleet exchange (ClientExchange)`,
        value: exchange.us,
        unit: 'µs',
        note: `client+host, cpu ${exchange.cpuUs} µs`,
      },
    );
    data[`v${v}`] = {
      host,
      envelope,
      clientEncode,
      clientVerify,
      exchange,
    };
  }
  // A V6 response's hashing (HMAC-SHA256 of its ~200 bytes, SHA-256 of Rand2) through @noble/hashes as
  // the host does it, beside node:crypto as a reference only (docs/dependencies.md says why noble stays).
  // Alternating, the lower of two timings each.
  const message = new Uint8Array(200).map((_, i) => i);
  const rand2 = new Uint8Array(16).fill(7);
  const out = new Uint8Array(48);
  const clientTime = fileTimeFromMs(Date.UTC(2026, 0, 1));
  const key = v6HmacKey(clientTime);
  const noble = () =>
    timeLoop(() => {
      v6HmacInto(clientTime, message, out, 0);
      sha256Into(rand2, out, 16);
    }, ms / 2);
  const node = () =>
    timeLoop(() => {
      crypto.createHmac('sha256', key).update(message).digest();
      crypto.createHash('sha256').update(rand2).digest();
    }, ms / 2);
  const [n1, r1, n2, r2] = [noble(), node(), noble(), node()];
  const nobleCpu = Math.min(n1.cpuUs, n2.cpuUs);
  const nodeCpu = Math.min(r1.cpuUs, r2.cpuUs);
  rows.push(
    {
      metric: 'V6 response hashes, @noble/hashes',
      value: nobleCpu,
      unit: 'µs cpu',
      note: 'HMAC-SHA256 of 200 B + SHA-256 of 16 B, as the host does',
    },
    {
      metric: 'V6 response hashes, node:crypto (reference)',
      value: nodeCpu,
      unit: 'µs cpu',
      note: `createHmac + createHash; noble costs ${(nobleCpu - nodeCpu).toFixed(2)} µs more`,
    },
  );
  data['responseHashes'] = { nobleCpuUs: nobleCpu, nodeCryptoCpuUs: nodeCpu };
  return { name: 'codec', rows, data };
}

if (isMain(import.meta.url)) {
  const { flags } = parseArgs(process.argv.slice(2));
  await runStandalone('codec', () => runCodecBench({ ms: num(flags['ms'], 400) }));
}
