/**
 * A `proofrecon worker` of the tests' own: its own topics (a unique prefix), consumer group, data
 * directory and web port, so nothing collides with other tests or other engineers' runs. Ready when
 * GET /readyz answers 200. `stop()` ends it and deletes its topics.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, closeSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import kafkajs from 'kafkajs';

import { PROOFRECON_CLI, REPO_ROOT } from './paths.js';
import { pythonEnv } from './python.js';

export const BROKERS = (process.env.PROOFRECON_KAFKA_BOOTSTRAP_SERVERS ?? '127.0.0.1:9092').split(',');
export const MINT_URL = process.env.PROOFRECON_NODE_TEST_MINT_URL ?? 'http://127.0.0.1:3338';

/** The worker's topic settings (PROOFRECON_TOPIC_<NAME>) and their suffixes. */
const TOPIC_FIELDS = {
  TOKEN_STATUS: 'wallet.token-status',
  MELT_REQUESTS: 'wallet.melt-requests',
  PREFLIGHT_RESULTS: 'recon.preflight-results',
  DISCREPANCIES: 'recon.discrepancies',
  CORRECTIONS: 'wallet.corrections',
  PROOF_CHECKS: 'recon.proof-checks',
  ALERTS: 'recon.alerts',
  DEAD_LETTER: 'recon.dead-letter',
  FINDINGS: 'recon.findings',
  ALERTS_INPUT: 'recon.alerts-input',
} as const;

export type TopicField = keyof typeof TOPIC_FIELDS;

export function kafka(clientId = 'proofrecon-node-tests'): kafkajs.Kafka {
  return new kafkajs.Kafka({ brokers: BROKERS, clientId, logLevel: kafkajs.logLevel.WARN });
}

/** A TCP port free right now (nobody listens on it once this returns). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export function randomId(bytes = 5): string {
  return randomBytes(bytes).toString('hex');
}

/** Delete every topic whose name starts with one of `prefixes`. */
export async function deleteTopics(...prefixes: string[]): Promise<string[]> {
  const admin = kafka().admin();
  await admin.connect();
  try {
    const names = (await admin.listTopics()).filter((t) => prefixes.some((p) => t.startsWith(p)));
    if (names.length > 0) await admin.deleteTopics({ topics: names, timeout: 30_000 });
    return names;
  } finally {
    await admin.disconnect();
  }
}

/** Delete consumer groups (those that committed offsets outlive their members). */
export async function deleteGroups(groupIds: string[]): Promise<void> {
  if (groupIds.length === 0) return;
  const admin = kafka().admin();
  await admin.connect();
  try {
    await admin.deleteGroups(groupIds);
  } catch {
    // a group that never committed is already gone
  } finally {
    await admin.disconnect();
  }
}

export interface TestWorkerOptions {
  /** Topics the worker may answer on (`reply_to`) besides its results topic, named by their
   *  suffix after the worker's prefix. */
  replyTopicSuffixes?: string[];
  env?: Record<string, string>;
}

export class TestWorker {
  readonly prefix = `tnode${randomId()}.`;
  readonly appId = `proofrecon-test-node-${randomId()}`;
  readonly authToken = randomId(16);
  readonly dataDir = mkdtempSync(join(tmpdir(), 'proofrecon-node-worker-'));
  readonly topics: Record<TopicField, string>;
  webPort = 0;
  /** An allow-listed mint where nothing listens: its truth can never be had. */
  downMintUrl = '';
  private proc?: ChildProcess;
  private exited?: Promise<number | null>;

  constructor(private readonly options: TestWorkerOptions = {}) {
    this.topics = Object.fromEntries(
      Object.entries(TOPIC_FIELDS).map(([field, name]) => [field, `${this.prefix}${name}`]),
    ) as Record<TopicField, string>;
  }

  get url(): string {
    return `http://127.0.0.1:${this.webPort}`;
  }

  get logPath(): string {
    return join(this.dataDir, 'worker.log');
  }

