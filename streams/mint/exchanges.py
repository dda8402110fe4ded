"""The gateway's exchange half: one request to the mint, from its pacing token to the states it
delivers — retries within the callers' deadlines, halving on a too-long answer, strict reading,
the canary, the caches. `MintGateway` (gateway.py) inherits it and owns the state it declares."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

from streams.core.domain import MintState, Source
from streams.core.errors import (
    CanaryMismatch,
    MintCircuitOpen,
    MintDeadlineExceeded,
    MintError,
    MintProtocolError,
    MintRateLimited,
    MintTransportError,
    MintUnavailable,
)
from streams.core.settings import MintSettings
from streams.mint.batching import AskQueue, Chunk, ErrorFactory
from streams.mint.breaker import BreakerState, CircuitBreaker
from streams.mint.cache import LruMap, SeenState, SpentCache
from streams.mint.health import HealthTracker, call_safely
from streams.mint.limit import BatchLimit
from streams.mint.limiter import Clock
from streams.mint.observer import (
    GatewayObserver,
    RequestOutcome,
)
from streams.mint.pacing import BACKGROUND, Pacer
from streams.mint.protocol import BadAnswer, RateLimited, States, TooLong, advertised_limit
from streams.mint.transport import Exchange, MintHttp, outcome_of, was_answered

log = logging.getLogger("streams.mint.gateway")

# /v1/info is a hint; a slow one must not hold anything up, and a failed read is retried later.
_INFO_TIMEOUT_S = 2.0
_INFO_RETRY_S = 60.0
# Fewer seconds than this left before a deadline are not worth a retry.
_MIN_ATTEMPT_S = 0.01


class Exchanges:
    """State the exchange methods use; `MintGateway.__init__` sets every one of them."""

    mint_url: str
    settings: MintSettings
    canary: str | None
    _clock: Clock
    _wall_clock: Callable[[], datetime]
    _rng: random.Random
    _observer: GatewayObserver
    _pacer: Pacer
    _breaker: CircuitBreaker
    _spent: SpentCache
    _seen: LruMap[str, SeenState]
    _limit: BatchLimit
    _http: MintHttp
    _health: HealthTracker
    _queue: AskQueue
    _latency_s: float
    _info_state: str
    _info_tried_at: float
    _closed: bool

    def _capacity(self) -> int:
        raise NotImplementedError

    def _budget_error(self, wait: float) -> ErrorFactory:
        raise NotImplementedError

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        raise NotImplementedError

    # --- one exchange ------------------------------------------------------------------------

    async def _exchange(
        self, chunk: Chunk, ys: list[str], *, have_token: bool, probe: bool
    ) -> None:
        """Get states for `ys` (one request, retried, or halved on too-long) and deliver them."""
        try:
            await self._exchange_inner(chunk, ys, have_token=have_token)
        except MintError as exc:
            chunk.fail(ys, _again(exc))
        except asyncio.CancelledError:
            chunk.fail(ys, lambda: MintUnavailable("gateway closed", mint_url=self.mint_url))
            raise
        except Exception:  # a bug must not leave callers waiting until their deadline
            log.exception("mint gateway %s: unexpected error in an exchange", self.mint_url)
            chunk.fail(ys, lambda: MintTransportError("internal error", mint_url=self.mint_url))
        finally:
            if probe:
                self._breaker.release()
            self._health.refresh()

    async def _exchange_inner(self, chunk: Chunk, ys: list[str], *, have_token: bool) -> None:
        attempt = 0
        while True:
            asks = chunk.live_asks(ys)
            if not asks:
                return
            deadline = max(a.deadline for a in asks)
            if not have_token:
                await self._acquire_token(chunk.source(ys), deadline)
            have_token = False
            request_ys = [*ys, self.canary] if self.canary and self.canary not in ys else list(ys)
            answer = await self._post_checkstate(request_ys, deadline)
            if isinstance(answer, States):
                self._accept(chunk, ys, answer.states)
                self._note_good_answer(len(request_ys))
                return
            if isinstance(answer, TooLong):
                await self._halve(chunk, ys, len(request_ys), answer.reason)
                return
            if isinstance(answer, RateLimited):
                self._on_rate_limited()
                raise self._rate_limited_error()
            if isinstance(answer, BadAnswer):
                self._breaker.record_failure()
                log.warning("mint %s: untrusted answer: %s", self.mint_url, answer.reason)
                raise MintProtocolError(answer.reason, mint_url=self.mint_url)
            # Transient: connection error, timeout, 5xx.
            retry_in = self.settings.retry_backoff_s * (2**attempt) * self._rng.uniform(0.5, 1.5)
            out_of_time = self._clock() + retry_in + _MIN_ATTEMPT_S >= deadline
            if attempt >= self.settings.max_retries or out_of_time:
                if answer.cut_by_deadline:
                    raise MintDeadlineExceeded(
                        "the mint did not answer in time", mint_url=self.mint_url
                    )
                self._breaker.record_failure()
                raise MintTransportError(
                    f"{answer.detail} (after {attempt + 1} attempts)", mint_url=self.mint_url
                )
            attempt += 1
            await asyncio.sleep(retry_in)

    async def _acquire_token(self, source: Source, deadline: float) -> None:
        """Wait for a request token (a sweep never waits), within `deadline`.

        Used for retries and halves of an exchange the breaker already let through (possibly as
        its half-open probe), so only an outright OPEN circuit stops it here.
        """
        while True:
            if self._closed:
                raise MintUnavailable("gateway closed", mint_url=self.mint_url)
            if self._pacer.silence_remaining() > 0:
                raise self._rate_limited_error()
            if self._breaker.state is BreakerState.OPEN:
                raise MintCircuitOpen(
                    "circuit opened",
                    mint_url=self.mint_url,
                    retry_after=self._breaker.retry_after(),
                )
            if self._pacer.try_acquire(source):
                return
            wait = self._pacer.wait_time(source)
            if source in BACKGROUND or self._clock() + wait >= deadline:
                raise self._budget_error(wait)()
            await asyncio.sleep(wait)

    def _note_good_answer(self, sent: int) -> None:
        if self._limit.answered(sent):
            log.info("mint %s: full answers; limit now %d", self.mint_url, self._limit.current)

    async def _halve(self, chunk: Chunk, ys: list[str], sent: int, reason: str) -> None:
        self._limit.halve(sent)
        capacity = self._capacity()
        if capacity >= len(ys):
            raise MintProtocolError(
                f"mint refuses a request of {sent} Ys as too long ({reason})",
                mint_url=self.mint_url,
            )
        limit = self._limit.current
        log.info("mint %s: %s for %d Ys; limit now %d", self.mint_url, reason, sent, limit)
        pieces = [ys[i : i + capacity] for i in range(0, len(ys), capacity)]
        # Each piece is a request of its own and pays for its own token.
        await asyncio.gather(
            *(self._exchange(chunk, piece, have_token=False, probe=False) for piece in pieces)
        )

    async def _post_checkstate(self, request_ys: list[str], deadline: float) -> Exchange:
        timeout = min(self.settings.request_timeout_s, deadline - self._clock())
        if timeout <= 0:
            raise MintDeadlineExceeded("deadline passed before sending", mint_url=self.mint_url)
        started = self._clock()
        with self._pacer.on_the_wire() as wire:
            result = await self._http.checkstate(request_ys, timeout)
            wire.answered = was_answered(result)
        if isinstance(result, States):
            self._latency_s = 0.8 * self._latency_s + 0.2 * (self._clock() - started)
        canary_state = self._canary_failure(result)
        call_safely(
            self._observer.request_finished,
            self.mint_url,
            ys=len(request_ys),
            outcome=RequestOutcome.CANARY_MISMATCH if canary_state else outcome_of(result),
            latency_s=self._clock() - started,
        )
        if canary_state is not None:
            self._breaker.record_failure()
            log.error("mint %s: canary read as %s, not SPENT", self.mint_url, canary_state)
            raise CanaryMismatch(
                f"canary Y read as {canary_state}, not SPENT: answer refused",
                mint_url=self.mint_url,
            )
        return result

    def _canary_failure(self, result: object) -> str | None:
        """The canary's state if a valid answer reads it as anything but SPENT, else None."""
        if self.canary is None or not isinstance(result, States):
            return None
        state = result.states.get(self.canary)
        return None if state is MintState.SPENT else str(state)

    def _accept(self, chunk: Chunk, ys: list[str], states: dict[str, MintState]) -> None:
        self._breaker.record_success()
        now = self._wall_clock()
        for y in ys:
            if states[y] is MintState.SPENT:
                self._spent.add(y)
            self._seen.put(y, SeenState(states[y], now))
        chunk.deliver(ys, states)

    def _on_rate_limited(self) -> None:
        self._pacer.note_rate_limited()
        log.warning("mint %s answered 429: silent for %.0f s", self.mint_url, self._pacer.silence_s)
        # Everyone queued would only meet the same wall: tell them now, not after the silence.
        self._queue.fail_all(lambda: self._rate_limited_error())
        self._health.refresh()

    def _rate_limited_error(self) -> MintRateLimited:
        return MintRateLimited(
            "the mint answered 429",
            mint_url=self.mint_url,
            retry_after=self._pacer.silence_remaining(),
        )

    # --- the mint's advertised limit ---------------------------------------------------------

    def _maybe_fetch_info(self) -> None:
        """Read /v1/info in the background (never delaying a batch), if a spare token allows.

        The hint is paid from spare budget only, like the sweep: it never takes the preflight
        reserve, and always leaves a token for the batch that is waiting.
        """
        if self._info_state != "unknown" or self._clock() - self._info_tried_at < _INFO_RETRY_S:
            return
        if not self._breaker.admits() or not self._pacer.try_acquire_spare():
            return
        self._info_state = "fetching"
        self._info_tried_at = self._clock()
        self._spawn(self._fetch_info())

    async def _fetch_info(self) -> None:
        with self._pacer.on_the_wire() as wire:
            answer = await self._http.info(min(_INFO_TIMEOUT_S, self.settings.request_timeout_s))
            wire.answered = answer is not None
        if answer is not None and answer[0] == 429:
            self._on_rate_limited()
        if answer is None or answer[0] != 200:
            self._info_state = "unknown"  # tried again after _INFO_RETRY_S
            return
        self._info_state = "known"
        if self._limit.advertise(advertised_limit(answer[1])):
            limit = self._limit.current
            log.info("mint %s advertises at most %d Ys per request", self.mint_url, limit)


def _again(exc: MintError) -> ErrorFactory:
    """A factory of fresh copies of `exc`: every caller gets its own exception object.

    Raising one object in many tasks would chain their tracebacks into each other's.
    """

    def make() -> MintError:
        clone = exc.__class__.__new__(exc.__class__)
        clone.__dict__.update(exc.__dict__)
        clone.args = exc.args
        return clone

    return make
