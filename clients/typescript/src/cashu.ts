/**
 * Proof identity: NUT-00 hash_to_curve and a proof's Y.
 *
 * A proof's secret spends it; its Y only names it. This package derives Ys locally and never sends
 * a secret anywhere.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, concatBytes, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js';

const DOMAIN_SEPARATOR = utf8ToBytes('Secp256k1_HashToCurve_Cashu_');
const MAX_COUNTER = 2 ** 16;
const Y_PATTERN = /^0[23][0-9a-fA-F]{64}$/;

/** NUT-00 hash_to_curve of `message`, as the 33-byte compressed point. */
export function hashToCurveBytes(message: Uint8Array): Uint8Array {
  const msgHash = sha256(concatBytes(DOMAIN_SEPARATOR, message));
  const counterBytes = new Uint8Array(4);
  const view = new DataView(counterBytes.buffer);
  for (let counter = 0; counter < MAX_COUNTER; counter++) {
    view.setUint32(0, counter, true); // 4-byte little-endian
    const candidate = concatBytes(Uint8Array.of(0x02), sha256(concatBytes(msgHash, counterBytes)));
    try {
      return secp256k1.Point.fromBytes(candidate).toBytes(true);
    } catch {
      // not the x-coordinate of a curve point: try the next counter
    }
  }
  throw new Error('hash_to_curve found no point'); // unreachable with overwhelming probability
}

/**
 * NUT-00 hash_to_curve of `message` (bytes), as 66 lowercase hex characters (prefix 02).
 */
export function hashToCurve(message: Uint8Array): string {
  return bytesToHex(hashToCurveBytes(message));
}

/**
 * A proof's Y: hash_to_curve of the secret's UTF-8 bytes (the secret is never hex-decoded), as
 * 66 lowercase hex characters.
 */
export function yOf(secret: string): string {
  if (typeof secret !== 'string' || secret.length === 0) {
    throw new TypeError('a proof secret must be a non-empty string');
  }
  return hashToCurve(utf8ToBytes(secret));
}

/** True if `y` is 66 hex characters (any case), prefix 02/03, and a point on secp256k1. */
export function isValidY(y: unknown): y is string {
  if (typeof y !== 'string' || !Y_PATTERN.test(y)) return false;
  try {
    secp256k1.Point.fromBytes(hexToBytes(y.toLowerCase()));
    return true;
  } catch {
    return false;
  }
}

/** A short, log-friendly form of a Y. */
export function yPrefix(y: string): string {
  return y.slice(0, 12);
}
