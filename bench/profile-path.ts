/**
 * `npx tsx bench/profile-path.ts [--ms N] [--store memory|PATH] [--only NAME-PREFIX]`
 *
 * The host's per-request CPU path without sockets: the captured vlmcsd V6 conversation
 * (fixtures/vectors/vlmcsd/v6-win10.json: bind, alter_context, request) fed to an Association and the
 * KmsService exactly as src/server/tcp.ts does, timed per keep-alive request and per whole
 * conversation (new Association each time). Also times the pieces (decode, crypto, store commit) so a
 * change can be attributed. Prints µs per operation.
 *
 * `measurePath` is also what `npm run bench -- compare` runs between its rounds: the work kmslab does
 * per request beyond Node's socket floor, measured on the same machine in the same run.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SystemClock as SystemClockT } from '../src/host/clock.js';
import type { SeededRandom as SeededRandomT } from '../src/host/random.js';
import type { KmsService as KmsServiceT } from '../src/host/service.js';
import type {
  decodeRequest as decodeRequestT,
  encodeResponse as encodeResponseT,
} from '../src/kms/envelope.js';
import type { unwrapRequestStub as unwrapRequestStubT } from '../src/kms/stub.js';
import type {
  AssociationAction,
  Association as AssociationT,
  RpcCall as RpcCallT,
} from '../src/rpc/association.js';
import type { NegotiationCache as NegotiationCacheT } from '../src/rpc/negotiate.js';
import type { openStore as openStoreT } from '../src/store/store.js';
import { isMain } from './common.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export interface PathCosts {
  /** µs per operation, by the names printed. */
  'keep-alive request (assoc+service)'?: number;
  'conversation (new assoc, 3 PDUs)'?: number;
  'service.handleCall only'?: number;
  'decodeRequest (V6 decrypt)'?: number;
  'encodeResponse (V6 encrypt+HMAC)'?: number;
  'bind PDU only (new assoc)'?: number;
  /**
   * One keep-alive request on the default SQLite store at its best: the association, the service and
   * an eighth of a group commit of 8 (kmsload's c=8 at most fills a group of 8), on a fresh file.
   */
  'keep-alive request, SQLite, groups of 8'?: number;
}

/**
 * Times each piece for about `ms` milliseconds (after a warm-up) on the compiled modules (`npm run
 * build` first: what `kmslab serve` runs, without tsx's transforms). `only`: a name prefix.
 */
