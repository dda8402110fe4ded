"""The mint gateway: the only way proofrecon asks a mint for proof states (NUT-07 checkstate).

One gateway per mint URL. Callers ask `check(ys)` concurrently; the gateway

- answers Ys known SPENT from its cache (SPENT is final) without asking the mint;
- merges every concurrent caller's Ys into shared requests (gathered for `gather_window_ms`
  while other requests are out or the budget runs low; an idle gateway sends at once),
  deduplicated and cut into chunks of at most the mint's limit (min of configured, advertised,
  and learned by halving on a too-long answer). Batching is the whole game: 1 Y costs a mint
  about as much as 100, and a real mint allows a client 60 requests until it pauses a minute;
- sends a chunk only with a pacing token (see pacing.py: a model of the mint's rate limiter,
  a token bucket below it) and the circuit breaker's leave; chunks go out concurrently;
- when the limiter's budget is what limits (an elastic limiter and callers coming faster than
  `limiter_max_gather_ms`, from a session's first request; other limiters once
  `limiter_widen_after` of the budget is used), holds a batch for more callers: it goes when a
  request is full, when its first caller waited `limiter_max_gather_ms`, or in time for its
  earliest caller's deadline. Fewer, fuller requests make the budget last (pacing.py);
- when the budget is spent, sends nothing until the mint's limiter has forgotten us (a quiet
  window) and fails callers who cannot wait that long at once;
- retries connection errors, timeouts and 5xx with jittered backoff, never past the latest
  deadline among the chunk's callers;
- on a 429 stays silent for `rate_limit_silence_s` and fails every caller meanwhile at once;
- validates every answer strictly (protocol.py) and uses nothing from a bad one;
- optionally sends a canary (a Y known SPENT at that mint) with every request: if the mint does not
  say SPENT for it, the mint or our hashing is wrong and the whole answer is refused.

A caller never waits past its own deadline: it gets MintDeadlineExceeded then, while the request
it shared may still complete for others. A check either returns a state for every Y asked or
raises; there are no partial answers, so unknown truth can never be mistaken for UNSPENT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from streams.core.domain import MintState, Source
from streams.core.errors import (
    MintCircuitOpen,
    MintDeadlineExceeded,
    MintError,
    MintNotAllowed,
    MintRateLimited,
    MintUnavailable,
)
from streams.core.mint_url import normalise_or_strip
from streams.core.settings import MintSettings
from streams.mint.batching import Ask, AskQueue, ErrorFactory
from streams.mint.breaker import BreakerState, CircuitBreaker
from streams.mint.cache import LruMap, SeenState, SpentCache
from streams.mint.exchanges import Exchanges
from streams.mint.health import Assessment, HealthTracker, call_safely
from streams.mint.holding import CallerArrivals, QueuedBatch, hold_s
from streams.mint.limit import BatchLimit
from streams.mint.limiter import Clock
from streams.mint.observer import (
    GatewayObserver,
    HealthListener,
    MintHealth,
    NullObserver,
)
from streams.mint.pacing import BACKGROUND, Pacer, SweepAllowance
from streams.mint.transport import MintHttp

log = logging.getLogger(__name__)

DEFAULT_SWEEP_SHARE = 0.25
DEFAULT_VALIDATE_SHARE = 0.05
_INITIAL_LATENCY_S = 0.05

T = TypeVar("T")


class MintGateway(Exchanges):
    """Coalescing, paced, validated NUT-07 checks against one mint."""

    def __init__(
        self,
        mint_url: str,
        settings: MintSettings,
        *,
        clock: Clock | None = None,
        observer: GatewayObserver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sweep_budget_share: float = DEFAULT_SWEEP_SHARE,
        validate_budget_share: float = DEFAULT_VALIDATE_SHARE,
        event_hooks: Mapping[str, list[Callable[..., Any]]] | None = None,
        wall_clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.mint_url = normalise_or_strip(mint_url)
        allowed = {normalise_or_strip(u) for u in settings.allowlist}
        if self.mint_url not in allowed:
            # Defence in depth: the registry refuses first, but a gateway must never exist for
            # a mint outside the allow-list, however it was built.
            raise MintNotAllowed("not on the allow-list", mint_url=self.mint_url)
        self.settings = settings
        self._clock = clock or time.monotonic
        self._wall_clock = wall_clock or (lambda: datetime.now(UTC))
        self._rng = rng or random.Random()
        self._observer: GatewayObserver = observer or NullObserver()
        self._pacer = Pacer.from_settings(
            settings,
            sweep_share=sweep_budget_share,
            validate_share=validate_budget_share,
            clock=self._clock,
        )
        self._latency_s = _INITIAL_LATENCY_S  # moving average of answered checkstates
        self._breaker = CircuitBreaker(
            failure_threshold=settings.breaker_failures,
            cooldown_s=settings.breaker_cooldown_s,
            clock=self._clock,
        )
        self._spent = SpentCache(settings.spent_cache_size)
        self._seen: LruMap[str, SeenState] = LruMap(settings.last_seen_size)
        canary = _for_mint(settings.canaries, self.mint_url)
        self.canary: str | None = canary.lower() if canary else None
        self._limit = BatchLimit(settings.max_batch_size)
        self._info_state: str = "unknown"  # unknown | fetching | known
        self._info_tried_at = -math.inf
        self._http = MintHttp(
            self.mint_url,
            request_timeout_s=settings.request_timeout_s,
            transport=transport,
            event_hooks=event_hooks,
            headers=_for_mint(settings.request_headers, self.mint_url),
        )
        self._queue = AskQueue()
        self._wakeup = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        self._slot_freed = asyncio.Event()
        self._arrivals = CallerArrivals()
        self._health = HealthTracker(self.mint_url, self._assess_health, self._observer)
        self._closed = False

    # --- public API --------------------------------------------------------------------------

    async def check(
        self,
        ys: Sequence[str],
        *,
        deadline_s: float | None = None,
        source: Source = Source.PREFLIGHT,
    ) -> dict[str, MintState]:
        """The mint's state of every Y in `ys` (valid lowercase hex; duplicates are fine).

        Raises MintRateLimited / MintCircuitOpen at once when the mint may not be asked now,
        MintDeadlineExceeded when `deadline_s` (default: settings.default_deadline_ms) passes,
        MintTransportError, MintProtocolError or CanaryMismatch when no trustworthy answer came.
        """
        started = self._clock()
        budget = deadline_s if deadline_s is not None else self.settings.default_deadline_ms / 1000
        wanted = list(dict.fromkeys(ys))
        outcome = "ok"
        try:
            hits, misses = self._spent.partition(wanted)
            if hits:
                call_safely(self._observer.cache_hits, self.mint_url, source=source, hits=len(hits))
            results = dict.fromkeys(hits, MintState.SPENT)
            if misses:
                results.update(await self._ask_mint(misses, started + budget, source))
            return results
        except MintError as exc:
            outcome = exc.code
            raise
        finally:
            call_safely(
                self._observer.check_finished,
                self.mint_url,
                source=source,
                ys=len(wanted),
                outcome=outcome,
                latency_s=self._clock() - started,
            )

    @property
    def health(self) -> MintHealth:
        return self._health.current

    def add_health_listener(self, listener: HealthListener) -> None:
        """`listener(mint_url, old, new)` is called on every health change from now on."""
        self._health.add_listener(listener)

    def last_seen(self, y: str) -> SeenState | None:
        """The last state this mint gave for `y` in a valid answer, and when; None if unknown."""
        return self._seen.get(y.lower())

    def learned(self, y: str, state: MintState, at: datetime) -> None:
        """A state of `y` the mint told us another way (a NUT-17 push): SPENT is final, so the
        next check of `y` needs no request."""
        y = y.lower()
        if state is MintState.SPENT:
            self._spent.add(y)
        self._seen.put(y, SeenState(state, at))

    def is_known_spent(self, y: str) -> bool:
        return y.lower() in self._spent

    @property
    def effective_limit(self) -> int:
        """Most Ys per request now: min(configured, advertised, learned from too-long answers)."""
        return self._limit.current

    @property
    def advertised_limit(self) -> int | None:
        """What the mint's /v1/info advertises (None: not read yet, or it says nothing)."""
        return self._limit.advertised

    def sweep_allowance(self) -> SweepAllowance:
        """How much the sweep may send now (never blocks; 0 while rate limited or circuit open)."""
        if self._closed or not self._breaker.admits():
            return SweepAllowance(0, 0)
        requests = self._pacer.sweep_allowance()
        return SweepAllowance(requests, requests * self._capacity())

    async def close(self) -> None:
        """Stop dispatching, fail whoever still waits, and close the HTTP client."""
        if self._closed:
            return
        self._closed = True
        self._queue.fail_all(lambda: MintUnavailable("gateway closed", mint_url=self.mint_url))
        tasks = [t for t in (self._dispatcher, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._health.close()
        await self._http.aclose()

    # --- asking ------------------------------------------------------------------------------

    async def _ask_mint(
        self, ys: list[str], deadline: float, source: Source
    ) -> dict[str, MintState]:
        self._raise_if_unavailable()
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise MintDeadlineExceeded("deadline passed before asking", mint_url=self.mint_url)
        if source not in BACKGROUND:
            # No request can leave before the next token: if that is past our deadline, say so
            # now rather than when the deadline comes.
            wait = self._pacer.wait_time(Source.PREFLIGHT)
            if wait >= remaining:
                raise self._budget_error(wait)()
        loop = asyncio.get_running_loop()
        ask = Ask(
            source=source,
            deadline=deadline,
            future=loop.create_future(),
            pending=set(ys),
            added_at=self._clock(),
        )
        self._queue.add(ask, ys)
        if source not in BACKGROUND:
            self._arrivals.note(ask.added_at)
        self._ensure_dispatcher()
        self._wakeup.set()
        try:
            await asyncio.wait_for(ask.future, timeout=remaining)
        except TimeoutError:
            raise MintDeadlineExceeded(
                f"no answer within {remaining * 1000:.0f} ms", mint_url=self.mint_url
            ) from None
        finally:
            self._queue.forget(ask)
        return ask.results

    def _raise_if_unavailable(self) -> None:
        if self._closed:
            raise MintUnavailable("gateway closed", mint_url=self.mint_url)
        silence = self._pacer.silence_remaining()
        if silence > 0:
            self._health.refresh()
            raise MintRateLimited(
                f"silent for {silence:.1f} s after a 429",
                mint_url=self.mint_url,
                retry_after=silence,
            )
        if not self._breaker.admits():
            self._health.refresh()
            wait = self._breaker.retry_after()
            raise MintCircuitOpen(
                f"circuit open after {self._breaker.consecutive_failures} failures",
                mint_url=self.mint_url,
                retry_after=wait,
            )

    # --- dispatching -------------------------------------------------------------------------

    def _ensure_dispatcher(self) -> None:
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch_loop())

    async def _dispatch_loop(self) -> None:
        gather_s = self.settings.gather_window_ms / 1000
        while not self._closed:
            await self._wakeup.wait()
            self._wakeup.clear()
            # Let concurrent callers join before a request goes out. A batch of melts asks
            # within one turn of the event loop, so an idle gateway waits that long and no more
            # (a fixed window would add its length to every melt); while requests are out or
            # the budget runs low, callers are gathered for the window.
            busy = self._in_flight > 0 or self._pacer.widening()
            await asyncio.sleep(gather_s if busy else 0)
            if self._queue and self._queue.source() not in BACKGROUND:
                self._maybe_fetch_info()
            await self._drain_queue()

    async def _drain_queue(self) -> None:
        while self._queue and not self._closed:
            if self._in_flight >= self.settings.max_in_flight:
                # While requests are out, callers keep joining the queue: the next request
                # carries all of them instead of each small window costing a request.
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            error = self._unavailable_error()
            if error is not None:
                self._queue.fail_all(error)
                return
            source = self._queue.source()
            if source not in BACKGROUND:
                hold = self._hold_s()
                if hold > 0:
                    await self._more_callers(hold)
                    continue
            if not self._pacer.try_acquire(source):
                wait = self._pacer.wait_time(source)
                if source in BACKGROUND:
                    # A background caller never waits for budget: the sweep comes back on its
                    # next round, validate answers BLOCK at once.
                    self._queue.fail_all(self._budget_error(wait))
                    return
                # Asks whose deadline ends before the next token cannot be met: say so now.
                self._queue.fail_due_before(self._clock() + wait, self._budget_error(wait))
                await asyncio.sleep(wait)
                continue
            is_probe = self._breaker.state is BreakerState.HALF_OPEN
            if not self._breaker.acquire():
                continue  # the half-open probe was just claimed: _unavailable_error fails the rest
            self._log_if_budget_spent()
            chunk, ys = self._queue.take_chunk(self._capacity())
            if not ys:
                if is_probe:
                    self._breaker.release()
                continue
            self._in_flight += 1
            task = self._spawn(self._exchange(chunk, ys, have_token=True, probe=is_probe))
            task.add_done_callback(self._free_slot)

    def _hold_s(self) -> float:
        """How much longer the queued batch should wait for more callers (holding.py)."""
        batch = QueuedBatch(
            size=len(self._queue),
            capacity=self._capacity(),
            first_added=self._queue.first_added(),
            earliest_deadline=self._queue.earliest_deadline(),
        )
        return hold_s(
            self._pacer,
            batch,
            caller_gap_s=self._arrivals.gap_s,
            latency_s=self._latency_s,
            max_gather_s=self.settings.limiter_max_gather_ms / 1000,
            now=self._clock(),
        )

    async def _more_callers(self, timeout: float) -> None:
        """Wait up to `timeout` s, or until another caller joins the queue."""
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout)

    def _log_if_budget_spent(self) -> None:
        quiet = self._pacer.quiet_remaining()
        if quiet > 0:
            log.info(
                "mint %s: the limiter's budget of %d requests is spent; quiet for %.0f s so "
                "its count resets",
                self.mint_url,
                self._pacer.window.budget,
                quiet,
            )

    def _free_slot(self, _: asyncio.Task[None]) -> None:
        self._in_flight -= 1
        self._slot_freed.set()

    def _capacity(self) -> int:
        # The canary rides in every request and takes one of its slots.
        limit = self._limit.current
        return max(1, limit - 1) if self.canary else limit

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _unavailable_error(self) -> ErrorFactory | None:
        if self._closed:
            return lambda: MintUnavailable("gateway closed", mint_url=self.mint_url)
        silence = self._pacer.silence_remaining()
        if silence > 0:
            return lambda: MintRateLimited(
                f"silent for {silence:.1f} s after a 429",
                mint_url=self.mint_url,
                retry_after=silence,
            )
        if not self._breaker.admits():
            wait = self._breaker.retry_after()
            return lambda: MintCircuitOpen("circuit open", mint_url=self.mint_url, retry_after=wait)
        return None

    def _budget_error(self, wait: float) -> ErrorFactory:
        return lambda: MintRateLimited(
            "request budget for this mint is exhausted", mint_url=self.mint_url, retry_after=wait
        )

    # --- health ------------------------------------------------------------------------------

    def _assess_health(self) -> Assessment:
        if self._breaker.state is not BreakerState.CLOSED:
            return MintHealth.CIRCUIT_OPEN, self._breaker.retry_after()
        silence = self._pacer.silence_remaining()
        if silence > 0:
            return MintHealth.RATE_LIMITED, silence
        if self._breaker.consecutive_failures > 0:
            return MintHealth.DEGRADED, 0.0
        return MintHealth.OK, 0.0


def _for_mint(per_mint: Mapping[str, T], mint_url: str) -> T | None:
    """A per-mint setting, its keys compared in their normal spelling."""
    return {normalise_or_strip(u): v for u, v in per_mint.items()}.get(mint_url)
