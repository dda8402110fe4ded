/**
 * The wallet's outbox side: token-status changes to `wallet.token-status`, keyed by the npub's raw
 * UTF-8 bytes. Proofs may be given by secret or Y; only Ys are sent.
 *
 * Versions are monotonic per token (the worker ignores an event older than one it applied). Pass the
 * version your DB keeps (e.g. a per-token counter or updated_at in ms); without one, the publisher
 * uses a millisecond clock that never goes backwards per token (at least one more than the last
 * version it published for that token).
 */
import { randomUUID } from 'node:crypto';
import type { Kafka, Producer, RecordMetadata } from 'kafkajs';

import { ContractViolationError, VersionRegressionError } from './errors.js';
import { kafkaClient, keyedProducer, npubKey, type KafkaLike } from './kafka.js';
import { normaliseMintUrl } from './mint-url.js';
import { toProofRef, uniqueYs, type ProofInput } from './proofs.js';
import { DEFAULT_TOPICS, type TokenStatus, type TokenStatusEvent } from './types.js';
import { validateContract } from './validation.js';

export interface TokenStatusPublisherOptions {
  kafka: KafkaLike;
  clientId?: string;
  topic?: string;
  /** Per-token last versions remembered to keep the clock monotonic (oldest forgotten first). */
  maxTrackedTokens?: number;
  /** The clock (ms) for versions the caller does not give; `Date.now` by default. */
  now?: () => number;
}

export interface TokenStatusChange {
  npub: string;
  tokenId: string;
  mintUrl: string;
  status: TokenStatus;
  proofs: readonly ProofInput[];
  /** Monotonic per token; by default a millisecond clock that never goes backwards per token. */
  version?: number;
  /** Stable per outbox row, so a relay re-publishing it sends the same id; random by default. */
  eventId?: string;
  occurredAt?: Date | string | number;
  transactionType?: string;
}

export interface PublishedTokenStatus {
  event: TokenStatusEvent;
  partition: number;
  offset: string;
}

export class TokenStatusPublisher {
  readonly topic: string;
  private readonly kafka: Kafka;
  private readonly maxTracked: number;
  private readonly now: () => number;
  private readonly lastVersions = new Map<string, number>();
  private producer?: Producer;
  private connecting?: Promise<void>;

  constructor(options: TokenStatusPublisherOptions) {
    this.kafka = kafkaClient(options.kafka, options.clientId ?? 'proofrecon-token-status');
    this.topic = options.topic ?? DEFAULT_TOPICS.tokenStatus;
    this.maxTracked = options.maxTrackedTokens ?? 100_000;
    this.now = options.now ?? Date.now;
  }

  start(): Promise<void> {
    if (!this.connecting) {
      const producer = keyedProducer(this.kafka);
      this.producer = producer;
      this.connecting = producer.connect().catch((error: unknown) => {
        this.connecting = undefined;
        throw error;
      });
    }
    return this.connecting;
  }

  async stop(): Promise<void> {
    const producer = this.producer;
    this.producer = undefined;
    this.connecting = undefined;
    await producer?.disconnect();
  }

  /** Build (and validate) the event for `change` without sending it; claims its version. */
  event(change: TokenStatusChange): TokenStatusEvent {
    let proofs;
    let mintUrl: string;
    try {
      proofs = change.proofs.map(toProofRef);
      uniqueYs(proofs);
      mintUrl = normaliseMintUrl(change.mintUrl);
    } catch (error) {
      throw new ContractViolationError(`invalid token-status event: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const version = this.claimVersion(change.npub, change.tokenId, change.version);
    const event: TokenStatusEvent = {
      event_id: change.eventId ?? randomUUID(),
      npub: change.npub,
      token_id: change.tokenId,
      mint_url: mintUrl,
      status: change.status,
      version,
      occurred_at: isoTime(change.occurredAt),
      proofs: proofs as TokenStatusEvent['proofs'],
    };
    if (change.transactionType !== undefined) event.transaction_type = change.transactionType;
    const check = validateContract('wallet.token-status', event);
    if (!check.valid) throw new ContractViolationError(`invalid token-status event: ${check.error}`);
    return event;
  }

  /** Publish a token's status change; resolves once Kafka acknowledged it (acks=all). */
  async publish(change: TokenStatusChange): Promise<PublishedTokenStatus> {
    const event = this.event(change);
    await this.start();
    const [meta] = (await this.producer!.send({
      topic: this.topic,
      acks: -1,
      messages: [{ key: npubKey(event.npub), value: JSON.stringify(event) }],
    })) as [RecordMetadata];
    return { event, partition: meta.partition, offset: meta.baseOffset ?? meta.offset ?? '' };
  }

  private claimVersion(npub: string, tokenId: string, given: number | undefined): number {
    const key = `${npub}\u0000${tokenId}`;
    const last = this.lastVersions.get(key);
    let version: number;
    if (given !== undefined) {
      if (!Number.isSafeInteger(given) || given < 0) {
        throw new ContractViolationError('version must be a non-negative integer');
      }
      // The same version again is a re-publish (an outbox relay retrying): idempotent, allowed.
      if (last !== undefined && given < last) {
        throw new VersionRegressionError(
          `version ${given} of token ${tokenId} is below ${last}, already published: the worker would ignore it`,
        );
      }
      version = given;
    } else {
      version = Math.max(Math.floor(this.now()), (last ?? -1) + 1);
    }
    this.lastVersions.delete(key); // re-inserted last: the map's order is least recently used first
    this.lastVersions.set(key, version);
    if (this.lastVersions.size > this.maxTracked) {
      const oldest = this.lastVersions.keys().next().value;
      if (oldest !== undefined) this.lastVersions.delete(oldest);
    }
    return version;
  }
}

function isoTime(value: Date | string | number | undefined): string {
  if (value === undefined) return new Date().toISOString();
  if (typeof value === 'string') return value;
  return new Date(value).toISOString();
}
