/**
 * `wallet.corrections`: status fixes for the wallet DB, applied by a callback the wallet provides.
 *
 * - Commands are idempotent by contract (set, not toggle) and carry a deterministic `command_id`;
 *   the optional `seen`/`remember` hooks let a wallet skip one it already applied (e.g. a table of
 *   applied command ids written in the same transaction as the fix).
 * - The offset is committed only after the callback (and `remember`) succeeded: no auto-commit. A
 *   failing callback is retried with jittered exponential backoff, for as long as it takes; it is
 *   never skipped. While it retries the consumer keeps its group membership (heartbeats).
 * - `stop()` is graceful: a command being applied finishes (or, if it is still failing, is left
 *   uncommitted for the next run), and nothing after it is applied.
 * - A command that is invalid against the contract, or whose Kafka key is not exactly its npub,
 *   cannot be applied: it is logged, counted, handed to `onInvalid`, and committed past.
 */
import type { Consumer, EachMessagePayload, Kafka } from 'kafkajs';

import { kafkaClient, type KafkaLike } from './kafka.js';
import { jsonLogger, type Logger } from './logger.js';
import { DEFAULT_TOPICS, type CorrectionCommand } from './types.js';
import { validateContract } from './validation.js';

export interface CorrectionContext {
  topic: string;
  partition: number;
  offset: string;
  /** 1 on the first try, then 2, 3... */
  attempt: number;
}

export interface InvalidCorrection {
  topic: string;
  partition: number;
  offset: string;
  reason: string;
}

export interface RetryOptions {
  /** First delay after a failure (default 200 ms). */
  initialMs?: number;
  /** Largest delay (default 30 s). */
  maxMs?: number;
  /** Growth per failure (default 2). */
  factor?: number;
}

export interface CorrectionsConsumerOptions {
  kafka: KafkaLike;
  clientId?: string;
  /** The wallet's consumer group: offsets are committed there. */
  groupId: string;
  topic?: string;
  /** Apply one command to the wallet DB. Throw to have it retried. */
  apply: (command: CorrectionCommand, context: CorrectionContext) => Promise<void> | void;
  /** True if `commandId` was already applied: it is then committed without calling `apply`. */
  seen?: (commandId: string) => Promise<boolean> | boolean;
  /** Called after `apply` succeeded, before the commit. */
  remember?: (commandId: string, command: CorrectionCommand) => Promise<void> | void;
  onInvalid?: (invalid: InvalidCorrection) => Promise<void> | void;
  retry?: RetryOptions;
  /** Partitions worked on at once (default 1); commands of one partition are always in order. */
  partitionsConsumedConcurrently?: number;
  /** The longest a fetch waits for new commands (default 1000 ms; also bounds stop()'s wait). */
  maxWaitTimeInMs?: number;
  /** Read a new group's partitions from their start (default true: corrections are idempotent). */
  fromBeginning?: boolean;
  logger?: Logger;
}

export interface CorrectionsStats {
  applied: number;
  skippedSeen: number;
  invalid: number;
  failures: number;
}

export class CorrectionsConsumer {
  readonly topic: string;
  readonly groupId: string;
  private readonly kafka: Kafka;
  private readonly options: CorrectionsConsumerOptions;
  private readonly log: Logger;
  private consumer?: Consumer;
  private stopping = false;
  private wake?: () => void;
  private readonly counters: CorrectionsStats = { applied: 0, skippedSeen: 0, invalid: 0, failures: 0 };

  constructor(options: CorrectionsConsumerOptions) {
    if (!options.groupId) throw new TypeError('groupId is required: the wallet names its consumer group');
    this.options = options;
    this.kafka = kafkaClient(options.kafka, options.clientId ?? 'proofrecon-corrections');
    this.topic = options.topic ?? DEFAULT_TOPICS.corrections;
    this.groupId = options.groupId;
    this.log = options.logger ?? jsonLogger();
  }

  stats(): CorrectionsStats {
    return { ...this.counters };
  }

