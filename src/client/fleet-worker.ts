/**
 * The client side of an in-process fleet on a worker thread (InProcessFleetHost with `clientThread`):
 * it encodes each batch's requests ahead of the host and verifies the host's answers behind it, while
 * the main thread runs only `handleCall`. Both threads meet in one SharedArrayBuffer (`FleetChannel`)
 * and wait on it with Atomics, so a batch needs no message and no event-loop turn.
 *
 * The requests are the ones the single-threaded host would make, byte for byte: the same templates,
 * the same seeded IV stream in the same order (see InProcessFleetHost).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SeededRandom } from '../host/random.js';
import { ClientExchange, type RequestTemplate } from '../kms/exchange.js';
import { isProtocolError } from '../wire/errors.js';
import { fileTimeFromMs } from '../wire/filetime.js';
import { FleetChannel, type FleetWorkerData, LEAD, OUTCOME, RING, templateFor } from './fleet-channel.js';

const data = workerData as FleetWorkerData;
const ch = new FleetChannel(data.buffer);
const { machines, products } = data.plan;
const random = new SeededRandom(data.seed).fork('requests');
const templates: (RequestTemplate | undefined)[] = [];
// Request i uses exchanges[i % RING]; the lead over the host stays below RING, so an exchange is
// verified before it encodes again.
const exchanges = Array.from({ length: RING }, () => new ClientExchange());
const enc = new TextEncoder();

function encode(i: number): void {
  const id = ch.desc[4 * i]!;
  const now = ch.desc[4 * i + 1]!;
  const licenseStatus = ch.desc[4 * i + 2]!;
  const bindingExpiration = ch.desc[4 * i + 3]!;
  const machine = machines[id]!;
  const req = { machine, product: products[machine.kind], now, licenseStatus, bindingExpiration };
  const t = templateFor(templates, req);
  const x = exchanges[i % RING]!;
  x.encode(t, fileTimeFromMs(now), random, licenseStatus, bindingExpiration);
  ch.putRequest(i, x.requestStub('ndr32'));
}

function verify(i: number): void {
  const o = ch.outcome;
  const at = i * OUTCOME.SIZE;
  // A fault was answered by the main thread itself (there was no stub to verify).
  if (o[at] === OUTCOME.FAULT) return;
  try {
    const r = exchanges[i % RING]!.verifyStub(ch.response(i), 'ndr32');
    if (!r.answered) {
      o[at] = OUTCOME.REFUSED;
      o[at + 4] = r.hresult;
      return;
    }
    o[at] = OUTCOME.ANSWERED;
    o[at + 1] = r.currentCount;
    o[at + 2] = r.activationInterval;
    o[at + 3] = r.renewalInterval;
    if (!ch.hasText(FleetChannel.EPID_SLOT)) ch.putText(FleetChannel.EPID_SLOT, enc.encode(r.epid()));
  } catch (e) {
    if (!isProtocolError(e)) throw e;
    o[at] = OUTCOME.FAILED;
    ch.putText(i, enc.encode(`${e.code}: ${e.message}`));
  }
}

/** One batch: encode ahead of the host (at most LEAD requests), verify each answer as it comes. */
function runBatch(n: number): void {
  const ctrl = ch.ctrl;
  let encoded = 0;
  let verified = 0;
  while (verified < n) {
    const answered = Atomics.load(ctrl, FleetChannel.ANSWERED);
    // Request e uses exchanges[e % RING], last used by request e - RING: that one must be verified.
    const canEncode = encoded < n && encoded - verified < RING;
    // Keep the host fed first (LEAD ahead), then verify; encode further only with nothing to verify.
    if (canEncode && (encoded - answered < LEAD || verified >= answered)) {
      encode(encoded++);
      Atomics.store(ctrl, FleetChannel.ENCODED, encoded);
      Atomics.notify(ctrl, FleetChannel.ENCODED);
    } else if (verified < answered) {
      verify(verified++);
      if (verified === n) {
        Atomics.store(ctrl, FleetChannel.VERIFIED, verified);
        Atomics.notify(ctrl, FleetChannel.VERIFIED);
      }
    } else {
      Atomics.wait(ctrl, FleetChannel.ANSWERED, answered);
    }
  }
}

parentPort?.postMessage('ready');
// Batches until the host terminates this thread (InProcessFleetHost.close).
let seen = 0;
try {
  for (;;) {
    Atomics.wait(ch.ctrl, FleetChannel.BATCH, seen);
    const batch = Atomics.load(ch.ctrl, FleetChannel.BATCH);
    if (batch === seen) continue;
    seen = batch;
    runBatch(Atomics.load(ch.ctrl, FleetChannel.SIZE));
  }
} catch (e) {
  // The main thread is waiting on the channel: tell it, then let the error end this thread.
  ch.putText(FleetChannel.ERROR_SLOT, enc.encode(e instanceof Error ? (e.stack ?? e.message) : String(e)));
  Atomics.store(ch.ctrl, FleetChannel.FAILED, 1);
  for (const k of [FleetChannel.ENCODED, FleetChannel.VERIFIED]) Atomics.notify(ch.ctrl, k);
  throw e;
}
