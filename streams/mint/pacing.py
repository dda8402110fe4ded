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
~125 ms instead of ~4 ms, nothing next to a minute of lockout. A session covers at most `budget`
times the time one request may gather callers for (their deadline, less a reserve for the
answer): 54 x ~1.75 s at the defaults, about 95 s of steady melts, then the minute of quiet. So
under an elastic limiter (`plans_sessions()`) the gateway spreads the session from its first
request: as soon as preflight callers come more often than a batch may wait
(`limiter_max_gather_ms`), each batch waits for more callers and goes when a full request is
ready, when its first caller has waited `limiter_max_gather_ms`, or just in time for its most
urgent caller's deadline. Sparse callers (a melt now and then, nothing to merge) are sent at once:
holding them would only make them slow. Under the other limiters, whose windows forget old
requests, batches gather for `gather_window_ms` until `limiter_widen_after` of the window's budget
is used, and wait for more callers after that (`widening()`).

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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from streams.core.domain import Source
from streams.core.settings import MintSettings
from streams.mint.limiter import Clock, ElasticWindow, LimiterSpec, TokenBucket, request_window

# --- the pacer -------------------------------------------------------------------------------


class SweepAllowance(NamedTuple):
    """What the sweep may send to a mint right now without waiting or touching preflight budget."""

    requests: int
    ys: int


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

    @classmethod
    def from_settings(
        cls,
        settings: MintSettings,
        *,
        sweep_share: float,
        validate_share: float = 0.0,
        clock: Clock | None = None,
    ) -> Pacer:
        return cls(
            requests_per_minute=settings.requests_per_minute,
            burst=settings.burst,
            silence_s=settings.rate_limit_silence_s,
            sweep_share=sweep_share,
            validate_share=validate_share,
            limiter=LimiterSpec(
                model=settings.limiter_model,
                limit=settings.limiter_limit,
                window_s=settings.limiter_window_s,
                margin=settings.limiter_margin,
                slack_s=settings.limiter_slack_s,
            ),
            widen_after=settings.limiter_widen_after,
            clock=clock,
        )

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

    def plans_sessions(self) -> bool:
        """Does the limiter count a session's requests until it has been left alone a whole
        window (elastic)? Then requests are spread over the session from its start."""
        return isinstance(self.window, ElasticWindow)

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
