import { cbcMacRegion, encryptBlock } from './aes.js';
import { V4_SCHEDULE } from './keys.js';

/**
 * V4 MAC (spec d.2): CBC-MAC with a zero IV over the 160-bit-key Rijndael (V4_SCHEDULE), with ISO/IEC
 * 9797-1 padding method 2 (always append 0x80, then zeros to a block boundary). No CMAC subkeys.
 *
 * Reads `message` in place (no padded copy); pass a subarray to MAC part of a buffer.
 */
export function v4Mac(message: Uint8Array): Uint8Array {
  const mac = new Uint8Array(16);
  const len = message.length;
  const full = len - (len % 16);
  cbcMacRegion(V4_SCHEDULE, mac, message, 0, full);
  // Last block: the 0..15 remaining bytes, 0x80, zeros (XOR with zero is a no-op).
  for (let j = 0; j < len - full; j++) mac[j]! ^= message[full + j]!;
  mac[len - full]! ^= 0x80;
  encryptBlock(V4_SCHEDULE, mac, 0, mac, 0);
  return mac;
}
