/**
 * Every captured vlmcs ↔ vlmcsd conversation (fixtures/vectors/vlmcsd/v*, err-*) replayed against a real
 * host over loopback: the client bytes are sent exactly as captured, connection by connection, and the
 * host must answer with the same PDU types, bind results, HRESULTs and PDU sizes. Each success answer
 * is verified completely as the captured client would (envelope, hash, HMAC, echoes), and the fields
 * vlmcs printed (ePID, HwId, intervals, and the count where vlmcsd tracked CMIDs) are compared.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { defaultCatalog } from '../../src/catalog/products.js';
import { parseHwid } from '../../src/host/identity.js';
import { decodeRequest } from '../../src/kms/envelope.js';
import { HResult } from '../../src/kms/hresult.js';
import type { NdrSyntax, RequestContext } from '../../src/kms/messages.js';
import { unwrapRequestStub, unwrapResponseStub } from '../../src/kms/stub.js';
import { PTYPE, ptypeName } from '../../src/rpc/constants.js';
import { decodePdu } from '../../src/rpc/decode.js';
import type { BindAckBody, Pdu, PresentationContext } from '../../src/rpc/pdu.js';
import { type HostRuntime, startHostRuntime } from '../../src/server/runtime.js';
import { type Capture, type CapturedPdu, captureNames, loadCapture, pduBytes } from '../helpers/fixtures.js';
import { acceptedContexts, RawSocket, readAnswer } from '../helpers/raw-client.js';

const VLMCSD_HWID = '3A1C049600B60076';

let rt: HostRuntime | null = null;
afterEach(async () => {
  await rt?.close();
  rt = null;
});

/** A host configured like the vlmcsd of the capture (its options), with vlmcsd's built-in ePIDs and HwId. */
async function hostFor(c: Capture): Promise<HostRuntime> {
  const o = c.vlmcsd_options;
  const epids = Object.fromEntries(defaultCatalog().epidPools.map((p) => [p.name, p.defaultEpid]));
  return startHostRuntime({
    listen: [{ host: '127.0.0.1', port: 0 }],
    store: 'memory',
    clock: 'manual',
    seed: c.name,
    // -N0: no NDR64; -B0: no BTFN; -K1/-K3: refuse unknown KMS ids (spec f.5 0xC004F042).
    profile: { ndr64: !o.includes('-N0'), btfn: !o.includes('-B0') },
    policy: o.includes('-K1') || o.includes('-K3') ? { refuseUnknown: true } : {},
    identity: { epids, hwid: parseHwid(VLMCSD_HWID) },
  });
}

interface Exchange {
  sent: CapturedPdu;
  answers: CapturedPdu[];
}

/** The conversation of one connection as (client PDU, the server PDUs that followed it) pairs. */
function exchanges(c: Capture, conn: number): Exchange[] {
  const out: Exchange[] = [];
  for (const p of c.pdus) {
    if ((p.conn ?? 0) !== conn || !p.hex) continue;
    if (p.dir === 'c2s') out.push({ sent: p, answers: [] });
    else out[out.length - 1]?.answers.push(p);
  }
  return out;
}

function resultsOf(p: Pdu): string[] {
  const ack = p as Pdu & BindAckBody;
  return ack.results.map(
    (r) => `${r.result}/${r.reason}/${r.transferSyntax.uuid}/${r.transferSyntax.version}`,
  );
}

const names = captureNames(/^(v[456]|err)-/);

