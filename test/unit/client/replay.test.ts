/**
 * Interop with the reference host: a fake host replays the server side of captured vlmcs ↔ vlmcsd
 * conversations; our client, configured like the captured vlmcs (CMID, workstation, time stamp, and
 * a Random that yields the captured IVs), must send the captured bytes exactly and accept the
 * captured answers with the values vlmcs printed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { activate, KmsClient } from '../../../src/client/client.js';
import { HResult, hresultText } from '../../../src/kms/hresult.js';
import { NCA_STATUS, PTYPE } from '../../../src/rpc/constants.js';
import { encodePdu } from '../../../src/rpc/encode.js';
import { makeFault } from '../../../src/rpc/pdu.js';
import { hex } from '../../../src/wire/utf16.js';
import { type Capture, captureNames, loadCapture } from '../../helpers/fixtures.js';
import { capturedRequests, clientOptionsFromCapture } from './capture-client.js';
import { closedPort, type FakeHost, replayHost, startHost } from './fake-host.js';

let host: FakeHost | null = null;
afterEach(async () => {
  await host?.close();
  host = null;
});

function c2sHex(cap: Capture, conn: number): string[] {
  return cap.pdus.filter((p) => p.dir === 'c2s' && p.conn === conn && p.hex).map((p) => p.hex!);
}

/** Captures our client can reproduce: one CMID for all requests, a protocol it speaks, a host that stays. */
function replayable(name: string): boolean {
  if (name === 'err-protocol-7' || name === 'v6-win10-server-disconnect') return false;
  const cap = loadCapture(name);
  const cmids = new Set(capturedRequests(cap).map((r) => r.decoded.body.cmid));
  return cmids.size === 1;
}

const NAMES = captureNames(/^(v[456]-|err-unknown-kmsid)/).filter(replayable);

describe('replaying captured vlmcsd conversations', () => {
  it('covers the captures the issue names', () => {
    for (const n of [
      'v4-win7-ndr32-only',
      'v5-win8',
      'v6-win10',
      'v6-win10-3req-one-conn',
      'err-unknown-kmsid-K1',
    ]) {
      expect(NAMES).toContain(n);
    }
    expect(NAMES.length).toBeGreaterThanOrEqual(15);
  });

  for (const name of NAMES) {
    it(`${name}: same bytes on the wire, same decoded answers as vlmcs`, async () => {
      const cap = loadCapture(name);
      host = await replayHost(cap);
      const opts = clientOptionsFromCapture(cap, host.port);
      const results = await activate(opts);
      const printed = cap.kms_decoded_by_vlmcs!.responses;
      const reqs = capturedRequests(cap);
      expect(results).toHaveLength(reqs.length);

      // Every byte our client sent equals what vlmcs sent, connection by connection.
      const conns = new Set(cap.pdus.map((p) => p.conn));
      expect(host.received).toHaveLength(conns.size);
      for (const c of conns) expect(host.received[c]!.map((b) => hex(b))).toEqual(c2sHex(cap, c));

      if (printed.length === 0) {
        // Error answers: the HRESULT the host put in the stub.
        const stubHr = cap.pdus.filter((p) => p.dir === 's2c' && p.rpc?.ptype === PTYPE.RESPONSE);
        results.forEach((r, i) => {
          const want = Number.parseInt(String((stubHr[i]!.rpc!['kms'] as { hresult: string }).hresult), 16);
          expect(r.error).toBeUndefined();
          expect(r.activated).toBe(false);
          expect(r.hresult).toBe(want);
          expect(r.hresultText).toBe(hresultText(want));
          expect(r.epid).toBeNull();
        });
        return;
      }
      results.forEach((r, i) => {
        const p = printed[i]!;
        expect(r.error).toBeUndefined();
        expect(r.epid).toBe(p['KMS host extended PID']);
        expect(r.count).toBe(Number(p['KMS host current active clients']));
        expect(r.renewalInterval).toBe(Number(p['Renewal interval policy']));
        expect(r.activationInterval).toBe(Number(p['Activation interval policy']));
        expect(r.hwid).toBe(p['KMS host Hardware ID'] ?? null);
        expect(r.cmid).toBe(p['Client machine ID']);
        expect(`${r.protocol}.0`).toBe(p['Protocol version']);
        const enough = r.count! >= r.requiredCount;
        expect(r.activated).toBe(enough);
        expect(r.hresult).toBe(enough ? HResult.S_OK : HResult.COUNT_INSUFFICIENT);
        // NDR and call_id as the capture shows them.
        expect(r.ndr).toBe(reqs[i]!.ndr);
      });
    });
  }

  it('v6-win10-3req-one-conn: bind, alter_context, then NDR32 first and NDR64 after, call_id 2, 3, 4', async () => {
    const cap = loadCapture('v6-win10-3req-one-conn');
    host = await replayHost(cap);
    const results = await activate(clientOptionsFromCapture(cap, host.port));
    expect(results.map((r) => [r.ndr, r.callId])).toEqual([
      ['ndr32', 2],
      ['ndr64', 3],
      ['ndr64', 4],
    ]);
    expect(host.received[0]!.map((b) => b[2])).toEqual([PTYPE.BIND, PTYPE.ALTER_CONTEXT, 0, 0, 0]);
  });

  it('v4-win7-2req-new-conn: a new connection per request, call_id continuing at 3', async () => {
    const cap = loadCapture('v4-win7-2req-new-conn');
    host = await replayHost(cap);
    const results = await activate(clientOptionsFromCapture(cap, host.port));
    expect(results.map((r) => r.callId)).toEqual([2, 3]);
    expect(host.received).toHaveLength(2);
  });

  it('err-unknown-kmsid-K1: the refusal is a result with 0xC004F042 explained, not a failure', async () => {
    const cap = loadCapture('err-unknown-kmsid-K1');
    host = await replayHost(cap);
    const [r] = await activate(clientOptionsFromCapture(cap, host.port));
    expect(r!.error).toBeUndefined();
    expect(r!.hresult).toBe(0xc004f042);
    expect(r!.hresultText).toMatch(/refused this product/);
    expect(r!.activated).toBe(false);
  });

  it('the same capture with a product name resolves to the captured ids (Windows 10 Enterprise, V6, N 25)', async () => {
    const cap = loadCapture('v6-win10');
    host = await replayHost(cap);
    const opts = clientOptionsFromCapture(cap, host.port);
    const { sku: _s, app: _a, kmsId: _k, protocol: _p, requiredCount: _n, ...rest } = opts;
    const results = await activate({ ...rest, product: 'Windows 10 Enterprise' });
    expect(results[0]!.error).toBeUndefined();
    expect(hex(host.received[0]![2]!)).toBe(c2sHex(cap, 0)[2]);
  });
});