  /** Join the group and start applying commands; resolves once the consumer runs. */
  async start(): Promise<void> {
    if (this.consumer) return;
    this.stopping = false;
    const consumer = this.kafka.consumer({
      groupId: this.groupId,
      allowAutoTopicCreation: false,
      // A fetch in flight delays stop() by up to this long.
      maxWaitTimeInMs: this.options.maxWaitTimeInMs ?? 1000,
    });
    this.consumer = consumer;
    consumer.on(consumer.events.CRASH, (event) => {
      this.log.error('corrections consumer crashed', {
        error: String(event.payload.error?.message ?? event.payload.error),
        restart: event.payload.restart,
      });
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [this.topic], fromBeginning: this.options.fromBeginning ?? true });
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: this.options.partitionsConsumedConcurrently ?? 1,
      eachMessage: (payload) => this.handle(payload),
    });
  }

  /** Stop gracefully: finish (or abandon, uncommitted) the command in hand, then leave the group. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    // The consumer stays reachable until it has left: the command in hand may still commit.
    await this.consumer?.disconnect();
    this.consumer = undefined;
  }

  private async handle({ topic, partition, message, heartbeat }: EachMessagePayload): Promise<void> {
    // Once stopping, nothing more is applied or committed (a later commit would skip this one).
    if (this.stopping) return;
    const offset = message.offset;
    const parsed = this.parse(message.key, message.value);
    if ('reason' in parsed) {
      this.counters.invalid++;
      this.log.warn('ignored an invalid correction command', { topic, partition, offset, reason: parsed.reason });
      try {
        await this.options.onInvalid?.({ topic, partition, offset, reason: parsed.reason });
      } catch (error) {
        this.log.error('onInvalid failed', { error: error instanceof Error ? error.message : String(error) });
      }
      await this.commit(topic, partition, offset);
      return;
    }
    const command = parsed.command;
    const retry = this.options.retry ?? {};
    const initial = retry.initialMs ?? 200;
    const max = retry.maxMs ?? 30_000;
    const factor = retry.factor ?? 2;
    for (let attempt = 1; ; attempt++) {
      if (this.stopping) return;
      try {
        if (this.options.seen && (await this.options.seen(command.command_id))) {
          this.counters.skippedSeen++;
        } else {
          await this.options.apply(command, { topic, partition, offset, attempt });
          await this.options.remember?.(command.command_id, command);
          this.counters.applied++;
        }
        break;
      } catch (error) {
        this.counters.failures++;
        const delay = Math.min(max, initial * factor ** (attempt - 1)) * (0.5 + Math.random() / 2);
        this.log.warn('applying a correction failed; retrying', {
          command_id: command.command_id,
          attempt,
          retry_in_ms: Math.round(delay),
          error: error instanceof Error ? error.message : String(error),
        });
        await this.pause(delay, heartbeat);
      }
    }
    if (this.stopping) {
      // Applied, but the consumer is leaving: commit what was done (a failed commit only means the
      // command is seen again, which changes nothing).
      await this.commit(topic, partition, offset).catch(() => undefined);
      return;
    }
    await this.commit(topic, partition, offset);
  }

  private parse(
    key: Buffer | null,
    value: Buffer | null,
  ): { command: CorrectionCommand } | { reason: string } {
    if (!value || value.length === 0) return { reason: 'empty message' };
    let command: unknown;
    try {
      command = JSON.parse(value.toString('utf8'));
    } catch {
      return { reason: 'not JSON' };
    }
    const check = validateContract('wallet.corrections', command);
    if (!check.valid) return { reason: check.error ?? 'invalid' };
    const typed = command as CorrectionCommand;
    if (key === null || !key.equals(Buffer.from(typed.npub, 'utf8'))) {
      return { reason: 'the Kafka key is not the command npub' };
    }
    return { command: typed };
  }

  private async commit(topic: string, partition: number, offset: string): Promise<void> {
    await this.consumer?.commitOffsets([{ topic, partition, offset: (BigInt(offset) + 1n).toString() }]);
  }

  /**
   * Sleep `ms`, heartbeating so the group keeps us; ends early when stopping. A heartbeat that
   * fails (a rebalance) throws: the command stays uncommitted for the partition's next owner.
   */
  private async pause(ms: number, heartbeat: () => Promise<void>): Promise<void> {
    const until = Date.now() + ms;
    while (!this.stopping && Date.now() < until) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, Math.min(1000, until - Date.now())));
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
      if (!this.stopping) await heartbeat();
    }
  }
}
