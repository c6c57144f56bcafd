import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeHeader, decodePdu } from '../../../src/rpc/decode.js';
import { encodePdu, encodingLength } from '../../../src/rpc/encode.js';
import { toHex } from '../../unit/rpc/captures.js';
import { pduArbs } from './arbitraries.js';

describe('encode ∘ decode round trip', () => {
  it.each(Object.entries(pduArbs))('%s: decodePdu(encodePdu(x)) equals x, lengths agree', (_, arb) => {
    fc.assert(
      fc.property(arb, (pdu) => {
        const bytes = encodePdu(pdu);
        expect(bytes.length).toBe(encodingLength(pdu));
        const h = decodeHeader(bytes);
        expect(h).toMatchObject({
          rpcVersion: 5,
          type: pdu.type,
          fragLength: bytes.length,
          authLength: pdu.authVerifier ? pdu.authVerifier.length - 8 : 0,
          callId: pdu.callId,
        });
        const back = decodePdu(bytes);
        expect(back).toEqual(pdu);
        expect(toHex(encodePdu(back))).toBe(toHex(bytes));
      }),
      { numRuns: 300 },
    );
  });
});
