/**
 * The damage of the `tamper` fault (src/harness/faults.ts): one bit of an encoded response stub,
 * after the host's encoder (which stays a correct encoder, with no fault in it) has written it.
 */
import { cbcDecryptInto, cbcEncryptInto } from '../crypto/cbc.js';
import { V5_SCHEDULE, V6_SCHEDULE } from '../crypto/keys.js';
import type { KmsVersion, NdrSyntax } from '../kms/messages.js';
import { u32le } from '../wire/bytes.js';

const ZERO_IV = new Uint8Array(16);

/**
 * Damages the KMS message of an encoded response stub (spec b.2) by one bit, as the host's encoder
 * once did: byte-identical to what a host with a faulty MAC or cipher would send.
 * - 'mac': V4 the first MAC byte (c.3); V5 the last byte of the Hash (c.5); V6 the first byte of the
 *   HMAC (c.6). V5/V6 damage the plaintext: the message is decrypted in the zero-IV view (c.4),
 *   flipped and encrypted again, which rebuilds the ciphertext chain the encoder would have written.
 * - 'ciphertext': the ciphertext byte 20 from the message's end (V4, which has none: the MAC).
 */
export function tamperStub(
  stub: Uint8Array,
  what: 'mac' | 'ciphertext',
  protocol: KmsVersion,
  ndr: NdrSyntax,
): Uint8Array {
  const m = ndr === 'ndr32' ? 12 : 24;
  const len = u32le(stub, 0);
  if (len < 36 || m + len > stub.length) return stub;
  if (protocol === 4) {
    stub[m + len - 16]! ^= 0x01;
    return stub;
  }
  if (what === 'ciphertext') {
    stub[m + len - 20]! ^= 0x01;
    return stub;
  }
  const ks = protocol === 5 ? V5_SCHEDULE : V6_SCHEDULE;
  const n = len - 4;
  if (n % 16 !== 0) return stub;
  const plain = new Uint8Array(n);
  cbcDecryptInto(ks, ZERO_IV, stub, m + 4, n, plain, 0);
  // PIDSize, at offset 4 of the base response (c.2), which starts after the first block.
  const pidSize = u32le(plain, 20);
  const at = protocol === 5 ? 107 + pidSize : 132 + pidSize;
  if (at >= n) return stub;
  plain[at]! ^= 0x01;
  cbcEncryptInto(ks, ZERO_IV, plain, 0, n, stub, m + 4);
  return stub;
}
