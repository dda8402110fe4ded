/**
 * The contracts' types, generated from the repository's JSON Schemas (src/generated/), under the
 * names a wallet uses, plus what the worker's contract is adding right now (kept here as a union
 * with the generated types, so this file stays correct before and after the schemas catch up).
 */
import type {
  BlockCode as GeneratedBlockCode,
  ReconPreflightResults,
  PreflightDiscrepancy as GeneratedPreflightDiscrepancy,
} from './generated/recon.preflight-results.js';
import type { WalletMeltRequests } from './generated/wallet.melt-requests.js';
import type { WalletTokenStatus } from './generated/wallet.token-status.js';
import type { WalletCorrections } from './generated/wallet.corrections.js';
import type { ReconDiscrepancies } from './generated/recon.discrepancies.js';

export type { WalletMeltRequests, WalletTokenStatus, WalletCorrections, ReconDiscrepancies, ReconPreflightResults };
export type {
  Action,
  DbStatus,
  DiscrepancyType,
  MintState,
  Severity,
  Verdict,
  SeverityCounts,
} from './generated/recon.preflight-results.js';
export type { TokenStatus } from './generated/wallet.token-status.js';

/** Why a melt was blocked. The worker's contract adds the last four. */
export type BlockCode =
  | GeneratedBlockCode
  | 'HIGH_SEVERITY_DISCREPANCIES'
  | 'MINT_UNAVAILABLE'
  | 'INVALID_REQUEST'
  | 'DEADLINE_EXCEEDED'
  | 'MINT_MISMATCH'
  | 'PROOF_SPENT_AT_MINT'
  | 'PROOF_PENDING_AT_MINT'
  | 'UNRESOLVED_DISCREPANCIES';

export type PreflightDiscrepancy = GeneratedPreflightDiscrepancy;

/**
 * A verdict as `PreflightClient.preflight` resolves it: a `recon.preflight-results` answer that
 * matched the request (request_id, npub, normalised mint_url and proofs_digest).
 */
export type PreflightVerdict = Omit<ReconPreflightResults, 'code'> & {
  code: BlockCode | null;
  /** SHA-256 of the request's sorted Ys (see `proofsDigest`); equal to the request's. */
  proofs_digest: string;
};

/** A `wallet.corrections` command. */
export type CorrectionCommand = WalletCorrections;

/** The melt request as it is sent (Ys only, never secrets). */
export type MeltRequest = WalletMeltRequests;

/** The token-status event as it is sent (Ys only, never secrets). */
export type TokenStatusEvent = WalletTokenStatus;

/** Topic names; the defaults are the worker's (`PROOFRECON_TOPIC_*`). */
export interface Topics {
  tokenStatus: string;
  meltRequests: string;
  preflightResults: string;
  corrections: string;
}

export const DEFAULT_TOPICS: Readonly<Topics> = Object.freeze({
  tokenStatus: 'wallet.token-status',
  meltRequests: 'wallet.melt-requests',
  preflightResults: 'recon.preflight-results',
  corrections: 'wallet.corrections',
});

/** Topic names from the worker's environment variables, where set (`PROOFRECON_TOPIC_*`). */
export function topicsFromEnv(env: NodeJS.ProcessEnv = process.env): Topics {
  return {
    tokenStatus: env.PROOFRECON_TOPIC_TOKEN_STATUS || DEFAULT_TOPICS.tokenStatus,
    meltRequests: env.PROOFRECON_TOPIC_MELT_REQUESTS || DEFAULT_TOPICS.meltRequests,
    preflightResults: env.PROOFRECON_TOPIC_PREFLIGHT_RESULTS || DEFAULT_TOPICS.preflightResults,
    corrections: env.PROOFRECON_TOPIC_CORRECTIONS || DEFAULT_TOPICS.corrections,
  };
}

/** Whether a verdict lets the melt go ahead. Anything else (BLOCKED, a timeout, an error) does not. */
export function isCleared(verdict: PreflightVerdict | null | undefined): boolean {
  return (
    verdict != null &&
    verdict.operation_cleared === true &&
    (verdict.verdict === 'CLEARED' || verdict.verdict === 'CLEARED_AFTER_RECONCILIATION') &&
    verdict.code === null
  );
}
