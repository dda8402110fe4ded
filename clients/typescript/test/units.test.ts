/** What needs no Kafka, no mint and no worker. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';

import {
  ContractViolationError,
  PreflightClient,
  PreflightRequestError,
  TokenStatusPublisher,
  VersionRegressionError,
  isCleared,
  normaliseMintUrl,
  partitionForKey,
  proofsDigest,
  toAmount,
  toMeltProofRef,
  topicsFromEnv,
  validateContract,
  yOf,
  type PreflightVerdict,
} from '../src/index.js';

const KEYSET = '017b12eb326353030d816bd844670a8be83fc9a8af2c8d79922ec899aa5d148f21';

describe('mint URL normalisation', () => {
  const cases: [string, string][] = [
    ['http://127.0.0.1:3338', 'http://127.0.0.1:3338'],
    ['  http://127.0.0.1:3338/  ', 'http://127.0.0.1:3338'],
    ['https://Mint.Example.COM/', 'https://mint.example.com'],
    ['HTTPS://MINT.example.com/Cashu/API//', 'https://mint.example.com/Cashu/API'],
    ['https://mint.example.com:443/x', 'https://mint.example.com/x'],
    ['http://mint.example.com:80', 'http://mint.example.com'],
    ['http://mint.example.com:8080/', 'http://mint.example.com:8080'],
    ['http://[::1]:3338/', 'http://[::1]:3338'],
  ];
  for (const [input, expected] of cases) {
    it(`${JSON.stringify(input)} -> ${expected}`, () => assert.equal(normaliseMintUrl(input), expected));
  }
  for (const bad of ['', 'mint.example.com', 'ftp://mint.example.com', 'http://', 'http://a b', 'https://u:p@mint.example.com', 'https://mint.example.com/?x=1', 'https://mint.example.com#f', 'http://host:99999']) {
    it(`refuses ${JSON.stringify(bad)}`, () => assert.throws(() => normaliseMintUrl(bad), TypeError));
  }
});

describe('proofs_digest', () => {
  it('is the SHA-256 of the sorted lowercase Ys joined by newlines', () => {
    const ys = [yOf('b'), yOf('a'), yOf('c')];
    const expected = createHash('sha256').update([...ys].sort().join('\n'), 'utf8').digest('hex');
    assert.equal(proofsDigest(ys), expected);
    assert.equal(proofsDigest(ys.map((y) => y.toUpperCase())), expected);
    assert.equal(proofsDigest([...ys].reverse()), expected);
    assert.notEqual(proofsDigest(ys.slice(1)), expected);
    assert.equal(proofsDigest([ys[0]!]), createHash('sha256').update(ys[0]!).digest('hex')); // no trailing newline
  });
});

describe('proof references', () => {
  it('turns a cashu-ts proof into {Y, amount, keyset_id}, never keeping the secret', () => {
    const ref = toMeltProofRef({ secret: 's1', amount: 8, id: KEYSET, C: '02ab' });
    assert.deepEqual(ref, { Y: yOf('s1'), amount: 8, keyset_id: KEYSET });
    assert.ok(!JSON.stringify(ref).includes('s1'));
  });
  it('takes {Y, amount, keyset_id} as is (Y lowercased)', () => {
    const y = yOf('s2');
    assert.deepEqual(toMeltProofRef({ Y: y.toUpperCase().replace(/^0/, '0'), amount: 2n, keyset_id: 'k1', token_id: 't' }), {
      Y: y,
      amount: 2,
      keyset_id: 'k1',
      token_id: 't',
    });
  });
  it('checks that a given secret and Y agree', () => {
    assert.throws(() => toMeltProofRef({ secret: 's1', Y: yOf('s2'), amount: 1, keyset_id: 'k' }), /disagree/);
  });
  it('refuses a proof without secret or Y, a bad Y, or no keyset', () => {
    assert.throws(() => toMeltProofRef({ amount: 1, keyset_id: 'k' }));
    assert.throws(() => toMeltProofRef({ Y: '02' + 'f'.repeat(64), amount: 1, keyset_id: 'k' }));
    assert.throws(() => toMeltProofRef({ secret: 'x', amount: 1 } as never));
  });
  it('accepts amounts as numbers, bigints and amount objects', () => {
    assert.equal(toAmount(8), 8);
    assert.equal(toAmount(8n), 8);
    assert.equal(toAmount({ toBigInt: () => 16n }), 16);
    assert.equal(toAmount({ toString: () => '32' }), 32);
    for (const bad of [0, -1, 1.5, 2 ** 60, '8' as never, null as never]) assert.throws(() => toAmount(bad));
  });
});

function verdict(overrides: Partial<PreflightVerdict> = {}): PreflightVerdict {
  return {
    request_id: 'r1',
    npub: 'npub1x',
    mint_url: 'http://127.0.0.1:3338',
    operation_cleared: true,
    verdict: 'CLEARED',
    code: null,
    discrepancies_found: 0,
    discrepancies_resolved: 0,
    severity_counts: { HIGH: 0, MEDIUM: 0, LOW: 0 },
    discrepancies: [],
    checked_proofs: 1,
    duration_ms: 1.5,
    answered_at: '2026-01-01T00:00:00.000Z',
    proofs_digest: proofsDigest([yOf('a')]),
    truth: 'checkstate',
    ...overrides,
  };
}

describe('contract validation', () => {
  it('accepts a well-formed answer, with fields it does not know', () => {
    assert.ok(validateContract('recon.preflight-results', { ...verdict(), something_new: 1 }).valid);
  });
  it('refuses malformed answers', () => {
    const { verdict: _drop, ...missing } = verdict();
    for (const bad of [missing, { ...verdict(), verdict: 'MAYBE' }, { ...verdict(), operation_cleared: 'yes' }, { ...verdict(), answered_at: 'yesterday' }, null, []]) {
      assert.equal(validateContract('recon.preflight-results', bad).valid, false);
    }
  });
  it('validates correction commands', () => {
    const command = {
      command_id: 'c1',
      npub: 'npub1x',
      token_id: 't1',
      mint_url: 'http://127.0.0.1:3338',
      Ys: [yOf('a')],
      set_status: 'spent',
      reason: 'DB_UNSPENT_MINT_SPENT',
      discrepancy_event_ids: ['e1'],
      issued_at: '2026-01-01T00:00:00.000Z',
    };
    assert.ok(validateContract('wallet.corrections', command).valid);
    assert.equal(validateContract('wallet.corrections', { ...command, Ys: [] }).valid, false);
    assert.equal(validateContract('wallet.corrections', { ...command, set_status: 'gone' }).valid, false);
  });
});

describe('isCleared', () => {
  it('is true only for a cleared verdict without a code', () => {
    assert.ok(isCleared(verdict()));
    assert.ok(isCleared(verdict({ verdict: 'CLEARED_AFTER_RECONCILIATION' })));
    assert.ok(!isCleared(verdict({ verdict: 'BLOCKED', operation_cleared: false, code: 'MINT_UNAVAILABLE' })));
    assert.ok(!isCleared(verdict({ verdict: 'BLOCKED' })));
    assert.ok(!isCleared(verdict({ code: 'HIGH_SEVERITY_DISCREPANCIES' })));
    assert.ok(!isCleared(null));
    assert.ok(!isCleared(undefined));
  });
});

describe('PreflightClient requests', () => {
  const client = new PreflightClient({ kafka: { brokers: ['127.0.0.1:1'] } });
  it('refuses an invalid request before anything is sent', async () => {
    const base = { npub: 'npub1x', mintUrl: 'http://127.0.0.1:3338', timeoutMs: 1000 };
    await assert.rejects(client.preflight({ ...base, proofs: [] }), PreflightRequestError);
    await assert.rejects(client.preflight({ ...base, mintUrl: 'ftp://x', proofs: [{ secret: 'a', amount: 1, id: 'k' }] }), PreflightRequestError);
    await assert.rejects(client.preflight({ ...base, npub: 'has space', proofs: [{ secret: 'a', amount: 1, id: 'k' }] }), PreflightRequestError);
    await assert.rejects(
      client.preflight({ ...base, proofs: [{ secret: 'a', amount: 1, id: 'k' }, { Y: yOf('a'), amount: 1, keyset_id: 'k' }] }),
      /more than once/,
    );
    await assert.rejects(client.preflight({ ...base, timeoutMs: 0, proofs: [{ secret: 'a', amount: 1, id: 'k' }] }), PreflightRequestError);
    assert.equal(client.stats().sent, 0);
  });
});

describe('TokenStatusPublisher events', () => {
  it('sends Ys only, with the normalised mint URL', () => {
    const publisher = new TokenStatusPublisher({ kafka: { brokers: ['127.0.0.1:1'] } });
    const event = publisher.event({
      npub: 'npub1x',
      tokenId: 't1',
      mintUrl: 'HTTP://127.0.0.1:3338/',
      status: 'unspent',
      proofs: [{ secret: 'topsecret-1', amount: 8, id: KEYSET }, { Y: yOf('other'), amount: 2, keyset_id: KEYSET }],
    });
    assert.equal(event.mint_url, 'http://127.0.0.1:3338');
    assert.deepEqual(event.proofs.map((p) => p.Y), [yOf('topsecret-1'), yOf('other')]);
    assert.ok(!JSON.stringify(event).includes('topsecret'));
    assert.ok(validateContract('wallet.token-status', event).valid);
  });
  it('keeps versions monotonic per token on a clock that goes backwards', () => {
    let now = 1_000_000;
    const publisher = new TokenStatusPublisher({ kafka: { brokers: ['127.0.0.1:1'] }, now: () => now });
    const change = { npub: 'npub1x', tokenId: 't1', mintUrl: 'http://m.example', status: 'unspent' as const, proofs: [{ secret: 'a', amount: 1, id: 'k' }] };
    const v1 = publisher.event(change).version;
    const v2 = publisher.event(change).version; // same millisecond
    now -= 5000; // the clock steps back
    const v3 = publisher.event(change).version;
    assert.equal(v1, 1_000_000);
    assert.ok(v2 > v1 && v3 > v2);
    assert.equal(publisher.event({ ...change, tokenId: 't2' }).version, now); // another token
  });
  it('takes the caller\'s versions, refusing one below what it published', () => {
    const publisher = new TokenStatusPublisher({ kafka: { brokers: ['127.0.0.1:1'] } });
    const change = { npub: 'npub1x', tokenId: 't1', mintUrl: 'http://m.example', status: 'spent' as const, proofs: [{ secret: 'a', amount: 1, id: 'k' }] };
    assert.equal(publisher.event({ ...change, version: 5 }).version, 5);
    assert.equal(publisher.event({ ...change, version: 5 }).version, 5); // a re-publish
    assert.throws(() => publisher.event({ ...change, version: 4 }), VersionRegressionError);
    assert.throws(() => publisher.event({ ...change, proofs: [] }), ContractViolationError);
  });
});

describe('partitioning', () => {
  it('uses murmur2 like Java: known placements', () => {
    // Java's Utils.toPositive(Utils.murmur2("npub1abc".getBytes(UTF_8))) % 6 == 3 (checked with aiokafka too)
    assert.equal(partitionForKey('npub1abc', 6), 3);
  });
});

describe('topics from the environment', () => {
  it('defaults to the worker defaults and reads PROOFRECON_TOPIC_*', () => {
    assert.equal(topicsFromEnv({}).meltRequests, 'wallet.melt-requests');
    assert.equal(topicsFromEnv({ PROOFRECON_TOPIC_PREFLIGHT_RESULTS: 'x.results' }).preflightResults, 'x.results');
  });
});
