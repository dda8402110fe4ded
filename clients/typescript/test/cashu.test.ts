import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hashToCurve as cashuTsHashToCurve } from '@cashu/cashu-ts';

import { hashToCurve, hashToCurveBytes, isValidY, yOf } from '../src/index.js';

const bytes = (last: number) => {
  const b = new Uint8Array(32);
  b[31] = last;
  return b;
};

describe('hash_to_curve (NUT-00)', () => {
  it('matches the NUT-00 test vectors', () => {
    assert.equal(hashToCurve(new Uint8Array(32)), '024cce997d3b518f739663b757deaec95bcd9473c30a14ac2fd04023a739d1a725');
    assert.equal(hashToCurve(bytes(1)), '022e7158e11c9506f1aa4248bf531298daa7febd6194f003edcd9b93ade6253acf');
    assert.equal(hashToCurve(bytes(2)), '026cdbe15362df59cd1dd3c9c11de8aedac2106eca69236ecd9fbe117af897be4f');
  });

  it('returns 33 bytes with prefix 02, as 66 lowercase hex characters', () => {
    const point = hashToCurveBytes(new TextEncoder().encode('anything'));
    assert.equal(point.length, 33);
    assert.equal(point[0], 0x02);
    assert.match(hashToCurve(point), /^02[0-9a-f]{64}$/);
  });

  it('hashes a secret as its UTF-8 bytes, never hex-decoded', () => {
    const hexLooking = '00'.repeat(31) + '01';
    assert.equal(yOf(hexLooking), hashToCurve(new TextEncoder().encode(hexLooking)));
    assert.notEqual(yOf(hexLooking), hashToCurve(bytes(1)));
    assert.equal(yOf('ünïcødé ✓'), hashToCurve(new TextEncoder().encode('ünïcødé ✓')));
  });

  it("agrees with cashu-ts's hashToCurve", () => {
    for (const secret of ['a', 'test', '407915bc212be61a77e3e6d2aeb4c727980bda51cd06a6afc29e2861768a7837', 'ünïcødé']) {
      const theirs = cashuTsHashToCurve(new TextEncoder().encode(secret)).toHex(true);
      assert.equal(yOf(secret), theirs);
    }
  });

  it('refuses an empty secret', () => {
    assert.throws(() => yOf(''), TypeError);
  });

  it('recognises valid Ys', () => {
    assert.ok(isValidY(yOf('x')));
    assert.ok(isValidY(yOf('x').toUpperCase().replace(/^0/, '0')));
    assert.ok(!isValidY('02' + 'f'.repeat(64))); // not on the curve
    assert.ok(!isValidY('04' + '0'.repeat(64)));
    assert.ok(!isValidY(yOf('x').slice(0, 65)));
    assert.ok(!isValidY(42));
  });
});
