import { fromHex } from '../wire/utf16.js';
import { expandKey, type KeySchedule, type KeyTweak } from './aes.js';

/**
 * The fixed KMS keys (spec d.0) and their key schedules, expanded once at module load.
 *
 * The arrays are shared module state: treat them as read-only.
 */

/** V4 MAC key: a 160-bit Rijndael key (Nk = 5, 11 rounds; spec d.1). */
export const V4_KEY: Uint8Array = fromHex('053d8307f9e5f088eb5ea6686cf037c7e4efd2d6');

/** V5 key: standard AES-128 (spec d.3). */
export const V5_KEY: Uint8Array = fromHex('cd7e796f2ab25dcb55ffc8ef8364c470');

/** V6 key: AES-128 with the expanded key modified by V6_TWEAK (spec d.4). */
export const V6_KEY: Uint8Array = fromHex('a94a4195e201432d9bcb460405d84a21');

/** The V6 change to AES-128: three expanded-key bytes (first bytes of round keys 4, 6, 8) XORed after expansion. */
export const V6_TWEAK: readonly KeyTweak[] = Object.freeze([
  Object.freeze({ byteOffset: 64, xor: 0x73 }),
  Object.freeze({ byteOffset: 96, xor: 0x09 }),
  Object.freeze({ byteOffset: 128, xor: 0xe4 }),
]);

export const V4_SCHEDULE: KeySchedule = expandKey(V4_KEY, 11);
export const V5_SCHEDULE: KeySchedule = expandKey(V5_KEY);
export const V6_SCHEDULE: KeySchedule = expandKey(V6_KEY, 10, V6_TWEAK);