describe('hosts that misbehave', () => {
  it('v6-win10-server-disconnect: the first request verifies, the second fails as a transport error', async () => {
    const cap = loadCapture('v6-win10-server-disconnect');
    host = await replayHost(cap);
    const results = await activate(clientOptionsFromCapture(cap, host.port));
    expect(results).toHaveLength(2);
    expect(results[0]!.error).toBeUndefined();
    expect(results[0]!.activated).toBe(true);
    expect(results[1]!.activated).toBe(false);
    expect(results[1]!.error?.kind).toBe('transport');
    expect(results[1]!.error?.code).toBe('CONNECTION_CLOSED');
    expect(results[1]!.hresult).toBe(HResult.NO_KMS);
  });

  it('a host that closes on the bind: transport failure CONNECTION_CLOSED, HRESULT 0xC004F074', async () => {
    host = await startHost(() => ({ send: [], close: true }));
    const [r] = await activate({
      host: '127.0.0.1',
      port: host.port,
      product: 'Windows 10 Enterprise',
      timeoutMs: 5000,
    });
    expect(r!.error).toMatchObject({ kind: 'transport', code: 'CONNECTION_CLOSED' });
    expect(r!.hresult).toBe(0xc004f074);
    expect(r!.activated).toBe(false);
  });

  it('a fault PDU is an RPC failure with the NCA status named', async () => {
    const cap = loadCapture('v6-win10');
    host = await replayHost(cap, (pdu, _conn, index) =>
      index === 2 ? encodePdu(makeFault(2, 0, NCA_STATUS.UNK_IF)) : pdu,
    );
    const [r] = await activate(clientOptionsFromCapture(cap, host.port));
    expect(r!.error).toMatchObject({
      kind: 'rpc',
      code: 'FAULT',
      ncaStatus: 0x1c010003,
      ncaName: 'nca_s_unk_if',
    });
    expect(r!.error!.message).toMatch(/nca_s_unk_if \(0x1C010003\)/);
  });

  it('a host that never answers the request: TIMEOUT after the per-operation timeout', async () => {
    const cap = loadCapture('v4-win7-ndr32-only');
    // Answer the bind like vlmcsd, then stay silent.
    const bindAck = cap.pdus.find((p) => p.dir === 's2c')!.hex!;
    host = await startHost((_p, _c, i) => ({ send: i === 0 ? [Buffer.from(bindAck, 'hex')] : [] }));
    const opts = clientOptionsFromCapture(cap, host.port);
    const [r] = await activate({ ...opts, timeoutMs: 150 });
    expect(r!.error).toMatchObject({ kind: 'transport', code: 'TIMEOUT' });
  });

  it('connection refused is a transport failure, and KmsClient.connect throws it', async () => {
    const port = await closedPort();
    const [r] = await activate({ host: '127.0.0.1', port, timeoutMs: 5000 });
    expect(r!.error).toMatchObject({ kind: 'transport', code: 'CONNECTION_REFUSED' });
    const c = new KmsClient({ host: '127.0.0.1', port, timeoutMs: 5000 });
    await expect(c.connect()).rejects.toMatchObject({ kind: 'transport', code: 'CONNECTION_REFUSED' });
  });
});
