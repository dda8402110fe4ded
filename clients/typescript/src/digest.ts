import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';

/**
 * The `proofs_digest` of a melt request, as the worker echoes it in its answer: lowercase hex
 * SHA-256 of the UTF-8 bytes of the request's Ys (lowercase hex), sorted ascending, joined with
 * "\n" (no trailing newline). An answer is only accepted for the proofs it was asked about.
 */
export function proofsDigest(ys: Iterable<string>): string {
  const sorted = [...ys].map((y) => y.toLowerCase()).sort();
  return bytesToHex(sha256(utf8ToBytes(sorted.join('\n'))));
}
