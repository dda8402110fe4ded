/**
 * The Node client against the Python side, as peers: Ys (package, cashu-ts, project Python) of
 * proofs minted at the real mint; partition placement (kafkajs vs aiokafka, and where Kafka
 * really puts a record); mint URL normalisation.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Wallet, hashToCurve as cashuTsHashToCurve, type Proof } from '@cashu/cashu-ts';

import { mintProofs } from '../examples/melt.js';
import { TokenStatusPublisher, normaliseMintUrl, partitionForKey, yOf } from '../src/index.js';
import { pythonMintUrls, pythonPartitions, pythonYs } from './support/python.js';
import { BROKERS, MINT_URL, deleteTopics, kafka, randomId } from './support/worker.js';

describe('Ys: this package, cashu-ts and the Python side agree', () => {
  let proofs: Proof[] = [];
  before(async () => {
    const wallet = new Wallet(MINT_URL, { unit: 'sat' });
    await wallet.loadMint();
    proofs = await mintProofs(wallet, 4, 8);
  });

  it('for proofs minted at the real mint, and the mint agrees (checkstate by Y)', async () => {
    const secrets = proofs.map((p) => p.secret);
    const ours = secrets.map(yOf);
    const theirs = secrets.map((s) => cashuTsHashToCurve(new TextEncoder().encode(s)).toHex(true));
    assert.deepEqual(ours, theirs);
    assert.deepEqual(ours, pythonYs(secrets));
    const wallet = new Wallet(MINT_URL, { unit: 'sat' });
    await wallet.loadMint();
    const states = await wallet.checkProofsStates(proofs);
    assert.deepEqual(states.map((s) => s.Y), ours);
    assert.ok(states.every((s) => s.state === 'UNSPENT'));
  });

  it('for awkward secrets: hex-looking, unicode, long', () => {
    const secrets = ['00'.repeat(32), 'ÄÖÜ ünïcødé ✓ 🥜', 'x'.repeat(1024), '["P2PK",{"nonce":"ab","data":"02cd"}]', ' padded '];
    assert.deepEqual(secrets.map(yOf), pythonYs(secrets));
  });
});

describe("partition placement: kafkajs's default partitioner is Java's murmur2, as aiokafka's", () => {
  const npubs = [
    ...Array.from({ length: 300 }, (_, i) => `npub1${randomId(16)}${i}`),
    'npub1abc',
    'npub1ünïcødé',
    'n',
    'npub1' + 'q'.repeat(250),
  ];

  it('computes the same partition as aiokafka for every npub and partition count', () => {
    for (const count of [1, 2, 3, 6, 7, 12, 50]) {
      const expected = pythonPartitions(npubs, count);
      assert.deepEqual(
        npubs.map((n) => partitionForKey(n, count)),
        expected,
        `placement differs with ${count} partitions`,
      );
    }
  });

  describe('on a real topic', () => {
    const prefix = `tnodepart${randomId()}.`;
    const topic = `${prefix}wallet.token-status`;
    after(async () => {
      await deleteTopics(prefix);
    });

    it('a published token-status event lands where aiokafka would put it', async () => {
      const admin = kafka().admin();
      await admin.connect();
      await admin.createTopics({ topics: [{ topic, numPartitions: 6 }], waitForLeaders: true });
      await admin.disconnect();
      const publisher = new TokenStatusPublisher({ kafka: { brokers: BROKERS }, topic });
      try {
        const sample = npubs.slice(0, 40);
        const expected = pythonPartitions(sample, 6);
        const placed: number[] = [];
        for (const npub of sample) {
          const published = await publisher.publish({
            npub,
            tokenId: 't1',
            mintUrl: MINT_URL,
            status: 'unspent',
            proofs: [{ secret: `s-${npub}`, amount: 1, keyset_id: 'k' }],
          });
          placed.push(published.partition);
        }
        assert.deepEqual(placed, expected);
      } finally {
        await publisher.stop();
      }
    });
  });
});

describe('mint URL normalisation: the same as the worker', () => {
  it('for URLs the worker accepts', () => {
    const urls = [
      'http://127.0.0.1:3338',
      'http://127.0.0.1:3338/',
      '  http://127.0.0.1:3338//  ',
      'https://Mint.Example.COM/',
      'https://MINT.example.com/Cashu/Api/',
      'https://mint.example.com:443',
      'http://mint.example.com:8080/x/',
      'http://LOCALHOST:3338',
    ];
    assert.deepEqual(urls.map(normaliseMintUrl), pythonMintUrls(urls));
  });
});
