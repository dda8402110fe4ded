/**
 * The seed's `meltTokens()` with the preflight in place, on cashu-ts and proofrecon-client.
 *
 *   collect the user's proofs -> preflight (proofrecon) -> cleared: melt with cashu-ts
 *                                                       -> blocked: a message for the user, no melt
 *                                                       -> timeout/error: fail closed, no melt
 *
 * The wallet DB is an in-memory stand-in (`MemoryWalletDb`): every status change goes through its
 * outbox to `wallet.token-status` (TokenStatusPublisher), and `wallet.corrections` commands are
 * applied to it (CorrectionsConsumer). Run against the local stack (see README.md):
 *
 *   node dist/examples/melt.js                      # clean proofs: CLEARED, melted
 *   node dist/examples/melt.js --spent-elsewhere    # DB unspent, mint SPENT: BLOCKED (HIGH)
 */
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { MintQuoteState, Wallet, type MeltQuoteBolt11Response, type Proof } from '@cashu/cashu-ts';

import {
  CorrectionsConsumer,
  PreflightClient,
  PreflightTimeoutError,
  TokenStatusPublisher,
  isCleared,
  jsonLogger,
  topicsFromEnv,
  yOf,
  type BlockCode,
  type CorrectionCommand,
  type Logger,
  type PreflightVerdict,
  type TokenStatus,
} from '../src/index.js';
import { fakeBolt11Invoice } from './dev-invoice.js';

// --- what the user is told --------------------------------------------------------------------

/** The seed's message for HIGH severity, kept word for word. */
export const HIGH_SEVERITY_MESSAGE =
  'Cannot proceed with melt operation. Critical proof state inconsistencies detected. Please contact support.';

export const USER_MESSAGES: Record<BlockCode | 'PREFLIGHT_TIMEOUT' | 'PREFLIGHT_FAILED', string> = {
  HIGH_SEVERITY_DISCREPANCIES: HIGH_SEVERITY_MESSAGE,
  PROOF_SPENT_AT_MINT:
    'Cannot proceed with melt operation. Some of the selected funds were already spent; your balance is being updated. Please try again.',
  PROOF_PENDING_AT_MINT:
    'Cannot proceed with melt operation. Some of the selected funds are part of a payment still in progress. Please try again in a few minutes.',
  UNRESOLVED_DISCREPANCIES:
    'Cannot proceed with melt operation. Your balance needs to be reconciled first. Please try again later or contact support.',
  MINT_MISMATCH:
    'Cannot proceed with melt operation. Some of the selected funds belong to another mint. Please contact support.',
  MINT_UNAVAILABLE:
    'Cannot proceed with melt operation. The mint cannot be reached right now; no payment was attempted. Please try again later.',
  DEADLINE_EXCEEDED:
    'Cannot proceed with melt operation. The safety check took too long; no payment was attempted. Please try again.',
  INVALID_REQUEST: 'Cannot proceed with melt operation. The payment could not be checked. Please contact support.',
  PREFLIGHT_TIMEOUT:
    'Cannot proceed with melt operation. The safety check did not answer in time; no payment was attempted. Please try again.',
  PREFLIGHT_FAILED:
    'Cannot proceed with melt operation. The safety check could not be made; no payment was attempted. Please try again later.',
};

/** A melt that did not happen, with what to tell the user. `code` is the verdict's, or ours. */
export class MeltBlockedError extends Error {
  constructor(
    readonly code: keyof typeof USER_MESSAGES,
    readonly verdict?: PreflightVerdict,
    options?: { cause?: unknown },
  ) {
    super(USER_MESSAGES[code], options);
    this.name = 'MeltBlockedError';
  }

  /** The seed's `error.code === 'HIGH_SEVERITY_DISCREPANCIES'` check. */
  get isHighSeverity(): boolean {
    return this.code === 'HIGH_SEVERITY_DISCREPANCIES';
  }
}

// --- a wallet DB stand-in ----------------------------------------------------------------------

export interface TokenRow {
  tokenId: string;
  npub: string;
  mintUrl: string;
  status: TokenStatus;
  version: number;
  proofs: Proof[];
}

/**
 * The wallet DB, in memory: tokens of proofs with a status and a version. Every change is
 * published to `wallet.token-status` (as an outbox relay would) before the call returns.
 */
export class MemoryWalletDb {
  readonly tokens = new Map<string, TokenRow>();
  readonly appliedCommands = new Set<string>();

  constructor(private readonly outbox: TokenStatusPublisher) {}

  async addToken(npub: string, mintUrl: string, proofs: Proof[], status: TokenStatus = 'unspent'): Promise<TokenRow> {
    const row: TokenRow = { tokenId: `tok-${randomUUID()}`, npub, mintUrl, status, version: 1, proofs };
    this.tokens.set(row.tokenId, row);
    await this.publish(row);
    return row;
  }