export async function measurePath(
  opts: { ms?: number; store?: string; only?: string; print?: boolean; sqliteDir?: string } = {},
): Promise<PathCosts> {
  const ms = opts.ms ?? 1500;
  const storeSpec = opts.store ?? 'memory';
  const only = opts.only ?? '';
  const dist = (m: string) => import(path.join(HERE, `../dist/${m}.js`));
  const { SystemClock } = (await dist('host/clock')) as { SystemClock: typeof SystemClockT };
  const { SeededRandom } = (await dist('host/random')) as { SeededRandom: typeof SeededRandomT };
  const { KmsService } = (await dist('host/service')) as { KmsService: typeof KmsServiceT };
  const { decodeRequest, encodeResponse } = (await dist('kms/envelope')) as {
    decodeRequest: typeof decodeRequestT;
    encodeResponse: typeof encodeResponseT;
  };
  const { unwrapRequestStub } = (await dist('kms/stub')) as { unwrapRequestStub: typeof unwrapRequestStubT };
  const { Association } = (await dist('rpc/association')) as { Association: typeof AssociationT };
  const { NegotiationCache } = (await dist('rpc/negotiate')) as {
    NegotiationCache: typeof NegotiationCacheT;
  };
  const { openStore } = (await dist('store/store')) as { openStore: typeof openStoreT };

  const vec = JSON.parse(
    fs.readFileSync(path.join(HERE, '../fixtures/vectors/vlmcsd/v6-win10.json'), 'utf8'),
  ) as { pdus: { dir: string; hex: string }[] };
  const c2s = vec.pdus.filter((p) => p.dir === 'c2s').map((p) => Buffer.from(p.hex, 'hex'));
  if (storeSpec !== 'memory')
    for (const f of [storeSpec, `${storeSpec}-wal`, `${storeSpec}-shm`]) fs.rmSync(f, { force: true });
  const store = openStore(storeSpec);
  const random = new SeededRandom('bench');
  const service = new KmsService({ clock: new SystemClock(), random: random.fork('host'), store });
  const costs: Record<string, number> = {};

  // One cache for every association, as src/server/tcp.ts has one per host.
  const negotiations = new NegotiationCache();
  const newAssoc = () =>
    new Association({
      negotiations,
      profile: { ndr64: true, btfn: true },
      secondaryAddress: '1688',
      maxPduSize: 5840,
      maxCallSize: 65536,
      newAssocGroupId: () => (random.uint32() | 1) >>> 0,
    });

  let sink = 0;
  /** What tcp.ts does with the actions, minus the socket. */
  const run = (assoc: AssociationT, actions: AssociationAction[]): void => {
    for (const a of actions) {
      if (a.type === 'send') sink += a.bytes.length;
      else if (a.type === 'call') {
        const o = service.handleCall(a.call.stub, a.call.syntax, {
          peer: '127.0.0.1:50000',
          connectionId: 1,
        });
        const out = o.kind === 'fault' ? assoc.fault(a.call, o.status) : assoc.respond(a.call, o.stub);
        sink += out.length;
      }
    }
  };

  /** `perCall`: operations per call of `fn` (the figure is µs per operation). */
  const time = (name: keyof PathCosts, fn: () => void, perCall = 1): void => {
    if (only && !name.startsWith(only)) return;
    for (let i = 0; i < 2000; i++) fn(); // warm up
    let n = 0;
    const t0 = performance.now();
    let t = t0;
    while (t - t0 < ms) {
      for (let i = 0; i < 200; i++) fn();
      n += 200;
      t = performance.now();
    }
    const us = ((t - t0) * 1000) / (n * perCall);
    costs[name] = Math.round(us * 100) / 100;
    if (opts.print)
      console.log(`${name.padEnd(40)} ${us.toFixed(2).padStart(8)} µs/op  (${n * perCall} ops)`);
  };

  try {
    const keep = newAssoc();
    run(keep, keep.receive(c2s[0]!));
    run(keep, keep.receive(c2s[1]!));
    const request = c2s[2]!;
    const stub = (() => {
      const a = newAssoc();
      a.receive(c2s[0]!);
      a.receive(c2s[1]!);
      const acts = a.receive(request);
      const call = acts.find((x) => x.type === 'call');
      if (call?.type !== 'call') throw new Error('no call');
      return call.call;
    })();

    if (opts.print) console.log(`store ${storeSpec}, node ${process.version}`);
    time('keep-alive request (assoc+service)', () => run(keep, keep.receive(request)));
    time('conversation (new assoc, 3 PDUs)', () => {
      const a = newAssoc();
      for (const p of c2s) run(a, a.receive(p));
    });
    time('service.handleCall only', () => {
      sink += (service.handleCall(stub.stub, stub.syntax, { peer: 'p', connectionId: 1 }) as { kind: string })
        .kind.length;
    });
    const message = unwrapRequestStub(stub.stub, stub.syntax);
    time('decodeRequest (V6 decrypt)', () => {
      sink += decodeRequest(message).version;
    });
    const decoded = decodeRequest(message);
    const body = {
      minorVersion: 0,
      majorVersion: 6,
      epid: '06401-00206-271-395032-03-1033-17763.0000-2452019',
      cmid: decoded.body.cmid,
      clientTime: decoded.body.clientTime,
      currentCount: 25,
      activationInterval: 120,
      renewalInterval: 10080,
    };
    const hwid = new Uint8Array(8);
    time('encodeResponse (V6 encrypt+HMAC)', () => {
      sink += encodeResponse(decoded, body, { random: (n) => random.bytes(n), hwid }).length;
    });
    time('bind PDU only (new assoc)', () => {
      const a = newAssoc();
      run(a, a.receive(c2s[0]!));
    });
    if (opts.sqliteDir !== undefined) {
      const file = path.join(opts.sqliteDir, 'profile-path.sqlite');
      const sqlite = openStore(file);
      const disk = new KmsService({ clock: new SystemClock(), random: random.fork('disk'), store: sqlite });
      const peer = { peer: '127.0.0.1:50000', connectionId: 1 };
      // As src/server/calls.ts: every call of the turn staged into one group, one commit, then answered.
      const staged: { call: RpcCallT; out: ReturnType<KmsServiceT['handleCall']> }[] = [];
      try {
        time(
          'keep-alive request, SQLite, groups of 8',
          () => {
            const g = disk.openGroup();
            for (let i = 0; i < 8; i++) {
              for (const a of keep.receive(request)) {
                if (a.type === 'call') {
                  staged.push({
                    call: a.call,
                    out: disk.handleCall(a.call.stub, a.call.syntax, peer, undefined, g),
                  });
                }
              }
            }
            disk.commitGroup(g);
            for (const s of staged) {
              const o = s.out;
              sink += (o.kind === 'fault' ? keep.fault(s.call, o.status) : keep.respond(s.call, o.stub))
                .length;
            }
            staged.length = 0;
          },
          8,
        );
      } finally {
        sqlite.close();
        for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
      }
    }
    if (opts.print) console.log(`(sink ${sink % 10})`);
  } finally {
    store.close();
  }
  return costs;
}

if (isMain(import.meta.url)) {
  const arg = (name: string, dflt: string): string => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : dflt;
  };
  const sqliteDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmslab-profile-path-'));
  try {
    await measurePath({
      ms: Number(arg('ms', '1500')),
      store: arg('store', 'memory'),
      only: arg('only', ''),
      print: true,
      sqliteDir,
    });
  } finally {
    fs.rmSync(sqliteDir, { recursive: true, force: true });
  }
}