  env(): Record<string, string> {
    const env: Record<string, string> = {
      PROOFRECON_KAFKA_BOOTSTRAP_SERVERS: BROKERS.join(','),
      PROOFRECON_KAFKA_APP_ID: this.appId,
      PROOFRECON_DATA_DIR: join(this.dataDir, 'data'),
      PROOFRECON_WEB_PORT: String(this.webPort),
      PROOFRECON_WEB_AUTH_TOKEN: this.authToken,
      PROOFRECON_MINT_ALLOWLIST: `${MINT_URL},${this.downMintUrl}`,
      PROOFRECON_MINT_DEFAULT_DEADLINE_MS: '1500',
      PROOFRECON_MINT_MAX_RETRIES: '1',
      PROOFRECON_SWEEP_ENABLED: 'false',
      PROOFRECON_CLICKHOUSE_SINK_ENABLED: 'false',
      PROOFRECON_ALERT_ENABLED: 'false',
      // Reply topics besides the results topic (which is always allowed); the worker creates them.
      PROOFRECON_PREFLIGHT_REPLY_TOPICS: (this.options.replyTopicSuffixes ?? []).map((suffix) => this.prefix + suffix).join(','),
      ...this.options.env,
    };
    for (const [field, name] of Object.entries(this.topics)) env[`PROOFRECON_TOPIC_${field}`] = name;
    return env;
  }

  async start(timeoutMs = 90_000): Promise<this> {
    this.webPort = await freePort();
    this.downMintUrl = `http://127.0.0.1:${await freePort()}`;
    const log = openSync(this.logPath, 'a');
    const command = process.env.PROOFRECON_NODE_TEST_WORKER ?? PROOFRECON_CLI;
    this.proc = spawn(command, ['worker'], {
      cwd: REPO_ROOT,
      env: pythonEnv(this.env()),
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    this.exited = new Promise((resolve) => this.proc!.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) {
        throw new Error(`the worker exited (${this.proc.exitCode}):\n${this.tail()}`);
      }
      try {
        const response = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2000) });
        if (response.status === 200) return this;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`the worker was not ready within ${timeoutMs} ms:\n${this.tail()}`);
  }

  /** SIGTERM, SIGKILL after `graceMs`; then delete its topics (ours and its tables' changelogs,
   *  named after its app id) and its data directory. */
  async stop(graceMs = 20_000): Promise<void> {
    const proc = this.proc;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    if (process.env.PROOFRECON_TEST_KEEP_TOPICS !== '1') {
      await deleteTopics(this.prefix, `${this.appId}-`).catch((error: unknown) => console.error('deleting topics failed', error));
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  tail(lines = 40): string {
    try {
      return readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  logText(): string {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** GET on the worker's web API, with its bearer token. */
  async get(path: string): Promise<Response> {
    return fetch(`${this.url}${path}`, { headers: { authorization: `Bearer ${this.authToken}` } });
  }
}

/** Read `topic` from its start until `until(records)` holds (JSON values; `_key` holds the key). */
export async function readTopic(
  topic: string,
  until: (records: Record<string, unknown>[]) => boolean,
  timeoutMs = 20_000,
): Promise<Record<string, unknown>[]> {
  const groupId = `tnode-reader-${randomId()}`;
  const consumer = kafka().consumer({ groupId });
  const records: Record<string, unknown>[] = [];
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ message }) => {
        const value = message.value ? (JSON.parse(message.value.toString('utf8')) as Record<string, unknown>) : {};
        value._key = message.key?.toString('utf8') ?? null;
        records.push(value);
        if (until(records)) done();
      },
    });
    const timer = setTimeout(done, timeoutMs);
    await finished;
    clearTimeout(timer);
  } finally {
    await consumer.disconnect();
    await deleteGroups([groupId]);
  }
  if (!until(records)) throw new Error(`${topic}: condition not met in ${timeoutMs} ms (${records.length} records)`);
  return records;
}
