/**
 * Preflight round trip, melt request published -> verdict consumed, at a fixed rate (open loop):
 * this package's PreflightClient and, in the same run against the same worker, the Python client
 * (`streams.client.PreflightClient`, via bench/python_preflight_bench.py). Prints p50/p99 of both.
 *
 *   npm run bench                                  # 50 requests/s, 30 s each
 *   npm run bench -- --rate 50 --duration 30
 *
 * The worker is started here with topics of its own (as the tests do); its mint budget for the
 * local mint is lifted (the stack's mint is exempt from rate limits), the ClickHouse sink is off.
 * Ten users hold 3 real proofs each (minted with cashu-ts, recorded unspent in the ledger); each melt
 * names one user's 3 proofs. Order: Node for half the duration, Python for the whole, Node again:
 * drift in the shared machine's load hits both. A request left unanswered counts as the timeout.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Wallet, type Proof } from '@cashu/cashu-ts';

import { mintProofs, waitForLedger } from '../examples/melt.js';
import { PreflightClient, PreflightTimeoutError, TokenStatusPublisher, silentLogger, toProofRef } from '../src/index.js';
import { PACKAGE_ROOT, PYTHON, REPO_ROOT } from '../test/support/paths.js';
import { pythonEnv } from '../test/support/python.js';
import { BROKERS, MINT_URL, TestWorker, randomId } from '../test/support/worker.js';

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '50' },
    duration: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '2' },
    timeout: { type: 'string', default: '10' },
  },
});
const RATE = Number(values.rate);
const DURATION_S = Number(values.duration);
const WARMUP_S = Number(values.warmup);
const TIMEOUT_S = Number(values.timeout);
const USERS = 10;
const PROOFS_PER_MELT = 3;

interface Sample {
  sent: number;
  latenciesMs: number[];
  outcomes: Record<string, number>;
  /** Where the time went (ms; wall clocks of one machine): published -> the worker starts on it,
   *  inside the worker (its duration_ms), its answered_at -> the verdict consumed. */
  legs?: { toWorker: number[]; inWorker: number[]; toClient: number[] };
}

const newSample = (): Sample => ({ sent: 0, latenciesMs: [], outcomes: {}, legs: { toWorker: [], inWorker: [], toClient: [] } });

function summary(latencies: number[]): Record<string, number> {
  const sorted = [...latencies].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
  const round = (v: number) => Math.round(v * 10) / 10;
  return {
    count: sorted.length,
    p50_ms: round(at(0.5)),
    p90_ms: round(at(0.9)),
    p99_ms: round(at(0.99)),
    max_ms: round(sorted[sorted.length - 1] ?? NaN),
    mean_ms: round(sorted.reduce((s, v) => s + v, 0) / (sorted.length || 1)),
  };
}

function legs(sample: Sample) {
  const pick = (values: number[]) => {
    const { p50_ms, p99_ms } = summary(values);
    return { p50_ms: p50_ms!, p99_ms: p99_ms! };
  };
  return {
    toWorker: pick(sample.legs?.toWorker ?? []),
    inWorker: pick(sample.legs?.inWorker ?? []),
    toClient: pick(sample.legs?.toClient ?? []),
  };
}

async function driveNode(client: PreflightClient, tokens: { npub: string; proofs: Proof[] }[], seconds: number, sample: Sample): Promise<void> {
  const count = Math.round(RATE * seconds);
  const start = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const delay = start + (i * 1000) / RATE - performance.now();
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    const token = tokens[i % tokens.length]!;
    const began = performance.now();
    const sentAt = Date.now();
    pending.push(
      client.preflight({ npub: token.npub, mintUrl: MINT_URL, proofs: token.proofs, timeoutMs: TIMEOUT_S * 1000 }).then(
        (verdict) => {
          sample.latenciesMs.push(performance.now() - began);
          const answeredAt = Date.parse(verdict.answered_at);
          sample.legs?.toWorker.push(answeredAt - verdict.duration_ms - sentAt);
          sample.legs?.inWorker.push(verdict.duration_ms);
          sample.legs?.toClient.push(Date.now() - answeredAt);
          const key = `${verdict.verdict}/${verdict.code ?? '-'}`;
          sample.outcomes[key] = (sample.outcomes[key] ?? 0) + 1;
        },
        (error: unknown) => {
          sample.latenciesMs.push(TIMEOUT_S * 1000);
          const key = error instanceof PreflightTimeoutError ? 'unanswered' : `error/${(error as Error).name}`;
          sample.outcomes[key] = (sample.outcomes[key] ?? 0) + 1;
        },
      ),
    );
    sample.sent++;
  }
  await Promise.all(pending);
}

