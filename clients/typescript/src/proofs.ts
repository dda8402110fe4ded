/**
 * Proofs as a wallet holds them, turned into the references the contracts carry: `{Y, amount,
 * keyset_id}`. Secrets are hashed to Ys here and go no further.
 */
import { isValidY, yOf } from './cashu.js';

/** An amount as wallets hold it: a number, a bigint, or an amount object (cashu-ts 4's Amount). */
export type AmountLike = number | bigint | { toBigInt(): bigint } | { toString(): string };

/** A Cashu proof as cashu-ts has it (`id` is the keyset id; `C` and the rest are ignored). */
export interface CashuProofInput {
  secret: string;
  amount: AmountLike;
  id: string;
  C?: string;
  token_id?: string;
}

/** A proof by its secret or by its Y, with its keyset id. */
export interface ProofRefInput {
  secret?: string;
  Y?: string;
  amount: AmountLike;
  keyset_id: string;
  token_id?: string;
}

export type ProofInput = CashuProofInput | ProofRefInput;

/** What the contracts carry for a proof. */
export interface ProofRef {
  Y: string;
  amount: number;
  keyset_id: string;
}

export interface MeltProofRef extends ProofRef {
  token_id?: string;
}

/** A proof's reference, with Y derived from the secret when given (never the secret itself). */
export function toProofRef(proof: ProofInput): ProofRef {
  const { Y, amount, keyset_id } = toMeltProofRef(proof);
  return { Y, amount, keyset_id };
}

export function toMeltProofRef(proof: ProofInput): MeltProofRef {
  if (proof === null || typeof proof !== 'object') throw new TypeError('a proof must be an object');
  const given = proof as Partial<ProofRefInput & CashuProofInput>;
  let y: string | undefined;
  if (given.secret !== undefined) {
    y = yOf(given.secret);
    if (given.Y !== undefined && (typeof given.Y !== 'string' || given.Y.toLowerCase() !== y)) {
      throw new TypeError('secret and Y disagree: Y must be hash_to_curve(secret)');
    }
  } else if (given.Y !== undefined) {
    if (!isValidY(given.Y)) {
      throw new TypeError('Y must be a compressed secp256k1 point: 66 hex characters, prefix 02/03');
    }
    y = given.Y.toLowerCase();
  } else {
    throw new TypeError('a proof needs its secret or its Y');
  }
  const keysetId = given.keyset_id ?? given.id;
  if (typeof keysetId !== 'string' || keysetId.length === 0) {
    throw new TypeError('a proof needs its keyset id (`keyset_id`, or `id` as cashu-ts has it)');
  }
  const ref: MeltProofRef = { Y: y, amount: toAmount(given.amount), keyset_id: keysetId };
  if (given.token_id !== undefined) ref.token_id = given.token_id;
  return ref;
}

/** A positive integer amount that JSON carries exactly. */
export function toAmount(amount: AmountLike | undefined): number {
  let value: bigint;
  if (typeof amount === 'number') {
    if (!Number.isSafeInteger(amount)) throw new TypeError('amount must be a safe integer');
    value = BigInt(amount);
  } else if (typeof amount === 'bigint') {
    value = amount;
  } else if (amount !== null && typeof amount === 'object') {
    const text =
      'toBigInt' in amount && typeof amount.toBigInt === 'function'
        ? amount.toBigInt().toString()
        : String(amount);
    if (!/^-?\d+$/.test(text)) throw new TypeError('amount must be an integer');
    value = BigInt(text);
  } else {
    throw new TypeError('amount must be a positive integer');
  }
  if (value <= 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new TypeError('amount must be a positive integer below 2^53');
  }
  return Number(value);
}

/** The Ys of `refs`, refusing duplicates (the worker refuses a request naming a proof twice). */
export function uniqueYs(refs: readonly ProofRef[]): string[] {
  const ys = refs.map((r) => r.Y);
  if (new Set(ys).size !== ys.length) throw new TypeError('the same proof (Y) appears more than once');
  return ys;
}
