/**
 * The seed's scenarios end to end from Node: proofs minted (and some spent behind the wallet's back)
 * with cashu-ts at the real Nutshell mint, token statuses and melt requests published by this
 * package, verdicts from a real `proofrecon worker` (started here, with topics of its own), and the
 * corrections it issues consumed by CorrectionsConsumer. Plus the client's own guarantees against
 * forged, malformed and late answers, concurrency, reply topics, and the example's meltTokens().
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Wallet, type Proof } from '@cashu/cashu-ts';
import type { Producer } from 'kafkajs';

import { fakeBolt11Invoice } from '../examples/dev-invoice.js';
import {
  HIGH_SEVERITY_MESSAGE,
  MeltBlockedError,
  MemoryWalletDb,
  meltTokens,
  mintProofs,
  spendElsewhere,
  waitForLedger,
} from '../examples/melt.js';
import {
  CorrectionsConsumer,
  PreflightClient,
  PreflightTimeoutError,
  TokenStatusPublisher,
  isCleared,
  proofsDigest,
  silentLogger,
  yOf,
  type CorrectionCommand,
  type Logger,
  type PreflightVerdict,
  type TokenStatus,
} from '../src/index.js';
import { BROKERS, MINT_URL, TestWorker, deleteGroups, kafka, readTopic, randomId } from './support/worker.js';

const ASK_TIMEOUT_MS = 20_000;

/** A logger that keeps what it is told (to check the client's warnings). */
function recordingLogger(): Logger & { lines: { level: string; message: string; fields?: Record<string, unknown> }[] } {
  const lines: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) => void lines.push({ level, message, fields });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

