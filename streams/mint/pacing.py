"""How often one mint may be asked: a token bucket, a 429 silence, and the sweep's share.

Real mints block a client at 60 requests/minute and every request during the block restarts it,
with no Retry-After. So the budget is ours to keep: a token bucket at `requests_per_minute` with a
small `burst`, and after a 429 complete silence for `silence_s`, restarted by every further 429.

The sweep re-checks proofs in the background and must never starve preflights (a wallet waits on
those). It draws from a second, smaller bucket at `sweep_share` of the rate, never waits, and may
take a token from the main bucket only if that leaves `preflight_reserve` tokens for preflights.
Preflights thus always have most of the budget and an immediate reserve, whatever the sweep does.

Time comes from an injectable monotonic clock, so tests move it instead of sleeping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from streams.domain import Source

Clock = Callable[[], float]


class TokenBucket:
    """Holds up to `capacity` tokens, refilled at `rate_per_s`; starts full."""

    def __init__(self, rate_per_s: float, capacity: float, clock: Clock) -> None:
        if rate_per_s <= 0 or capacity <= 0:
            raise ValueError("a token bucket needs a positive rate and capacity")
        self.rate_per_s = rate_per_s
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        # A clock that goes backwards (a test resetting it) must not mint tokens or remove them.
        elapsed = max(0.0, now - self._at)
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate_per_s)
        self._at = now

    @property
    def available(self) -> float:
        self._refill()
        return self._tokens

    def try_take(self, n: float = 1.0, *, keep: float = 0.0) -> bool:
        """Take `n` tokens if at least `keep` remain afterwards; never waits."""
        self._refill()
        if self._tokens - n < keep - 1e-9:
            return False
        self._tokens -= n
        return True

    def wait_time(self, n: float = 1.0, *, keep: float = 0.0) -> float:
        """Seconds until `try_take(n, keep=keep)` would succeed (inf if it never can)."""
        self._refill()
        missing = n + keep - self._tokens
        if missing <= 1e-9:
            return 0.0
        if n + keep > self.capacity + 1e-9:
            return math.inf
        return missing / self.rate_per_s


class Pacer:
    """One mint's request budget: preflight bucket, sweep bucket and the 429 silence window."""

    def __init__(
        self,
        *,
        requests_per_minute: float,
        burst: int,
        silence_s: float,
        sweep_share: float,
        clock: Clock | None = None,
    ) -> None:
        if not 0 < sweep_share < 1:
            raise ValueError("sweep_share must be between 0 and 1")
        self._clock = clock or time.monotonic
        rate = requests_per_minute / 60.0
        self.main = TokenBucket(rate, float(burst), self._clock)
        self.sweep = TokenBucket(rate * sweep_share, max(1.0, burst * sweep_share), self._clock)
        # What a sweep must leave in the main bucket. With burst 1 nothing can be reserved: the
        # sweep's own bucket still bounds it to its share, and a preflight waits one token at most.
        self.preflight_reserve = float(min(burst - 1, max(1, math.ceil(burst * (1 - sweep_share)))))
        self.silence_s = silence_s
        self._silent_until = -math.inf

    # --- the 429 silence ---------------------------------------------------------------------

    def note_rate_limited(self) -> None:
        """A 429 arrived: no request for `silence_s` from now (a later 429 restarts the window)."""
        self._silent_until = self._clock() + self.silence_s

    def silence_remaining(self) -> float:
        return max(0.0, self._silent_until - self._clock())

    # --- tokens ------------------------------------------------------------------------------

    def try_acquire(self, source: Source = Source.PREFLIGHT) -> bool:
        """Take a request token for `source` now, or return False; never waits."""
        if self.silence_remaining() > 0:
            return False
        if source is not Source.SWEEP:
            return self.main.try_take()
        if self.sweep.available < 1 - 1e-9:
            return False
        if not self.main.try_take(keep=self.preflight_reserve):
            return False
        self.sweep.try_take()
        return True

    def wait_time(self, source: Source = Source.PREFLIGHT) -> float:
        """Seconds until `try_acquire(source)` could succeed (counting the silence)."""
        silence = self.silence_remaining()
        if source is not Source.SWEEP:
            return max(silence, self.main.wait_time())
        return max(
            silence,
            self.sweep.wait_time(),
            self.main.wait_time(keep=self.preflight_reserve),
        )

    def sweep_allowance(self) -> int:
        """How many requests the sweep may send right now without touching the preflight reserve."""
        if self.silence_remaining() > 0:
            return 0
        spare_main = self.main.available - self.preflight_reserve
        return max(0, math.floor(min(self.sweep.available, spare_main) + 1e-9))
