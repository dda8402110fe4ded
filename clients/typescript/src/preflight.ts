/**
 * Melt preflight over Kafka: publish a request to `wallet.melt-requests` keyed by the npub, await
 * its verdict on `recon.preflight-results` (or the client's own reply topic), correlated by
 * request_id.
 *
 * One long-lived client shares ONE consumer for all its concurrent preflights. kafkajs has no
 * group-less consumer, so the client uses a consumer group of its own (a random id, one member:
 * every partition of the reply topic is assigned to it) that never commits. Its positions are not
 * left to the group: before the consumer starts, the end offset of every partition is read, and the
 * consumer is sought there on every (re)join, then to just past what it has read. A request is only
 * sent once that snapshot is taken, so its answer (produced after it) is always at or beyond the
 * position read from: an early answer cannot be missed, a rebalance cannot skip one.
 *
 * An answer is accepted only if it is valid against the contract and matches what was asked: the
 * same request_id, npub, normalised mint_url and proofs_digest (the SHA-256 of the request's sorted
 * Ys). Anything else is ignored and counted (a warning is logged for invalid or mismatched
 * answers). The first acceptable answer wins; a later or duplicate one is ignored. A timeout rejects
 * with `PreflightTimeoutError`: it never reads as cleared.
 */
import { randomUUID } from 'node:crypto';
import type { Consumer, Kafka, KafkaMessage, Producer } from 'kafkajs';

import { proofsDigest } from './digest.js';
import {
  PreflightClosedError,
  PreflightPublishError,
  PreflightRequestError,
  PreflightTimeoutError,
  ProofreconClientError,
} from './errors.js';
import { kafkaClient, keyedProducer, npubKey, type KafkaLike } from './kafka.js';
import { jsonLogger, type Logger } from './logger.js';
import { normaliseMintUrl } from './mint-url.js';
import { toAmount, toMeltProofRef, uniqueYs, type AmountLike, type ProofInput } from './proofs.js';
import { DEFAULT_TOPICS, type MeltRequest, type PreflightVerdict } from './types.js';
import { validateContract } from './validation.js';

export interface PreflightClientOptions {
  /** A kafkajs client, or its configuration (`{ brokers: ['127.0.0.1:9092'] }`). */
  kafka: KafkaLike;
  /** kafkajs clientId when `kafka` is a configuration. */
  clientId?: string;
  topics?: { meltRequests?: string; preflightResults?: string };
  /**
   * Have answers sent to this topic instead of `recon.preflight-results` (the request's
   * `reply_to`). It must be on the worker's allow-list (`PROOFRECON_PREFLIGHT_REPLY_TOPICS`),
   * or the request is answered INVALID_REQUEST on the default topic, which this client does not
   * read: the preflight then times out.
   */
  replyTo?: string;
  /** Prefix of the client's own consumer group id (a random suffix is added). */
  groupIdPrefix?: string;
  logger?: Logger;
  /** How long `start()` may take to connect and position the consumer (default 30 s). */
  startTimeoutMs?: number;
}

export interface PreflightParams {
  /** The user's npub: the request's Kafka key (its raw UTF-8 bytes) and `npub` field. */
  npub: string;
  /** The mint the proofs are melted at; sent and compared in its normalised form. */
  mintUrl: string;
  /** `{secret, amount, id}` (cashu-ts) or `{Y | secret, amount, keyset_id}`; only Ys are sent. */
  proofs: readonly ProofInput[];
  quoteId?: string;
  amount?: AmountLike;
  /** How long to wait for the verdict, from the call, before `PreflightTimeoutError`. */
  timeoutMs: number;
  /** The worker's own deadline for answering (`deadline_ms`); by default the worker's setting. */
  deadlineMs?: number;
}

