/**
 * CorrectionsConsumer against real Kafka (commands produced here, as the worker would): each
 * command applied once across a graceful restart of the same group; a failing callback retried and
 * applied exactly once, never skipped (not even across a stop); seen/remember; invalid commands.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Producer } from 'kafkajs';

import { CorrectionsConsumer, silentLogger, yOf, type CorrectionCommand } from '../src/index.js';
import { BROKERS, deleteGroups, deleteTopics, kafka, randomId } from './support/worker.js';

const prefix = `tnodecorr${randomId()}.`;
const topic = `${prefix}wallet.corrections`;
let producer: Producer;
const groups: string[] = [];
/** A fresh consumer group for one test, deleted at the end. */
const newGroup = (): string => {
  const group = `tnode-wallet-${randomId()}`;
  groups.push(group);
  return group;
};

function command(n: number, npub = `npub1corr${n % 3}`): CorrectionCommand {
  return {
    command_id: `cmd-${randomId()}-${n}`,
    npub,
    token_id: `tok-${n}`,
    mint_url: 'http://127.0.0.1:3338',
    Ys: [yOf(`corr-secret-${n}-${randomId()}`)],
    set_status: 'spent',
    reason: 'DB_UNSPENT_MINT_SPENT',
    discrepancy_event_ids: [`ev-${n}`],
    issued_at: new Date().toISOString(),
  };
}

async function send(commands: CorrectionCommand[]): Promise<void> {
  await producer.send({
    topic,
    acks: -1,
    messages: commands.map((c) => ({ key: c.npub, value: JSON.stringify(c) })),
  });
}

async function until(condition: () => boolean, timeoutMs = 20_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function consumer(groupId: string, apply: (c: CorrectionCommand) => Promise<void> | void, extra: Partial<ConstructorParameters<typeof CorrectionsConsumer>[0]> = {}) {
  return new CorrectionsConsumer({
    kafka: { brokers: BROKERS, clientId: 'tnode-corrections' },
    topic,
    groupId,
    apply,
    retry: { initialMs: 50, maxMs: 200 },
    logger: silentLogger,
    ...extra,
  });
}

describe('CorrectionsConsumer', () => {
  before(async () => {
    const admin = kafka().admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
    await admin.disconnect();
    producer = kafka().producer();
    await producer.connect();
  });
  after(async () => {
    await producer.disconnect();
    await deleteGroups(groups);
    await deleteTopics(prefix);
  });

  it('applies each command once across a graceful restart of the same group', async () => {
    const group = newGroup();
    const applied = new Map<string, number>();
    const apply = (c: CorrectionCommand) => void applied.set(c.command_id, (applied.get(c.command_id) ?? 0) + 1);
    const first = Array.from({ length: 6 }, (_, i) => command(i));
    await send(first);

    const a = consumer(group, apply);
    await a.start();
    await until(() => first.every((c) => applied.has(c.command_id)), 20_000, 'the first commands');
    await a.stop();

    const second = Array.from({ length: 3 }, (_, i) => command(10 + i));
    await send(second);
    const b = consumer(group, apply);
    await b.start();
    await until(() => second.every((c) => applied.has(c.command_id)), 20_000, 'the second commands');
    await new Promise((r) => setTimeout(r, 500)); // room for a wrong re-delivery to show
    await b.stop();

    for (const c of [...first, ...second]) assert.equal(applied.get(c.command_id), 1, `${c.command_id} applied once`);
    assert.equal(b.stats().applied, second.length);
  });

  it('retries a callback that fails once, and applies its command exactly once', async () => {
    const group = newGroup();
    const commands = [command(20, 'npub1retry'), command(21, 'npub1retry'), command(22, 'npub1retry')];
    await send(commands);
    const calls: string[] = [];
    const done = new Map<string, number>();
    let failed = false;
    const c = consumer(group, (cmd) => {
      if (!commands.some((x) => x.command_id === cmd.command_id)) return;
      calls.push(cmd.command_id);
      if (cmd.command_id === commands[1]!.command_id && !failed) {
        failed = true;
        throw new Error('the wallet DB is briefly unavailable');
      }
      done.set(cmd.command_id, (done.get(cmd.command_id) ?? 0) + 1);
    });
    await c.start();
    await until(() => commands.every((x) => done.has(x.command_id)), 20_000, 'all three');
    await c.stop();
    assert.deepEqual(
      calls,
      [commands[0]!.command_id, commands[1]!.command_id, commands[1]!.command_id, commands[2]!.command_id],
      'the failed one was retried before the next one (never skipped)',
    );
    for (const x of commands) assert.equal(done.get(x.command_id), 1);
    assert.equal(c.stats().failures, 1);
  });

  it('never skips a failing command: after a stop it is applied by the next run', async () => {
    const group = newGroup();
    const stuck = command(30, 'npub1stuck');
    const next = command(31, 'npub1stuck');
    await send([stuck, next]);
    let attempts = 0;
    const failing = consumer(group, (cmd) => {
      if (cmd.command_id === stuck.command_id) {
        attempts++;
        throw new Error('always failing');
      }
      if (cmd.command_id === next.command_id) throw new Error('must not be reached while the first fails');
    });
    await failing.start();
    await until(() => attempts >= 3, 20_000, 'three failed attempts');
    await failing.stop();

    const applied: string[] = [];
    const working = consumer(group, (cmd) => {
      if (cmd.npub === 'npub1stuck') applied.push(cmd.command_id);
    });
    await working.start();
    await until(() => applied.length >= 2, 20_000, 'both applied');
    await working.stop();
    assert.deepEqual(applied, [stuck.command_id, next.command_id]);
  });

  it('skips what seen() knows, and remembers what it applied', async () => {
    const group = newGroup();
    const known = command(40, 'npub1seen');
    const fresh = command(41, 'npub1seen');
    await send([known, fresh]);
    const memory = new Set([known.command_id]);
    const applied: string[] = [];
    const c = consumer(group, (cmd) => void (cmd.npub === 'npub1seen' && applied.push(cmd.command_id)), {
      seen: (id) => memory.has(id),
      remember: (id) => void memory.add(id),
    });
    await c.start();
    await until(() => memory.has(fresh.command_id), 20_000, 'the fresh command');
    await c.stop();
    assert.deepEqual(applied, [fresh.command_id]);
    assert.ok(c.stats().skippedSeen >= 1);
  });

  it('commits past invalid commands: malformed, or keyed by another npub', async () => {
    const group = newGroup();
    const wrongKey = command(50, 'npub1victim');
    const good = command(51, 'npub1invalid');
    await producer.send({
      topic,
      acks: -1,
      messages: [
        { key: 'npub1invalid', value: '{"command_id": "broken' },
        { key: 'npub1invalid', value: JSON.stringify({ ...command(52, 'npub1invalid'), set_status: 'vanished' }) },
        { key: 'npub1attacker', value: JSON.stringify(wrongKey) },
        { key: 'npub1invalid', value: JSON.stringify(good) },
      ],
    });
    const applied: string[] = [];
    const invalid: string[] = [];
    const c = consumer(group, (cmd) => void applied.push(cmd.command_id), {
      onInvalid: (i) => void invalid.push(i.reason),
    });
    await c.start();
    // The command keyed by another npub may sit on another partition: wait for all three.
    await until(() => applied.includes(good.command_id) && invalid.length >= 3, 20_000, 'every command');
    await c.stop();
    assert.ok(!applied.includes(wrongKey.command_id), 'a command keyed by another npub is not applied');
    assert.ok(invalid.some((r) => r.includes('key')));
    assert.ok(invalid.length >= 3);
  });
});