describe('captured vlmcsd conversations replayed against the host', () => {
  it('finds the captures', () => {
    expect(names.length).toBeGreaterThanOrEqual(20);
  });

  for (const name of names) {
    it(name, async () => {
      const c = loadCapture(name);
      rt = await hostFor(c);
      const addr = rt.addresses[0]!;
      const tracking = c.vlmcsd_options.includes('-M1');
      const printed = c.kms_decoded_by_vlmcs?.responses ?? [];
      let responseIndex = 0;
      const conns = [...new Set(c.pdus.map((p) => p.conn ?? 0))].sort((a, b) => a - b);
      for (const conn of conns) {
        const s = await RawSocket.connect(addr);
        try {
          const offered = new Map<number, PresentationContext>();
          const ctx = new Map<number, NdrSyntax>();
          for (const { sent, answers } of exchanges(c, conn)) {
            const bytes = pduBytes(sent);
            const req = decodePdu(bytes);
            s.write(bytes);
            // vlmcsd -d closed after the first answer and left a later request unanswered; a host that
            // keeps the connection (spec a.1, Appendix A) answers it with a response.
            const expected = answers.length > 0 ? answers.map((a) => decodePdu(pduBytes(a))) : null;
            const got: Pdu[] = [];
            for (let i = 0; i < (expected?.length ?? 1); i++) got.push(await s.nextPdu());
            if (!expected) {
              expect(c.vlmcsd_options).toContain('-d');
              expect(got.map((g) => g.type)).toEqual([PTYPE.RESPONSE]);
              continue;
            }
            expect(got.map((g) => ptypeName(g.type))).toEqual(expected.map((e) => ptypeName(e.type)));
            for (let i = 0; i < expected.length; i++) {
              const want = expected[i]!;
              const have = got[i]! as Pdu & { bytes: Uint8Array };
              expect(have.callId).toBe(want.callId);
              if (want.type === PTYPE.BIND_ACK || want.type === PTYPE.ALTER_CONTEXT_RESP) {
                expect(resultsOf(have)).toEqual(resultsOf(want));
                if (req.type === PTYPE.BIND || req.type === PTYPE.ALTER_CONTEXT) {
                  for (const pc of req.contexts) offered.set(pc.contextId, pc);
                  if (req.type === PTYPE.BIND) ctx.clear();
                  for (const pc of req.contexts) ctx.delete(pc.contextId);
                  for (const [id, syn] of acceptedContexts(req.contexts, have as Pdu & BindAckBody))
                    ctx.set(id, syn);
                }
                continue;
              }
              expect(have.bytes.length).toBe(pduBytes(answers[i]!).length);
              if (want.type !== PTYPE.RESPONSE || req.type !== PTYPE.REQUEST || have.type !== PTYPE.RESPONSE)
                continue;
              const ndr = ctx.get(req.contextId);
              if (!ndr) throw new Error(`request on context ${req.contextId}, which the host did not accept`);
              const wantStub = unwrapResponseStub(want.stub, ndr);
              const haveStub = unwrapResponseStub(have.stub, ndr);
              expect(haveStub.hresult.toString(16)).toBe(wantStub.hresult.toString(16));
              if (wantStub.hresult !== HResult.S_OK) continue;
              // Verify the answer exactly as the captured client would (spec c.2–c.6).
              const decoded = decodeRequest(unwrapRequestStub(req.stub, ndr));
              const context: RequestContext = {
                version: decoded.version,
                minorVersion: decoded.body.minorVersion,
                cmid: decoded.body.cmid,
                clientTime: decoded.body.clientTime,
                iv: decoded.iv,
                q: decoded.q,
              };
              const answer = readAnswer(have as Pdu & { bytes: Uint8Array }, ndr, context, decoded.body);
              const p = printed[responseIndex++];
              expect(p, 'vlmcs printed this response').toBeDefined();
              expect(answer.body!.epid).toBe(p!['KMS host extended PID']);
              expect(answer.body!.renewalInterval).toBe(Number(p!['Renewal interval policy']));
              expect(answer.body!.activationInterval).toBe(Number(p!['Activation interval policy']));
              if (decoded.version === 6) {
                expect(Buffer.from(answer.hwid!).toString('hex').toUpperCase()).toBe(
                  p!['KMS host Hardware ID'],
                );
              }
              // vlmcsd counted CMIDs only with -M1 (otherwise it answers 2 × N_Policy, spec f.3 "not tracking").
              if (tracking)
                expect(answer.body!.currentCount).toBe(Number(p!['KMS host current active clients']));
              else expect(answer.body!.currentCount).toBeGreaterThanOrEqual(1);
            }
          }
        } finally {
          s.destroy();
        }
      }
      expect(responseIndex).toBe(printed.length);
    });
  }
});