export interface PreflightStats {
  sent: number;
  answered: number;
  timedOut: number;
  /** Undecodable, invalid against the contract, or self-contradicting answers. */
  ignoredInvalid: number;
  /** Answers to one of our request_ids whose npub, mint_url or proofs_digest did not match. */
  ignoredMismatched: number;
  /** Answers to requests this client is not waiting for (other clients' on a shared topic). */
  ignoredForeign: number;
  /** A second answer to a request already answered (at-least-once delivery). */
  ignoredDuplicate: number;
}

interface Expected {
  request_id: string;
  npub: string;
  mint_url: string;
  proofs_digest: string;
}

interface Waiter {
  expected: Expected;
  resolve(verdict: PreflightVerdict): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

const RECENT_ANSWERED = 4096;

export class PreflightClient {
  readonly replyTopic: string;
  readonly requestTopic: string;
  private readonly kafka: Kafka;
  private readonly log: Logger;
  private readonly groupId: string;
  private readonly startTimeoutMs: number;
  private readonly sendsReplyTo: boolean;
  private producer?: Producer;
  private consumer?: Consumer;
  private starting?: Promise<void>;
  private stopped = false;
  private readonly waiting = new Map<string, Waiter>();
  private readonly recentlyAnswered = new Set<string>();
  private readonly nextOffsets = new Map<number, string>();
  private readonly counters: PreflightStats = {
    sent: 0,
    answered: 0,
    timedOut: 0,
    ignoredInvalid: 0,
    ignoredMismatched: 0,
    ignoredForeign: 0,
    ignoredDuplicate: 0,
  };

  constructor(options: PreflightClientOptions) {
    this.kafka = kafkaClient(options.kafka, options.clientId ?? 'proofrecon-preflight-client');
    this.requestTopic = options.topics?.meltRequests ?? DEFAULT_TOPICS.meltRequests;
    this.replyTopic =
      options.replyTo ?? options.topics?.preflightResults ?? DEFAULT_TOPICS.preflightResults;
    this.sendsReplyTo = options.replyTo !== undefined;
    this.groupId = `${options.groupIdPrefix ?? 'proofrecon-preflight-client'}-${randomUUID()}`;
    this.log = options.logger ?? jsonLogger();
    this.startTimeoutMs = options.startTimeoutMs ?? 30_000;
  }

  /** Connect and position the consumer at the reply topic's end. Idempotent. */
  start(): Promise<void> {
    if (this.stopped) return Promise.reject(new ProofreconClientError('the client was stopped'));
    if (!this.starting) {
      this.starting = this.connect().catch(async (error: unknown) => {
        this.starting = undefined;
        await this.disconnectQuietly();
        throw error;
      });
    }
    return this.starting;
  }

  /** Counters of what was sent, answered and ignored. */
  stats(): PreflightStats {
    return { ...this.counters };
  }

  /** Preflights waiting for their verdict. */
  get pending(): number {
    return this.waiting.size;
  }

