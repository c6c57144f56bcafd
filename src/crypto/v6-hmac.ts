import { sha256 } from '@noble/hashes/sha2.js';

/**
 * V6 HMAC (spec d.5): the HMAC-SHA256 key is derived from a time slot of the client's FILETIME, and
 * both the key and the MAC are the last 16 bytes of a SHA-256 / HMAC-SHA256 output.
 *
 * `sha256` is re-exported for the KMS layer (the V5/V6 hash of Rand2, spec c.5).
 */
export { sha256 };

/** Slot length in FILETIME ticks (≈ 4.116 h); also the step a verifier adds to the slot value. */
export const V6_TIME_C1 = 0x00000022816889bdn;
export const V6_TIME_C2 = 0x000000208cbab5edn;
export const V6_TIME_C3 = 0x3156cd5ac628477an;

const U64_MAX = 0xffff_ffff_ffff_ffffn;

/**
 * `((t / C1) * C2 + C3 + k * C1) mod 2^64`. k = 0 is what a server uses; a verifier also tries k = -1
 * and +1, which (as in spec d.5) adds k × C1 to the slot *value*.
 */
export function v6TimeSlot(clientTime: bigint, k = 0): bigint {
  if (clientTime < 0n || clientTime > U64_MAX) throw new RangeError(`client time ${clientTime} is not a u64`);
  if (!Number.isSafeInteger(k)) throw new RangeError(`slot offset ${k} is not an integer`);
  return BigInt.asUintN(64, (clientTime / V6_TIME_C1) * V6_TIME_C2 + V6_TIME_C3 + BigInt(k) * V6_TIME_C1);
}

/** The 16-byte HMAC key for a slot value: the last 16 bytes of SHA-256(slot as u64 little-endian). */
export function v6HmacKeyFromSlot(slot: bigint): Uint8Array {
  return slotState(slot).key.slice();
}

/** The 16-byte HMAC key for a client time (spec d.5). */
export function v6HmacKey(clientTime: bigint, k = 0): Uint8Array {
  return v6HmacKeyFromSlot(v6TimeSlot(clientTime, k));
}

/** The V6 response HMAC: the last 16 bytes of HMAC-SHA256(v6HmacKey(clientTime, k), message). */
export function v6Hmac(clientTime: bigint, message: Uint8Array, k = 0): Uint8Array {
  const out = new Uint8Array(16);
  v6HmacInto(clientTime, message, out, 0, k);
  return out;
}

// HMAC-SHA256 (RFC 2104) over @noble/hashes' public hash API only (`sha256.create`, `update`, `clone`,
// `digestInto`): for the current slot's key, the inner and outer states with their key pads already
// absorbed are kept, and each MAC clones them (a plain object copy) instead of hashing the two pad blocks
// again. noble's own `hmac.create(...).clone()` costs about 1.4 µs more per MAC here (its clone builds the
// object with Object.create), and `_cloneInto` into a reused instance is not public API. The digests go
// to reused buffers. Equivalence with node:crypto: test/unit/crypto/v6-hmac.test.ts.
// (node:crypto is 1.2–1.5 µs faster per response here, docs/dependencies.md; @noble/hashes stays, as
// the design names it.)
const DIGEST = new Uint8Array(32);
const INNER = new Uint8Array(32);

/** Writes v6Hmac(clientTime, message, k) (16 bytes) to `out` at `outOff`. */
export function v6HmacInto(
  clientTime: bigint,
  message: Uint8Array,
  out: Uint8Array,
  outOff: number,
  k = 0,
): void {
  const s = slotState(v6TimeSlot(clientTime, k));
  const inner = s.inner.clone();
  inner.update(message);
  inner.digestInto(INNER);
  const outer = s.outer.clone();
  outer.update(INNER);
  outer.digestInto(DIGEST);
  for (let i = 0; i < 16; i++) out[outOff + i] = DIGEST[16 + i]!;
}

/** Writes SHA-256(data) (32 bytes) to `out` at `outOff`. */
export function sha256Into(data: Uint8Array, out: Uint8Array, outOff: number): void {
  const h = sha256.create();
  h.update(data);
  h.digestInto(DIGEST);
  out.set(DIGEST, outOff);
}

// A slot lasts ≈ 4 h, so consecutive requests nearly always share it: keep the key and the keyed inner
// and outer states for the last slot seen. Pure memoisation: outputs do not depend on call history.
type Sha256State = ReturnType<typeof sha256.create>;
interface SlotState {
  slot: bigint;
  key: Uint8Array;
  inner: Sha256State;
  outer: Sha256State;
}
let cached: SlotState | undefined;

function slotState(slot: bigint): SlotState {
  const s = BigInt.asUintN(64, slot);
  if (cached === undefined || cached.slot !== s) {
    const le = new Uint8Array(8);
    new DataView(le.buffer).setBigUint64(0, s, true);
    const key = sha256(le).slice(16);
    // RFC 2104 with a 16-byte key (shorter than SHA-256's 64-byte block): key ‖ zeros, XOR 0x36 / 0x5c.
    const ipad = new Uint8Array(64).fill(0x36);
    const opad = new Uint8Array(64).fill(0x5c);
    for (let i = 0; i < 16; i++) {
      ipad[i]! ^= key[i]!;
      opad[i]! ^= key[i]!;
    }
    cached = { slot: s, key, inner: sha256.create().update(ipad), outer: sha256.create().update(opad) };
  }
  return cached;
}