async function drivePython(worker: TestWorker, tokens: { npub: string; proofs: Proof[] }[]): Promise<Sample> {
  const params = {
    rate: RATE,
    duration_s: DURATION_S,
    warmup_s: WARMUP_S,
    timeout_s: TIMEOUT_S,
    mint_url: MINT_URL,
    tokens: tokens.map((t) => ({ npub: t.npub, proofs: t.proofs.map(toProofRef) })),
  };
  const child = spawn(PYTHON, [join(PACKAGE_ROOT, 'bench', 'python_preflight_bench.py')], {
    cwd: REPO_ROOT,
    env: pythonEnv(worker.env()),
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  child.stdin.end(JSON.stringify(params));
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`the Python bench exited with ${code}`);
  const parsed = JSON.parse(out.trim().split('\n').pop()!) as {
    sent: number;
    latencies_ms: number[];
    outcomes: Record<string, number>;
    legs: { to_worker: number[]; in_worker: number[]; to_client: number[] };
  };
  return {
    sent: parsed.sent,
    latenciesMs: parsed.latencies_ms,
    outcomes: parsed.outcomes,
    legs: { toWorker: parsed.legs.to_worker, inWorker: parsed.legs.in_worker, toClient: parsed.legs.to_client },
  };
}

async function main(): Promise<void> {
  const worker = new TestWorker({
    env: {
      PROOFRECON_MINT_REQUESTS_PER_MINUTE: '60000',
      PROOFRECON_MINT_BURST: '1000',
      PROOFRECON_MINT_LIMITER_MODEL: 'none',
      PROOFRECON_MINT_DEFAULT_DEADLINE_MS: '5000',
    },
  });
  const kafka = { brokers: BROKERS, clientId: 'proofrecon-bench' };
  const wallet = new Wallet(MINT_URL, { unit: 'sat' });
  console.error(`bench: starting a worker, minting ${USERS * PROOFS_PER_MELT} proofs at ${MINT_URL}`);
  const [, minted] = await Promise.all([worker.start(), wallet.loadMint().then(() => mintProofs(wallet, USERS * PROOFS_PER_MELT, 8))]);
  const client = new PreflightClient({
    kafka,
    topics: { meltRequests: worker.topics.MELT_REQUESTS, preflightResults: worker.topics.PREFLIGHT_RESULTS },
    logger: silentLogger,
  });
  const publisher = new TokenStatusPublisher({ kafka, topic: worker.topics.TOKEN_STATUS });
  try {
    const tokens = Array.from({ length: USERS }, (_, i) => ({
      npub: `npub1bench${randomId(8)}${i}`,
      proofs: minted.slice(i * PROOFS_PER_MELT, (i + 1) * PROOFS_PER_MELT),
    }));
    for (const t of tokens) {
      await publisher.publish({ npub: t.npub, tokenId: `tok-${randomId()}`, mintUrl: MINT_URL, status: 'unspent', proofs: t.proofs });
    }
    for (const t of tokens) await waitForLedger(worker.url, t.npub, t.proofs, 'unspent', { authToken: worker.authToken });
    await client.start();

    const node = newSample();
    await driveNode(client, tokens, WARMUP_S, newSample());
    console.error(`bench: node, ${RATE}/s for ${DURATION_S / 2} s`);
    await driveNode(client, tokens, DURATION_S / 2, node);
    console.error(`bench: python, ${RATE}/s for ${DURATION_S} s (after ${WARMUP_S} s of warm-up)`);
    const python = await drivePython(worker, tokens);
    console.error(`bench: node, ${RATE}/s for ${DURATION_S / 2} s`);
    await driveNode(client, tokens, DURATION_S / 2, node);

    const result = {
      bench: 'preflight round trip (published -> verdict consumed)',
      at: new Date().toISOString(),
      load_average_1m_at_end: Math.round(loadavg()[0]! * 100) / 100,
      params: { rate: RATE, duration_s: DURATION_S, warmup_s: WARMUP_S, timeout_s: TIMEOUT_S, users: USERS, proofs_per_melt: PROOFS_PER_MELT },
      node: { sent: node.sent, outcomes: node.outcomes, latency: summary(node.latenciesMs), legs: legs(node) },
      python: { sent: python.sent, outcomes: python.outcomes, latency: summary(python.latenciesMs), legs: legs(python) },
    };
    const dir = join(PACKAGE_ROOT, '.bench');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'preflight-bench.json'), JSON.stringify(result, null, 2) + '\n');
    const row = (name: string, s: typeof result.node) =>
      `${name.padEnd(8)} ${String(s.sent).padStart(6)} ${String(s.latency.p50_ms).padStart(8)} ${String(s.latency.p90_ms).padStart(8)} ${String(s.latency.p99_ms).padStart(8)} ${String(s.latency.max_ms).padStart(8)}  ${JSON.stringify(s.outcomes)}`;
    console.log(`preflight round trip at ${RATE}/s, ${DURATION_S} s each (ms); load average ${result.load_average_1m_at_end}`);
    console.log(`${'client'.padEnd(8)} ${'sent'.padStart(6)} ${'p50'.padStart(8)} ${'p90'.padStart(8)} ${'p99'.padStart(8)} ${'max'.padStart(8)}  outcomes`);
    console.log(row('node', result.node));
    console.log(row('python', result.python));
    console.log('legs p50/p99 (ms): published -> worker starts | inside the worker | answered -> consumed');
    for (const [name, s] of [['node', result.node], ['python', result.python]] as const) {
      const l = s.legs;
      console.log(`${name.padEnd(8)} ${l.toWorker.p50_ms}/${l.toWorker.p99_ms} | ${l.inWorker.p50_ms}/${l.inWorker.p99_ms} | ${l.toClient.p50_ms}/${l.toClient.p99_ms}`);
    }
  } finally {
    await Promise.allSettled([client.stop(), publisher.stop()]);
    await worker.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
