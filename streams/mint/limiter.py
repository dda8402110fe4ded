"""Models of rate limiters: our token bucket, and the mint's limiter as the gateway must see it
(elastic like Nutshell's, which forgets only after a quiet window; fixed or sliding windows that
forget old requests; or none). See pacing.py for how the gateway spends them."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from streams.core.settings import LimiterModel

Clock = Callable[[], float]

# The mint's clock and ours may run at slightly different rates (NTP slewing is at most 500 ppm,
# 30 ms a minute): a quiet window is this much longer than the mint's.
CLOCK_SLACK_S = 0.05


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


# --- the mint's limiter, modelled ------------------------------------------------------------


@dataclass(frozen=True)
class LimiterSpec:
    """What we know of a mint's rate limiter (MintSettings.limiter_*)."""

    model: LimiterModel = "elastic"
    limit: int = 60
    window_s: float = 60.0
    margin: float = 0.1
    slack_s: float = 1.0

    @property
    def budget(self) -> int:
        """Requests we allow ourselves per window: the limit less the margin, at least one."""
        return max(1, math.floor(self.limit * (1 - self.margin) + 1e-9))


class RequestWindow(Protocol):
    """The budget a mint's limiter leaves us, as requests."""

    budget: float

    def available(self) -> float:
        """Requests that may go now without the limiter refusing one."""

    def wait_time(self, *, keep: float = 0.0) -> float:
        """Seconds until one request may go leaving `keep` more available (inf: never)."""

    def take(self) -> None:
        """One request is going out (call only when `wait_time()` is 0)."""

    def exhaust(self) -> None:
        """The mint refused us (429): assume the whole budget is spent."""

    def sent(self) -> None:
        """A request is on the wire from now."""

    def done(self, *, answered: bool) -> None:
        """That request ended; `answered` if the mint answered it (so it counted it by now)."""


class NoWindow:
    """`none`: a mint that does not limit us; only the token bucket paces."""

    budget = math.inf

    def available(self) -> float:
        return math.inf

    def wait_time(self, *, keep: float = 0.0) -> float:
        return 0.0

    def take(self) -> None:
        return None

    def exhaust(self) -> None:
        return None

    def sent(self) -> None:
        return None

    def done(self, *, answered: bool) -> None:
        return None


class ElasticWindow:
    """`elastic`: `budget` requests per session; a session ends after a full quiet window.

    The mint's count resets only when no request reached it for `window_s`. We take a session
    as ended when nothing is in flight and `window_s` (plus CLOCK_SLACK_S) has passed since the
    last request ended: an answered request was counted before its answer came, a request we
    gave up on is taken as ended `slack_s` later than we gave up.
    """

    def __init__(self, spec: LimiterSpec, clock: Clock) -> None:
        self.budget: float = spec.budget
        self.quiet_s = spec.window_s + CLOCK_SLACK_S
        self.slack_s = spec.slack_s
        self._clock = clock
        self._count = 0
        self._last = -math.inf  # when the latest request was sent or ended
        self._in_flight = 0

    def _roll(self) -> None:
        if self._in_flight == 0 and self._clock() >= self._last + self.quiet_s:
            self._count = 0

    def used(self) -> int:
        self._roll()
        return self._count

    def available(self) -> float:
        return max(0.0, self.budget - self.used())

    def quiet_remaining(self) -> float:
        """Seconds until the session would end if nothing more were sent."""
        if self._in_flight:
            return self.quiet_s
        return max(0.0, self._last + self.quiet_s - self._clock())

    def wait_time(self, *, keep: float = 0.0) -> float:
        if self.used() + 1 + keep <= self.budget + 1e-9:
            return 0.0
        if 1 + keep > self.budget + 1e-9:
            return math.inf
        return self.quiet_remaining()

    def take(self) -> None:
        self._roll()
        self._count += 1
        self._last = max(self._last, self._clock())

    def exhaust(self) -> None:
        self._roll()
        self._count = max(self._count, math.ceil(self.budget))
        self._last = max(self._last, self._clock())

    def sent(self) -> None:
        self._in_flight += 1
        self._last = max(self._last, self._clock())

    def done(self, *, answered: bool) -> None:
        self._in_flight = max(0, self._in_flight - 1)
        ended = self._clock() + (0.0 if answered else self.slack_s)
        self._last = max(self._last, ended)


class SlidingWindow:
    """`fixed`: at most `budget` requests in any `window_s` (+ slack): safe under fixed windows,
    sliding windows and leaky buckets of that limit alike."""

    def __init__(self, spec: LimiterSpec, clock: Clock) -> None:
        self.budget: float = spec.budget
        self.span_s = spec.window_s + spec.slack_s + CLOCK_SLACK_S
        self._clock = clock
        self._sent: deque[float] = deque()

    def _expire(self) -> None:
        horizon = self._clock() - self.span_s
        while self._sent and self._sent[0] <= horizon:
            self._sent.popleft()

    def used(self) -> int:
        self._expire()
        return len(self._sent)

    def available(self) -> float:
        return max(0.0, self.budget - self.used())

    def wait_time(self, *, keep: float = 0.0) -> float:
        room = math.floor(self.budget - 1 - keep + 1e-9)  # requests that may stay in the window
        if room < 0:
            return math.inf
        excess = self.used() - room
        if excess <= 0:
            return 0.0
        return max(0.0, self._sent[excess - 1] + self.span_s - self._clock())

    def take(self) -> None:
        self._expire()
        self._sent.append(self._clock())

    def exhaust(self) -> None:
        self._expire()
        now = self._clock()
        while len(self._sent) < self.budget:
            self._sent.append(now)

    def sent(self) -> None:
        return None

    def done(self, *, answered: bool) -> None:
        return None


def request_window(spec: LimiterSpec | None, clock: Clock) -> RequestWindow:
    if spec is None or spec.model == "none":
        return NoWindow()
    if spec.model == "elastic":
        return ElasticWindow(spec, clock)
    return SlidingWindow(spec, clock)
