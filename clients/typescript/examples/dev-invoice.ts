/**
 * A BOLT11 invoice that no mint issued, for melts against a development mint whose FakeWallet
 * backend "pays" any invoice (the local stack's Nutshell). Signed with a throwaway key. Test and
 * demo use only: it pays nobody.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, randomBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import { bech32 } from '@scure/base';

const TAG = { payment_hash: 1, payment_secret: 16, description: 13, expiry: 6 } as const;

function intToWords(value: number, minWords = 1): number[] {
  const words: number[] = [];
  let v = value;
  do {
    words.unshift(v & 31);
    v = Math.floor(v / 32);
  } while (v > 0);
  while (words.length < minWords) words.unshift(0);
  return words;
}

function tagged(tag: number, words: number[]): number[] {
  return [tag, ...intToWords(words.length, 2), ...words];
}

/** A signed mainnet (`lnbc`) invoice for `amountSat`, expiring in an hour. */
export function fakeBolt11Invoice(amountSat: number, description = 'proofrecon example melt'): string {
  if (!Number.isSafeInteger(amountSat) || amountSat <= 0) throw new TypeError('amountSat must be positive');
  const hrp = `lnbc${amountSat * 10}n`; // 1 sat = 10 nano-bitcoin
  const words = [
    ...intToWords(Math.floor(Date.now() / 1000), 7),
    ...tagged(TAG.payment_hash, bech32.toWords(randomBytes(32))),
    ...tagged(TAG.payment_secret, bech32.toWords(randomBytes(32))),
    ...tagged(TAG.description, bech32.toWords(utf8ToBytes(description))),
    ...tagged(TAG.expiry, intToWords(3600)),
  ];
  // The signed message: the hrp's bytes and the data's words as bytes (zero-padded).
  const dataBytes = wordsToPaddedBytes(words);
  const digest = sha256(concatBytes(utf8ToBytes(hrp), dataBytes));
  const key = secp256k1.utils.randomSecretKey();
  const recovered = secp256k1.sign(digest, key, { prehash: false, format: 'recovered' }); // recid||r||s
  const signature = concatBytes(recovered.subarray(1), recovered.subarray(0, 1)); // r||s||recid
  return bech32.encode(hrp, [...words, ...bech32.toWords(signature)], false);
}

function wordsToPaddedBytes(words: number[]): Uint8Array {
  const bytes: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const w of words) {
    acc = (acc << 5) | w;
    bits += 5;
    while (bits >= 8) {
      bits -= 8;
      bytes.push((acc >> bits) & 0xff);
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) bytes.push((acc << (8 - bits)) & 0xff);
  return Uint8Array.from(bytes);
}