  /**
   * Ask for a melt preflight and await its verdict. Resolves with the verdict (check
   * `isCleared(verdict)` or `verdict.operation_cleared`); rejects with `PreflightTimeoutError`,
   * `PreflightRequestError` (nothing sent), `PreflightPublishError` or `PreflightClosedError`.
   */
  async preflight(params: PreflightParams): Promise<PreflightVerdict> {
    const { request, expected } = this.buildRequest(params);
    const timeoutMs = params.timeoutMs;
    const startedAt = Date.now();
    try {
      await withTimeout(this.start(), timeoutMs, () => new PreflightTimeoutError(request.request_id, timeoutMs));
    } catch (error) {
      if (error instanceof PreflightTimeoutError) throw error;
      if (this.stopped) throw new PreflightClosedError(request.request_id);
      throw new PreflightPublishError(request.request_id, error); // not connected: nothing was sent
    }
    const remaining = Math.max(0, timeoutMs - (Date.now() - startedAt));

    const answer = new Promise<PreflightVerdict>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.waiting.delete(request.request_id)) {
          this.counters.timedOut++;
          reject(new PreflightTimeoutError(request.request_id, timeoutMs));
        }
      }, remaining);
      this.waiting.set(request.request_id, { expected, resolve, reject, timer });
    });
    // It may reject (timeout, stop) while the send below is still awaited: never unhandled.
    answer.catch(() => undefined);
    // Registered before the request is sent: the earliest answer finds its waiter.
    try {
      await this.producer!.send({
        topic: this.requestTopic,
        acks: -1,
        messages: [{ key: npubKey(request.npub), value: JSON.stringify(request) }],
      });
      this.counters.sent++;
    } catch (error) {
      const waiter = this.waiting.get(request.request_id);
      if (waiter) {
        this.waiting.delete(request.request_id);
        clearTimeout(waiter.timer);
        waiter.reject(new PreflightPublishError(request.request_id, error));
      }
    }
    return answer;
  }

  /** Stop: pending preflights reject with `PreflightClosedError`. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const [requestId, waiter] of this.waiting) {
      clearTimeout(waiter.timer);
      waiter.reject(new PreflightClosedError(requestId));
    }
    this.waiting.clear();
    try {
      await this.starting;
    } catch {
      // a failed start already cleaned up
    }
    await this.disconnectQuietly();
  }

  private buildRequest(params: PreflightParams): { request: MeltRequest; expected: Expected } {
    let request: MeltRequest;
    try {
      if (!Number.isFinite(params.timeoutMs) || params.timeoutMs <= 0) {
        throw new TypeError('timeoutMs must be a positive number');
      }
      const proofs = params.proofs.map(toMeltProofRef);
      uniqueYs(proofs);
      request = {
        request_id: randomUUID(),
        npub: params.npub,
        mint_url: normaliseMintUrl(params.mintUrl),
        proofs: proofs as MeltRequest['proofs'],
        requested_at: new Date().toISOString(),
      };
      if (params.quoteId !== undefined) request.quote_id = params.quoteId;
      if (params.amount !== undefined) request.amount = toAmount(params.amount);
      if (params.deadlineMs !== undefined) request.deadline_ms = params.deadlineMs;
      if (this.sendsReplyTo) request.reply_to = this.replyTopic;
    } catch (error) {
      throw new PreflightRequestError(`invalid melt request: ${(error as Error).message}`, { cause: error });
    }
    const check = validateContract('wallet.melt-requests', request);
    if (!check.valid) throw new PreflightRequestError(`invalid melt request: ${check.error}`);
    const expected: Expected = {
      request_id: request.request_id,
      npub: request.npub,
      mint_url: request.mint_url,
      proofs_digest: proofsDigest(request.proofs.map((p) => p.Y as string)),
    };
    return { request, expected };
  }

  private async connect(): Promise<void> {
    const producer = keyedProducer(this.kafka, { idempotent: false });
    this.producer = producer;
    await producer.connect();

    // The snapshot: every partition's end, before the consumer exists.
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      if (!(await admin.listTopics()).includes(this.replyTopic)) {
        throw new ProofreconClientError(`reply topic ${this.replyTopic} does not exist`);
      }
      const offsets = await admin.fetchTopicOffsets(this.replyTopic);
      for (const { partition, high } of offsets) this.nextOffsets.set(partition, high);
    } finally {
      await admin.disconnect();
    }

    const consumer = this.kafka.consumer({
      groupId: this.groupId,
      allowAutoTopicCreation: false,
      maxWaitTimeInMs: 1000,
    });
    this.consumer = consumer;
    let joined!: () => void;
    const hasJoined = new Promise<void>((resolve) => (joined = resolve));
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      // Synchronously, before the first fetch of this generation: read from our own positions.
      const assigned = event.payload.memberAssignment[this.replyTopic] ?? [];
      for (const partition of assigned) {
        const offset = this.nextOffsets.get(partition);
        if (offset !== undefined) consumer.seek({ topic: this.replyTopic, partition, offset });
      }
      joined();
    });
    consumer.on(consumer.events.CRASH, (event) => {
      this.log.error('preflight answer consumer crashed', {
        error: String(event.payload.error?.message ?? event.payload.error),
        restart: event.payload.restart,
      });
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [this.replyTopic], fromBeginning: false });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        this.deliver(message);
        this.nextOffsets.set(partition, (BigInt(message.offset) + 1n).toString());
      },
    });
    await withTimeout(
      hasJoined,
      this.startTimeoutMs,
      () => new ProofreconClientError(`the answer consumer did not join within ${this.startTimeoutMs} ms`),
    );
  }

  private deliver(message: KafkaMessage): void {
    if (!message.value || message.value.length === 0) return;
    let answer: unknown;
    try {
      answer = JSON.parse(message.value.toString('utf8'));
    } catch {
      this.ignoreInvalid(undefined, 'not JSON');
      return;
    }
    const requestId =
      answer !== null && typeof answer === 'object' && typeof (answer as { request_id?: unknown }).request_id === 'string'
        ? (answer as { request_id: string }).request_id
        : undefined;
    const waiter = requestId === undefined ? undefined : this.waiting.get(requestId);
    if (!waiter) {
      // Most answers on a shared results topic are other clients'; validating them costs for nothing.
      if (requestId !== undefined && this.recentlyAnswered.has(requestId)) this.counters.ignoredDuplicate++;
      else if (requestId !== undefined) this.counters.ignoredForeign++;
      else this.ignoreInvalid(undefined, 'no request_id');
      return;
    }
    const check = validateContract('recon.preflight-results', answer);
    if (!check.valid) {
      this.ignoreInvalid(requestId, check.error ?? 'invalid');
      return;
    }
    const verdict = answer as PreflightVerdict;
    const blocked = verdict.verdict === 'BLOCKED';
    if (verdict.operation_cleared === blocked || (verdict.code !== null) !== blocked) {
      this.ignoreInvalid(requestId, 'verdict, code and operation_cleared disagree');
      return;
    }
    const mismatched = (['npub', 'mint_url', 'proofs_digest'] as const).filter(
      (field) => verdict[field] !== waiter.expected[field],
    );
    if (mismatched.length > 0) {
      this.counters.ignoredMismatched++;
      this.log.warn('ignored a preflight answer that does not match its request', {
        request_id: requestId,
        mismatched,
      });
      return;
    }
    this.waiting.delete(waiter.expected.request_id);
    clearTimeout(waiter.timer);
    this.remember(waiter.expected.request_id);
    this.counters.answered++;
    waiter.resolve(verdict);
  }

  private ignoreInvalid(requestId: string | undefined, reason: string): void {
    this.counters.ignoredInvalid++;
    this.log.warn('ignored an invalid preflight answer', { request_id: requestId ?? null, reason });
  }

  private remember(requestId: string): void {
    this.recentlyAnswered.add(requestId);
    if (this.recentlyAnswered.size > RECENT_ANSWERED) {
      const oldest = this.recentlyAnswered.values().next().value;
      if (oldest !== undefined) this.recentlyAnswered.delete(oldest);
    }
  }

  private async disconnectQuietly(): Promise<void> {
    const consumer = this.consumer;
    const producer = this.producer;
    this.consumer = undefined;
    this.producer = undefined;
    await Promise.allSettled([consumer?.disconnect(), producer?.disconnect()]);
    if (consumer) await this.deleteOwnGroup();
  }

  /** The client's group is its own and never committed: leave nothing behind on the broker. */
  private async deleteOwnGroup(): Promise<void> {
    const admin = this.kafka.admin();
    try {
      await admin.connect();
      await admin.deleteGroups([this.groupId]);
    } catch {
      // best effort: an empty group without offsets is the broker's to expire anyway
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }
}

/** `promise`, or a rejection with `onTimeout()` after `ms`. */
function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