describe('against a proofrecon worker', { timeout: 150_000 }, () => {
  const worker = new TestWorker({ replyTopicSuffixes: ['wallet.replies'] });
  const replyTopic = `${worker.prefix}wallet.replies`;
  const unansweredTopic = `${worker.prefix}nobody-reads-this`;

  let wallet: Wallet;
  let pool: Proof[] = [];
  let client: PreflightClient;
  let publisher: TokenStatusPublisher;
  let corrections: CorrectionsConsumer;
  let rawProducer: Producer;
  const commands: CorrectionCommand[] = [];
  const brokers = { brokers: BROKERS, clientId: 'tnode-stack' };
  const walletGroup = `tnode-wallet-${randomId()}`;

  /** `n` fresh proofs from the pool minted in before(). */
  const take = (n: number): Proof[] => {
    if (pool.length < n) throw new Error('the test pool of proofs ran out');
    return pool.splice(0, n);
  };
  const npub = () => `npub1node${randomId(12)}`;

  async function publishToken(owner: string, proofs: Proof[], status: TokenStatus, tokenId = `tok-${randomId()}`): Promise<string> {
    await publisher.publish({ npub: owner, tokenId, mintUrl: MINT_URL, status, proofs });
    await waitForLedger(worker.url, owner, proofs, status, { authToken: worker.authToken });
    return tokenId;
  }

  function ask(owner: string, proofs: Proof[], mintUrl = MINT_URL, via = client): Promise<PreflightVerdict> {
    return via.preflight({ npub: owner, mintUrl, proofs, timeoutMs: ASK_TIMEOUT_MS });
  }

  async function correctionsFor(owner: string, count = 1): Promise<CorrectionCommand[]> {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const mine = commands.filter((c) => c.npub === owner);
      if (mine.length >= count) return mine;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no correction for ${owner}`);
  }

  async function rawAnswer(requestId: string): Promise<Record<string, unknown>> {
    const records = await readTopic(worker.topics.PREFLIGHT_RESULTS, (rs) => rs.some((r) => r.request_id === requestId));
    return records.find((r) => r.request_id === requestId)!;
  }

  before(async () => {
    wallet = new Wallet(MINT_URL, { unit: 'sat' });
    const [, minted] = await Promise.all([
      worker.start(),
      wallet.loadMint().then(() => mintProofs(wallet, 64, 8)),
    ]);
    pool = minted;
    const admin = kafka().admin();
    await admin.connect();
    await admin.createTopics({
      topics: [
        { topic: replyTopic, numPartitions: 6 },
        { topic: unansweredTopic, numPartitions: 1 },
      ],
      waitForLeaders: true,
    });
    await admin.disconnect();
    client = new PreflightClient({ kafka: brokers, topics: { meltRequests: worker.topics.MELT_REQUESTS, preflightResults: worker.topics.PREFLIGHT_RESULTS }, logger: silentLogger });
    publisher = new TokenStatusPublisher({ kafka: brokers, topic: worker.topics.TOKEN_STATUS });
    corrections = new CorrectionsConsumer({
      kafka: brokers,
      topic: worker.topics.CORRECTIONS,
      groupId: walletGroup,
      apply: (command) => void commands.push(command),
      logger: silentLogger,
    });
    rawProducer = kafka().producer();
    await Promise.all([client.start(), publisher.start(), corrections.start(), rawProducer.connect()]);
  });

  after(async () => {
    await Promise.allSettled([client?.stop(), publisher?.stop(), corrections?.stop(), rawProducer?.disconnect()]);
    const errors = worker.logText().split('\n').filter((l) => /"level": "(ERROR|CRITICAL)"/.test(l));
    if (errors.length > 0) process.stderr.write(`worker errors:\n${errors.slice(-10).map((l) => l.slice(0, 600)).join('\n')}\n`);
    await deleteGroups([walletGroup]);
    await worker.stop();
  });

  // --- the seed's scenarios ---------------------------------------------------------------------

  it('clean proofs: CLEARED, nothing found', async () => {
    const owner = npub();
    const proofs = take(3);
    await publishToken(owner, proofs, 'unspent');
    const verdict = await ask(owner, proofs);
    assert.equal(verdict.verdict, 'CLEARED');
    assert.equal(verdict.code, null);
    assert.ok(verdict.operation_cleared && isCleared(verdict));
    assert.equal(verdict.discrepancies_found, 0);
    assert.equal(verdict.checked_proofs, 3);
    assert.equal(verdict.npub, owner);
    assert.equal(verdict.mint_url, MINT_URL);
    assert.equal(verdict.proofs_digest, proofsDigest(proofs.map((p) => yOf(p.secret))));
  });

  it('HIGH: DB unspent, spent at the mint -> BLOCKED HIGH_SEVERITY_DISCREPANCIES and a MARK_SPENT correction', async () => {
    const owner = npub();
    const proofs = take(2);
    await spendElsewhere(MINT_URL, proofs); // swapped away by another wallet with cashu-ts
    const token = await publishToken(owner, proofs, 'unspent');
    const verdict = await ask(owner, proofs);
    assert.equal(verdict.verdict, 'BLOCKED');
    assert.equal(verdict.code, 'HIGH_SEVERITY_DISCREPANCIES');
    assert.ok(!isCleared(verdict));
    assert.equal(verdict.severity_counts.HIGH, 2);
    assert.deepEqual(new Set(verdict.discrepancies.map((d) => d.type)), new Set(['DB_UNSPENT_MINT_SPENT']));
    const [fix] = await correctionsFor(owner);
    assert.equal(fix!.token_id, token);
    assert.equal(fix!.set_status, 'spent');
    assert.deepEqual([...fix!.Ys].sort(), proofs.map((p) => yOf(p.secret)).sort());
  });

  it('MEDIUM: DB pending, spent at the mint -> BLOCKED PROOF_SPENT_AT_MINT and a MARK_SPENT correction', async () => {
    const owner = npub();
    const pending = take(1);
    const clean = take(2);
    await spendElsewhere(MINT_URL, pending);
    const token = await publishToken(owner, pending, 'pending');
    await publishToken(owner, clean, 'unspent');
    const verdict = await ask(owner, [...pending, ...clean]);
    assert.equal(verdict.verdict, 'BLOCKED');
    assert.equal(verdict.code, 'PROOF_SPENT_AT_MINT');
    assert.equal(verdict.severity_counts.MEDIUM, 1);
    assert.deepEqual(verdict.discrepancies.map((d) => d.type), ['DB_PENDING_MINT_SPENT']);
    const [fix] = await correctionsFor(owner);
    assert.equal(fix!.token_id, token);
    assert.equal(fix!.set_status, 'spent');
    assert.deepEqual(fix!.Ys, [yOf(pending[0]!.secret)]);
  });

  it('MEDIUM: DB spent, unspent at the mint -> BLOCKED UNRESOLVED_DISCREPANCIES', async () => {
    const owner = npub();
    const proofs = take(1);
    await publishToken(owner, proofs, 'spent');
    const verdict = await ask(owner, proofs);
    assert.equal(verdict.verdict, 'BLOCKED');
    assert.equal(verdict.code, 'UNRESOLVED_DISCREPANCIES');
    assert.equal(verdict.severity_counts.MEDIUM, 1);
    assert.deepEqual(verdict.discrepancies.map((d) => [d.type, d.severity]), [['DB_SPENT_MINT_UNSPENT', 'MEDIUM']]);
  });

  it('LOW: proofs not in the DB, unspent at the mint -> CLEARED with PROOF_NOT_IN_DB', async () => {
    const owner = npub();
    const proofs = take(2);
    const verdict = await ask(owner, proofs);
    assert.equal(verdict.verdict, 'CLEARED');
    assert.ok(isCleared(verdict));
    assert.equal(verdict.severity_counts.LOW, 2);
    assert.deepEqual(new Set(verdict.discrepancies.map((d) => [d.type, d.severity].join())), new Set(['PROOF_NOT_IN_DB,LOW']));
  });

  it('mint down (allow-listed, nothing listens) -> BLOCKED MINT_UNAVAILABLE', async () => {
    const verdict = await ask(npub(), take(1), worker.downMintUrl);
    assert.equal(verdict.verdict, 'BLOCKED');
    assert.equal(verdict.code, 'MINT_UNAVAILABLE');
    assert.equal(verdict.mint_url, worker.downMintUrl);
    assert.equal(verdict.discrepancies_found, 0);
  });

  it('a mint that is not on the allow-list -> BLOCKED INVALID_REQUEST', async () => {
    const verdict = await ask(npub(), take(1), 'http://127.0.0.9:1');
    assert.equal(verdict.verdict, 'BLOCKED');
    assert.equal(verdict.code, 'INVALID_REQUEST');
  });

  it('an invalid request with a request_id -> BLOCKED INVALID_REQUEST', async () => {
    const requestId = `bad-${randomUUID()}`;
    const owner = npub();
    const body = {
      request_id: requestId,
      npub: owner,
      mint_url: MINT_URL,
      requested_at: new Date().toISOString(),
      proofs: [{ Y: yOf('x'), amount: 0, keyset_id: '00ab' }], // a non-positive amount
    };
    await rawProducer.send({ topic: worker.topics.MELT_REQUESTS, acks: -1, messages: [{ key: owner, value: JSON.stringify(body) }] });
    const answer = await rawAnswer(requestId);
    assert.equal(answer.verdict, 'BLOCKED');
    assert.equal(answer.code, 'INVALID_REQUEST');
    assert.equal(answer.operation_cleared, false);
  });

  it('a request whose Kafka key is not its npub -> BLOCKED INVALID_REQUEST', async () => {
    const requestId = `wrongkey-${randomUUID()}`;
    const body = {
      request_id: requestId,
      npub: npub(),
      mint_url: MINT_URL,
      requested_at: new Date().toISOString(),
      proofs: [{ Y: yOf(take(1)[0]!.secret), amount: 8, keyset_id: '00ab' }],
    };
    await rawProducer.send({ topic: worker.topics.MELT_REQUESTS, acks: -1, messages: [{ key: `"${body.npub}"`, value: JSON.stringify(body) }] });
    const answer = await rawAnswer(requestId);
    assert.equal(answer.verdict, 'BLOCKED');
    assert.equal(answer.code, 'INVALID_REQUEST');
  });

  it('sends the normalised mint URL and accepts its echo', async () => {
    const verdict = await ask(npub(), take(1), `  ${MINT_URL.toUpperCase().replace('HTTP', 'http')}//  `);
    assert.equal(verdict.mint_url, MINT_URL);
    assert.ok(isCleared(verdict));
  });

  it('never sends a secret: the melt-requests and token-status topics hold Ys only', async () => {
    const owner = npub();
    const proofs = take(2);
    await publishToken(owner, proofs, 'unspent');
    await ask(owner, proofs);
    for (const topic of [worker.topics.MELT_REQUESTS, worker.topics.TOKEN_STATUS]) {
      const records = await readTopic(topic, (rs) => rs.some((r) => r.npub === owner));
      const text = JSON.stringify(records);
      for (const p of proofs) assert.ok(!text.includes(p.secret), `a secret reached ${topic}`);
      assert.ok(text.includes(yOf(proofs[0]!.secret)));
      assert.ok(records.filter((r) => r.npub === owner).every((r) => r._key === owner), 'keyed by the raw npub');
    }
  });

  // --- the client's guarantees --------------------------------------------------------------------

  it('many concurrent preflights share one consumer and each gets its own verdict', async () => {
    const asks = Array.from({ length: 12 }, () => {
      const owner = npub();
      const proofs = take(1);
      return ask(owner, proofs).then((v) => ({ v, owner, digest: proofsDigest([yOf(proofs[0]!.secret)]) }));
    });
    const answers = await Promise.all(asks);
    assert.equal(new Set(answers.map((a) => a.v.request_id)).size, answers.length);
    for (const { v, owner, digest } of answers) {
      assert.equal(v.npub, owner);
      assert.equal(v.proofs_digest, digest);
      assert.equal(v.verdict, 'CLEARED');
    }
    assert.equal(client.pending, 0);
  });

  it('answers on its own reply topic (on the worker allow-list)', async () => {
    const own = new PreflightClient({ kafka: brokers, topics: { meltRequests: worker.topics.MELT_REQUESTS }, replyTo: replyTopic, logger: silentLogger });
    try {
      const owner = npub();
      const verdict = await own.preflight({ npub: owner, mintUrl: MINT_URL, proofs: take(1), timeoutMs: ASK_TIMEOUT_MS });
      assert.equal(verdict.npub, owner);
      assert.ok(isCleared(verdict));
    } finally {
      await own.stop();
    }
  });

  it('a reply topic off the allow-list is refused by the worker: the preflight times out, never clears', async () => {
    const offList = `${worker.prefix}not-allowed`;
    const admin = kafka().admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: offList, numPartitions: 1 }], waitForLeaders: true });
    await admin.disconnect();
    const own = new PreflightClient({ kafka: brokers, topics: { meltRequests: worker.topics.MELT_REQUESTS }, replyTo: offList, logger: silentLogger });
    try {
      const error = await own
        .preflight({ npub: npub(), mintUrl: MINT_URL, proofs: take(1), timeoutMs: 3000 })
        .then(() => assert.fail('resolved'), (e: unknown) => e);
      assert.ok(error instanceof PreflightTimeoutError);
      const answer = await rawAnswer(error.requestId); // answered on the default topic instead
      assert.equal(answer.code, 'INVALID_REQUEST');
    } finally {
      await own.stop();
    }
  });

  it('ignores forged, malformed and self-contradicting answers; takes the one that matches', async () => {
    const logger = recordingLogger();
    // Requests go where no worker reads: every answer here is written by the test.
    const own = new PreflightClient({
      kafka: brokers,
      topics: { meltRequests: unansweredTopic, preflightResults: worker.topics.PREFLIGHT_RESULTS },
      logger,
    });
    await own.start();
    try {
      const owner = npub();
      const proofs = take(2);
      const pending = own.preflight({ npub: owner, mintUrl: MINT_URL, proofs, timeoutMs: ASK_TIMEOUT_MS });
      const [request] = await readTopic(unansweredTopic, (rs) => rs.some((r) => r.npub === owner)).then((rs) => rs.filter((r) => r.npub === owner));
      const requestId = request!.request_id as string;
      const digest = proofsDigest(proofs.map((p) => yOf(p.secret)));
      const answer = {
        request_id: requestId,
        npub: owner,
        mint_url: MINT_URL,
        operation_cleared: true,
        verdict: 'CLEARED',
        code: null,
        discrepancies_found: 0,
        discrepancies_resolved: 0,
        severity_counts: { HIGH: 0, MEDIUM: 0, LOW: 0 },
        discrepancies: [],
        checked_proofs: 2,
        duration_ms: 1,
        answered_at: new Date().toISOString(),
        proofs_digest: digest,
        truth: 'checkstate',
      };
      const forged = [
        { ...answer, proofs_digest: proofsDigest([yOf('other proofs')]) }, // other proofs
        { ...answer, npub: npub() }, // another user
        { ...answer, mint_url: 'http://127.0.0.1:9' }, // another mint
        { ...answer, proofs_digest: undefined }, // no digest at all (the contract requires one)
        { ...answer, verdict: 'MAYBE' }, // not the contract
        { ...answer, code: 'HIGH_SEVERITY_DISCREPANCIES' }, // cleared and blocked at once
        { ...answer, operation_cleared: 'yes' },
      ];
      const blocked = { ...answer, operation_cleared: false, verdict: 'BLOCKED', code: 'MINT_UNAVAILABLE' };
      await rawProducer.send({
        topic: worker.topics.PREFLIGHT_RESULTS,
        acks: -1,
        messages: [
          ...forged.map((f) => ({ key: requestId, value: JSON.stringify(f) })),
          { key: requestId, value: 'not json at all' },
          { key: requestId, value: JSON.stringify(blocked) },
          { key: requestId, value: JSON.stringify(answer) }, // a second, different answer: too late
        ],
      });
      const verdict = await pending;
      assert.equal(verdict.code, 'MINT_UNAVAILABLE', 'the first matching answer wins');
      assert.ok(!isCleared(verdict));
      await new Promise((r) => setTimeout(r, 500));
      const stats = own.stats();
      assert.equal(stats.answered, 1);
      assert.equal(stats.ignoredMismatched, 3);
      assert.equal(stats.ignoredInvalid, 5);
      assert.equal(stats.ignoredDuplicate, 1);
      assert.ok(logger.lines.filter((l) => l.level === 'warn').length >= 8, 'each ignored answer is logged');
      assert.ok(!JSON.stringify(logger.lines).includes(proofs[0]!.secret));
    } finally {
      await own.stop();
    }
  });

  it('a timeout rejects with PreflightTimeoutError (fail closed) and a late answer is ignored', async () => {
    const own = new PreflightClient({
      kafka: brokers,
      topics: { meltRequests: unansweredTopic, preflightResults: worker.topics.PREFLIGHT_RESULTS },
      logger: silentLogger,
    });
    try {
      const owner = npub();
      const proofs = take(1);
      const started = Date.now();
      const error = await own
        .preflight({ npub: owner, mintUrl: MINT_URL, proofs, timeoutMs: 700 })
        .then(() => assert.fail('a preflight without an answer resolved'), (e: unknown) => e);
      assert.ok(error instanceof PreflightTimeoutError);
      assert.ok(Date.now() - started >= 650);
      assert.equal(own.stats().timedOut, 1);
      assert.equal(own.pending, 0);
      // The answer arrives after all: nobody waits for it any more.
      const late = {
        request_id: error.requestId,
        npub: owner,
        mint_url: MINT_URL,
        operation_cleared: true,
        verdict: 'CLEARED',
        code: null,
        discrepancies_found: 0,
        discrepancies_resolved: 0,
        severity_counts: { HIGH: 0, MEDIUM: 0, LOW: 0 },
        discrepancies: [],
        checked_proofs: 1,
        duration_ms: 1,
        answered_at: new Date().toISOString(),
        proofs_digest: proofsDigest([yOf(proofs[0]!.secret)]),
        truth: 'checkstate',
      };
      const before = own.stats().ignoredForeign;
      await rawProducer.send({ topic: worker.topics.PREFLIGHT_RESULTS, acks: -1, messages: [{ key: error.requestId, value: JSON.stringify(late) }] });
      const deadline = Date.now() + 10_000;
      while (own.stats().ignoredForeign === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.equal(own.stats().ignoredForeign, before + 1);
      assert.equal(own.stats().answered, 0);
    } finally {
      await own.stop();
    }
  });

  // --- the example: the seed's meltTokens() with the preflight ---------------------------------------

  describe("the example's meltTokens()", () => {
    let db: MemoryWalletDb;
    before(() => {
      db = new MemoryWalletDb(publisher);
    });
    const context = (overrides: Partial<Parameters<typeof meltTokens>[0]> = {}) => ({
      wallet,
      mintUrl: MINT_URL,
      db,
      preflight: client,
      logger: silentLogger,
      preflightTimeoutMs: ASK_TIMEOUT_MS,
      ...overrides,
    });

    it('cleared: melts with cashu-ts and keeps the change', async () => {
      const owner = npub();
      const proofs = take(4);
      const token = await db.addToken(owner, MINT_URL, proofs);
      await waitForLedger(worker.url, owner, proofs, 'unspent', { authToken: worker.authToken });
      const outcome = await meltTokens(context(), owner, fakeBolt11Invoice(16));
      assert.equal(outcome.quote.state, 'PAID');
      assert.ok(isCleared(outcome.verdict));
      assert.equal(db.tokens.get(token.tokenId)!.status, 'spent');
      const states = await wallet.checkProofsStates(proofs);
      assert.ok(states.some((s) => s.state === 'SPENT'));
      // 32 sat in, an invoice of 16 paid, what the fee reserve did not use returned (NUT-08).
      const left = [...db.tokens.values()]
        .filter((t) => t.npub === owner && t.status === 'unspent')
        .flatMap((t) => t.proofs)
        .reduce((sum, p) => sum + Number(p.amount), 0);
      assert.ok(left <= 16 && left >= 16 - Number(outcome.quote.fee_reserve), `left ${left}`);
    });

    it("HIGH: blocked with the seed's message, nothing melted", async () => {
      const owner = npub();
      const proofs = take(3);
      const token = await db.addToken(owner, MINT_URL, proofs);
      await spendElsewhere(MINT_URL, proofs);
      await waitForLedger(worker.url, owner, proofs, 'unspent', { authToken: worker.authToken });
      const invoice = fakeBolt11Invoice(8);
      const error = await meltTokens(context(), owner, invoice).then(() => assert.fail('melted'), (e: unknown) => e);
      assert.ok(error instanceof MeltBlockedError);
      assert.equal(error.code, 'HIGH_SEVERITY_DISCREPANCIES');
      assert.ok(error.isHighSeverity);
      assert.equal(error.message, HIGH_SEVERITY_MESSAGE);
      assert.equal(
        error.message,
        'Cannot proceed with melt operation. Critical proof state inconsistencies detected. Please contact support.',
      );
      // The melt was never started: the token was not even marked pending.
      assert.equal(db.tokens.get(token.tokenId)!.status, 'unspent');
    });

    it('timeout: fails closed, nothing melted, proofs still unspent', async () => {
      const owner = npub();
      const proofs = take(3);
      await db.addToken(owner, MINT_URL, proofs);
      const silent = new PreflightClient({
        kafka: brokers,
        topics: { meltRequests: unansweredTopic, preflightResults: worker.topics.PREFLIGHT_RESULTS },
        logger: silentLogger,
      });
      try {
        const error = await meltTokens(context({ preflight: silent, preflightTimeoutMs: 800 }), owner, fakeBolt11Invoice(8)).then(
          () => assert.fail('melted without a verdict'),
          (e: unknown) => e,
        );
        assert.ok(error instanceof MeltBlockedError);
        assert.equal(error.code, 'PREFLIGHT_TIMEOUT');
        assert.ok(error.cause instanceof PreflightTimeoutError);
      } finally {
        await silent.stop();
      }
      const states = await wallet.checkProofsStates(proofs);
      assert.ok(states.every((s) => s.state === 'UNSPENT'));
      assert.ok([...db.tokens.values()].filter((t) => t.npub === owner).every((t) => t.status === 'unspent'));
    });
  });
});