  async setStatus(tokenId: string, status: TokenStatus): Promise<void> {
    const row = this.tokens.get(tokenId);
    if (!row || row.status === status) return; // a set, not a toggle: idempotent
    row.status = status;
    row.version += 1;
    await this.publish(row);
  }

  /** Unspent tokens of `npub` at `mintUrl` covering `amount`, oldest first. */
  selectTokens(npub: string, mintUrl: string, amount: number): TokenRow[] {
    const chosen: TokenRow[] = [];
    let total = 0;
    for (const row of this.tokens.values()) {
      if (row.npub !== npub || row.mintUrl !== mintUrl || row.status !== 'unspent') continue;
      chosen.push(row);
      total += row.proofs.reduce((sum, p) => sum + Number(p.amount), 0);
      if (total >= amount) return chosen;
    }
    throw new Error(`insufficient balance: ${total} < ${amount}`);
  }

  /** The `wallet.corrections` callback: set the named proofs' token to the commanded status. */
  async applyCorrection(command: CorrectionCommand): Promise<void> {
    const row = this.tokens.get(command.token_id);
    if (row && row.npub === command.npub) await this.setStatus(row.tokenId, command.set_status);
    this.appliedCommands.add(command.command_id);
  }

  private async publish(row: TokenRow): Promise<void> {
    await this.outbox.publish({
      npub: row.npub,
      tokenId: row.tokenId,
      mintUrl: row.mintUrl,
      status: row.status,
      version: row.version,
      proofs: row.proofs, // {secret, amount, id}: only Ys leave this process
    });
  }
}

// --- meltTokens --------------------------------------------------------------------------------

export interface MeltContext {
  wallet: Wallet; // cashu-ts, loaded for `mintUrl`
  mintUrl: string;
  db: MemoryWalletDb;
  preflight: PreflightClient;
  logger: Logger;
  preflightTimeoutMs?: number;
}

export interface MeltOutcome {
  quote: MeltQuoteBolt11Response;
  verdict: PreflightVerdict;
  change: Proof[];
}

/** Pay `invoice` from `npub`'s proofs, after the preflight cleared them. */
export async function meltTokens(ctx: MeltContext, npub: string, invoice: string): Promise<MeltOutcome> {
  const { wallet, db, logger } = ctx;
  const quote = await wallet.createMeltQuoteBolt11(invoice);
  const needed = Number(quote.amount) + Number(quote.fee_reserve);

  // After collecting all proofs from the selected tokens...
  const tokens = db.selectTokens(npub, ctx.mintUrl, needed);
  const allProofs = tokens.flatMap((t) => t.proofs);
  const tokenIds = tokens.map((t) => t.tokenId);

  // ...the pre-flight reconciliation, before anything is sent to the mint.
  let verdict: PreflightVerdict;
  try {
    verdict = await ctx.preflight.preflight({
      npub,
      mintUrl: ctx.mintUrl,
      proofs: allProofs,
      quoteId: quote.quote,
      amount: needed,
      timeoutMs: ctx.preflightTimeoutMs ?? 10_000,
    });
  } catch (error) {
    // Fail closed: no verdict is never a cleared verdict.
    const code = error instanceof PreflightTimeoutError ? 'PREFLIGHT_TIMEOUT' : 'PREFLIGHT_FAILED';
    logger.error('Pre-flight reconciliation BLOCKED', { npub, code, error: (error as Error).message });
    throw new MeltBlockedError(code, undefined, { cause: error });
  }
  if (!isCleared(verdict)) {
    const code = verdict.code ?? 'INVALID_REQUEST';
    const fields = {
      npub,
      request_id: verdict.request_id,
      code,
      severity_counts: verdict.severity_counts,
      discrepancies_found: verdict.discrepancies_found,
    };
    if (code === 'HIGH_SEVERITY_DISCREPANCIES') {
      logger.error('Melt operation blocked due to critical proof state issues', fields);
    } else {
      logger.warn('Pre-flight reconciliation BLOCKED', fields);
    }
    throw new MeltBlockedError(code, verdict);
  }
  logger.info('Pre-flight reconciliation passed', {
    npub,
    request_id: verdict.request_id,
    discrepanciesFound: verdict.discrepancies_found,
    discrepanciesResolved: verdict.discrepancies_resolved,
  });

  // Continue with the existing melt operation.
  for (const id of tokenIds) await db.setStatus(id, 'pending');
  try {
    const { keep, send } = await wallet.send(needed, allProofs, { includeFees: true });
    const result = await wallet.meltProofsBolt11(quote, send);
    for (const id of tokenIds) await db.setStatus(id, 'spent');
    const change = [...keep, ...result.change];
    if (change.length > 0) await db.addToken(npub, ctx.mintUrl, change);
    return { quote: result.quote, verdict, change };
  } catch (error) {
    // The proofs' fate at the mint is unknown: they stay pending until reconciled.
    logger.error('melt failed after a cleared preflight; tokens left pending', { npub, tokenIds });
    throw error;
  }
}

