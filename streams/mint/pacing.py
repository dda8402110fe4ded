"""How often one mint may be asked: the mint's limiter, a token bucket, a 429 silence, the sweep.

What real mints do (Nutshell 0.20.2, measured against a mint with MINT_RATE_LIMIT=true, a client
told apart by X-Forwarded-For, and read in its source: cashu/mint/limit.py, slowapi, limits):

- The limit is MINT_GLOBAL_RATE_LIMIT_PER_MINUTE (default 60) per client IP and per endpoint
  (slowapi scopes a default limit by path: with /v1/checkstate refused, /v1/info still answered).
  127.0.0.1 is exempt; behind a proxy the client is the first X-Forwarded-For entry.
- The strategy is limits' "fixed-window-elastic-expiry": every request, allowed or refused, adds
  one to the count AND pushes its expiry to now + 60 s. The count resets only after a whole
  minute with no request at all. So pacing alone never keeps a client safe: at 8.6 requests/min
  against a limit of 10/min, the 11th request (after 70 s) got 429; a pause of 55 s did not reset
  the count, one of 61 s did; a 429 answered 30 s and then 80 s into the block showed that refused
  requests extend it too. A 429 carries no Retry-After.

So in the default `elastic` model the pacer keeps a *session*: the requests since the last quiet
gap of a full window. A session may hold `budget` requests, the limit less a safety margin
(`limiter_margin`: other software behind our IP, requests we cannot see). When the budget is
spent the pacer sends nothing until a full window (plus a little) has passed since the last
request ended: the forced quiet. Whoever asks meanwhile gets MintRateLimited at once (fail
closed) unless their deadline reaches past the quiet; SPENT-cache answers need no request and
keep working. The quiet is measured from when the last request *ended*, which is after the mint
counted it; a request we gave up on (timeout, reset) may be counted later still, so its end is
moved `limiter_slack_s` later. In the `fixed` model (fixed or sliding windows, a proxy's limiter)
at most `budget` requests go in any window (plus `limiter_slack_s`, since the mint counts a
request a little after we send it). `none` trusts the token bucket alone (a mint that does not
limit us, e.g. a local one).

Throughput under an elastic limiter. The long-run ceiling is `budget` requests per session plus
a window of quiet, and preflights arriving in the quiet cannot be served (their deadlines are
seconds, the quiet a minute). What can be had is a longer session, and that means fewer, fuller
requests: one checkstate carries up to 1000 Ys (about 330 three-proof melts) and costs the mint
~125 ms instead of ~4 ms, nothing next to a minute of lockout. Spending the budget fast would
only start the quiet sooner; widening every batch from the start would make every preflight
slow even when traffic is light and the session would end by itself (a quiet minute) long
before its budget. So batches gather for `gather_window_ms` while the budget is plentiful, and
once `limiter_widen_after` of it is used they wait for more callers: a batch then goes when a
full request is ready, when its first caller has waited `limiter_max_gather_ms`, or just in time
for its most urgent caller's deadline. Under steady load each remaining request then carries
everything that arrived since the previous one. (The gateway does the holding; `widening()` says
when.)

The token bucket (`requests_per_minute`, `burst`) stays as the smoothing layer below the window
budget, and after a 429 there is complete silence for `silence_s`, restarted by every further
429; a 429 also ends the session (its quiet must follow too).

The sweep re-checks proofs in the background and must never starve preflights (a wallet waits on
those). It draws from a second, smaller bucket at `sweep_share` of the rate, never waits, may
take a token from the main bucket only if that leaves `preflight_reserve` tokens, and may use a
window's budget only while what is left stays above `window_reserve` (the first `sweep_share` of
each session): preflights thus always have most of the budget and an immediate reserve, and the
sweep alone never causes a forced quiet. /v1/info reads are paid the same way, from spare budget.

Time comes from an injectable monotonic clock, so tests move it instead of sleeping.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from streams.domain import Source
from streams.settings import LimiterModel

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


# --- the pacer -------------------------------------------------------------------------------


class Wire:
    """One request on the wire; set `answered` once the mint answered it."""

    answered = False


# Callers nobody waits on at the other end of a melt: each draws from a small share of its own,
# never waits for budget, and never touches what preflights need.
BACKGROUND = frozenset({Source.SWEEP, Source.VALIDATE})


class Pacer:
    """One mint's request budget: the limiter's window, preflight and background buckets (the
    sweep's, and the web API's validate), 429 silence."""

    def __init__(
        self,
        *,
        requests_per_minute: float,
        burst: int,
        silence_s: float,
        sweep_share: float,
        validate_share: float = 0.0,
        limiter: LimiterSpec | None = None,
        widen_after: float = 0.5,
        clock: Clock | None = None,
    ) -> None:
        shares = {Source.SWEEP: sweep_share, Source.VALIDATE: validate_share}
        background_share = sum(shares.values())
        if not 0 < sweep_share < 1 or validate_share < 0 or background_share >= 1:
            raise ValueError("background shares must be in (0, 1) and leave preflights some")
        self._clock = clock or time.monotonic
        rate = requests_per_minute / 60.0
        self.main = TokenBucket(rate, float(burst), self._clock)
        self.background = {
            source: TokenBucket(rate * share, max(1.0, burst * share), self._clock)
            for source, share in shares.items()
            if share > 0
        }
        self.sweep = self.background[Source.SWEEP]
        # What a background request must leave in the main bucket. With burst 1 nothing can be
        # reserved: its own bucket still bounds it to its share, and a preflight waits one token.
        self.preflight_reserve = float(
            min(burst - 1, max(1, math.ceil(burst * (1 - background_share))))
        )
        self.window = request_window(limiter, self._clock)
        budget = self.window.budget
        # What a background request (or an /v1/info read) must leave of the window's budget.
        self.window_reserve = (
            0.0 if math.isinf(budget) else float(math.ceil(budget * (1 - background_share) - 1e-9))
        )
        self.widen_after = widen_after
        self.silence_s = silence_s
        self._silent_until = -math.inf

    # --- the 429 silence ---------------------------------------------------------------------

    def note_rate_limited(self) -> None:
        """A 429 arrived: no request for `silence_s` from now (a later 429 restarts the window),
        and the limiter's window counts as spent (its quiet must pass as well)."""
        self._silent_until = self._clock() + self.silence_s
        self.window.exhaust()

    def silence_remaining(self) -> float:
        return max(0.0, self._silent_until - self._clock())

    # --- tokens ------------------------------------------------------------------------------

    def try_acquire(self, source: Source = Source.PREFLIGHT) -> bool:
        """Take a request token for `source` now, or return False; never waits."""
        if self.silence_remaining() > 0:
            return False
        if source not in BACKGROUND:
            if self.window.wait_time() > 0 or not self.main.try_take():
                return False
            self.window.take()
            return True
        own = self.background.get(source)
        if own is None or own.available < 1 - 1e-9:
            return False
        if self.window.wait_time(keep=self.window_reserve) > 0:
            return False
        if not self.main.try_take(keep=self.preflight_reserve):
            return False
        own.try_take()
        self.window.take()
        return True

    def try_acquire_spare(self) -> bool:
        """A token for a request nobody waits on (/v1/info), from spare budget only: it leaves
        the preflight reserves intact and at least one token for a batch that may be waiting."""
        if self.silence_remaining() > 0:
            return False
        if self.window.wait_time(keep=max(1.0, self.window_reserve)) > 0:
            return False
        if not self.main.try_take(keep=max(1.0, self.preflight_reserve)):
            return False
        self.window.take()
        return True

    def wait_time(self, source: Source = Source.PREFLIGHT) -> float:
        """Seconds until `try_acquire(source)` could succeed (counting silence and quiet)."""
        silence = self.silence_remaining()
        if source not in BACKGROUND:
            return max(silence, self.main.wait_time(), self.window.wait_time())
        own = self.background.get(source)
        return max(
            silence,
            own.wait_time() if own is not None else math.inf,
            self.main.wait_time(keep=self.preflight_reserve),
            self.window.wait_time(keep=self.window_reserve),
        )

    def sweep_allowance(self) -> int:
        """How many requests the sweep may send right now without touching the preflight reserve."""
        if self.silence_remaining() > 0:
            return 0
        spare_main = self.main.available - self.preflight_reserve
        spare_window = self.window.available() - self.window_reserve
        return max(0, math.floor(min(self.sweep.available, spare_main, spare_window) + 1e-9))

    # --- the limiter's window ----------------------------------------------------------------

    def widening(self) -> bool:
        """Has `widen_after` of the window's budget been used (batches should wait to fill)?"""
        budget = self.window.budget
        if math.isinf(budget):
            return False
        used = budget - self.window.available()
        return used >= self.widen_after * budget - 1e-9

    def quiet_remaining(self) -> float:
        """Seconds of forced quiet left: the window's budget is spent (0 if it is not)."""
        return self.window.wait_time() if self.window.available() < 1 else 0.0

    @contextmanager
    def on_the_wire(self) -> Iterator[Wire]:
        """Around every HTTP request to the mint: when it ended says when the mint counted it."""
        wire = Wire()
        self.window.sent()
        try:
            yield wire
        finally:
            self.window.done(answered=wire.answered)