// --- helpers for a development mint (FakeWallet pays mint quotes by itself) ---------------------

export async function mintProofs(wallet: Wallet, count: number, amount = 8): Promise<Proof[]> {
  const total = count * amount;
  const quote = await wallet.createMintQuoteBolt11(total);
  for (let i = 0; ; i++) {
    const state = await wallet.checkMintQuoteBolt11(quote.quote);
    if (state.state === MintQuoteState.PAID) break;
    if (state.state === MintQuoteState.ISSUED || i > 300) throw new Error('mint quote never paid');
    await new Promise((r) => setTimeout(r, 100));
  }
  return wallet.mintProofsBolt11(total, quote.quote, undefined, {
    type: 'random',
    denominations: Array<number>(count).fill(amount),
  });
}

/** Spend copies of `proofs` from another wallet: SPENT at the mint, unspent in our DB. */
export async function spendElsewhere(mintUrl: string, proofs: Proof[]): Promise<void> {
  const other = new Wallet(mintUrl, { unit: 'sat' });
  await other.loadMint();
  await other.receive({ mint: mintUrl, unit: 'sat', proofs: proofs.map((p) => ({ ...p })) });
}

/** Wait until the worker's ledger shows `status` for every proof (token events and melts travel apart). */
export async function waitForLedger(
  workerUrl: string,
  npub: string,
  proofs: Proof[],
  status: TokenStatus,
  options: { timeoutMs?: number; authToken?: string } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  const headers: Record<string, string> = options.authToken ? { authorization: `Bearer ${options.authToken}` } : {};
  const ys = proofs.map((p) => yOf(p.secret));
  while (Date.now() < deadline) {
    const views = await Promise.all(
      ys.map(async (y) => {
        const response = await fetch(`${workerUrl}/v1/proofs/${y}?npub=${encodeURIComponent(npub)}`, { headers });
        return response.ok ? ((await response.json()) as { ledger?: { status?: string } | null }) : null;
      }),
    );
    if (views.every((v) => v?.ledger?.status === status)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the worker's ledger never showed ${status}`);
}

// --- the demo ------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const spentElsewhere = process.argv.includes('--spent-elsewhere');
  const brokers = (process.env.PROOFRECON_KAFKA_BOOTSTRAP_SERVERS ?? '127.0.0.1:9092').split(',');
  const mintUrl = process.env.MINT_URL ?? 'http://127.0.0.1:3338';
  const workerUrl = process.env.PROOFRECON_WORKER_URL ?? `http://127.0.0.1:${process.env.PROOFRECON_WEB_PORT ?? 6066}`;
  const authToken = process.env.PROOFRECON_WEB_AUTH_TOKEN;
  const topics = topicsFromEnv();
  const logger = jsonLogger('info');
  const kafka = { brokers, clientId: 'proofrecon-example' };

  const outbox = new TokenStatusPublisher({ kafka, topic: topics.tokenStatus });
  const db = new MemoryWalletDb(outbox);
  const preflight = new PreflightClient({ kafka, topics, logger });
  const corrections = new CorrectionsConsumer({
    kafka,
    topic: topics.corrections,
    groupId: `proofrecon-example-wallet-${randomUUID()}`,
    fromBeginning: false,
    apply: (command) => db.applyCorrection(command),
    seen: (id) => db.appliedCommands.has(id),
    logger,
  });
  const wallet = new Wallet(mintUrl, { unit: 'sat' });
  await Promise.all([preflight.start(), corrections.start(), wallet.loadMint()]);
  try {
    const npub = `npub1example${randomUUID().replaceAll('-', '')}`;
    const proofs = await mintProofs(wallet, 4, 8);
    const token = await db.addToken(npub, mintUrl, proofs);
    if (spentElsewhere) await spendElsewhere(mintUrl, proofs);
    await waitForLedger(workerUrl, npub, proofs, 'unspent', authToken ? { authToken } : {});
    try {
      const outcome = await meltTokens({ wallet, mintUrl, db, preflight, logger }, npub, fakeBolt11Invoice(16));
      console.log(`melted: quote ${outcome.quote.quote} ${outcome.quote.state}, verdict ${outcome.verdict.verdict}`);
    } catch (error) {
      if (!(error instanceof MeltBlockedError)) throw error;
      console.log(`not melted (${error.code}): ${error.message}`);
      if (spentElsewhere) {
        for (let i = 0; i < 50 && db.tokens.get(token.tokenId)?.status !== 'spent'; i++) {
          await new Promise((r) => setTimeout(r, 100));
        }
        console.log(`token ${token.tokenId} after the worker's correction: ${db.tokens.get(token.tokenId)?.status}`);
      }
    }
  } finally {
    await Promise.allSettled([preflight.stop(), corrections.stop(), outbox.stop()]);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
