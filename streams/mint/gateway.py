"""The mint gateway: the only way proofrecon asks a mint for proof states (NUT-07 checkstate).

One gateway per mint URL. Callers ask `check(ys)` concurrently; the gateway

- answers Ys known SPENT from its cache (SPENT is final) without asking the mint;
- gathers the rest for `gather_window_ms` and merges every caller's Ys into shared requests,
  deduplicated and cut into chunks of at most the mint's limit (min of configured, advertised,
  and learned by halving on a too-long answer). Batching is the whole game: 1 Y costs a mint
  about as much as 100, and a real mint allows a client 60 requests until it pauses a minute;
- sends a chunk only with a pacing token (see pacing.py: a model of the mint's rate limiter,
  a token bucket below it) and the circuit breaker's leave; chunks go out concurrently;
- once half of the limiter's budget is used (`limiter_widen_after`), holds a batch for more
  callers: it goes when a request is full, when its first caller waited `limiter_max_gather_ms`,
  or in time for its earliest caller's deadline. Fewer, fuller requests make the budget last;
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
from typing import Any, NamedTuple

import httpx

from streams.domain import MintState, Source
from streams.errors import (
    CanaryMismatch,
    MintCircuitOpen,
    MintDeadlineExceeded,
    MintError,
    MintNotAllowed,
    MintProtocolError,
    MintRateLimited,
    MintTransportError,
    MintUnavailable,
)
from streams.mint.batching import Ask, AskQueue, Chunk, ErrorFactory
from streams.mint.breaker import BreakerState, CircuitBreaker
from streams.mint.cache import LruMap, SeenState, SpentCache
from streams.mint.health import Assessment, HealthTracker, call_safely
from streams.mint.observer import (
    GatewayObserver,
    HealthListener,
    MintHealth,
    NullObserver,
    RequestOutcome,
)
from streams.mint.pacing import BACKGROUND, Clock, LimiterSpec, Pacer
from streams.mint.protocol import (
    BadAnswer,
    RateLimited,
    States,
    TooLong,
    advertised_limit,
    normalise_mint_url,
)
from streams.mint.transport import Exchange, MintHttp, outcome_of, was_answered
from streams.settings import MintSettings

log = logging.getLogger(__name__)

DEFAULT_SWEEP_SHARE = 0.25
DEFAULT_VALIDATE_SHARE = 0.05
# /v1/info is a hint; a slow one must not hold anything up, and a failed read is retried later.
_INFO_TIMEOUT_S = 2.0
_INFO_RETRY_S = 60.0
# Fewer seconds than this left before a deadline are not worth a retry.
_MIN_ATTEMPT_S = 0.01
# A held batch leaves this long before its earliest caller's deadline, plus twice the mint's
# recent latency, so the answer still arrives in time.
_HOLD_RESERVE_S = 0.2
_INITIAL_LATENCY_S = 0.05
# Full answers at a learned (halved) limit before the gateway tries twice as many Ys again.
_GROW_AFTER_ANSWERS = 20


class SweepAllowance(NamedTuple):
    """What the sweep may send to a mint right now without waiting or touching preflight budget."""

    requests: int
    ys: int


class MintGateway:
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
        self.mint_url = normalise_mint_url(mint_url)
        allowed = {normalise_mint_url(u) for u in settings.allowlist}
        if self.mint_url not in allowed:
            # Defence in depth: the registry refuses first, but a gateway must never exist for
            # a mint outside the allow-list, however it was built.
            raise MintNotAllowed("not on the allow-list", mint_url=self.mint_url)
        self.settings = settings
        self._clock = clock or time.monotonic
        self._wall_clock = wall_clock or (lambda: datetime.now(UTC))
        self._rng = rng or random.Random()
        self._observer: GatewayObserver = observer or NullObserver()
        self._pacer = Pacer(
            requests_per_minute=settings.requests_per_minute,
            burst=settings.burst,
            silence_s=settings.rate_limit_silence_s,
            sweep_share=sweep_budget_share,
            validate_share=validate_budget_share,
            limiter=LimiterSpec(
                model=settings.limiter_model,
                limit=settings.limiter_limit,
                window_s=settings.limiter_window_s,
                margin=settings.limiter_margin,
                slack_s=settings.limiter_slack_s,
            ),
            widen_after=settings.limiter_widen_after,
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
        canaries = {normalise_mint_url(u): y.lower() for u, y in settings.canaries.items()}
        self.canary: str | None = canaries.get(self.mint_url)
        self._limit = settings.max_batch_size
        self._good_at_limit = 0
        self._advertised: int | None = None
        self._info_state: str = "unknown"  # unknown | fetching | known
        self._info_tried_at = -math.inf
        headers = {normalise_mint_url(u): h for u, h in settings.request_headers.items()}
        self._http = MintHttp(
            self.mint_url,
            request_timeout_s=settings.request_timeout_s,
            transport=transport,
            event_hooks=event_hooks,
            headers=headers.get(self.mint_url),
        )
        self._queue = AskQueue()
        self._wakeup = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        self._slot_freed = asyncio.Event()
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

    def is_known_spent(self, y: str) -> bool:
        return y.lower() in self._spent

    @property
    def effective_limit(self) -> int:
        """Most Ys per request now: min(configured, advertised, learned from too-long answers)."""
        return self._limit

    @property
    def advertised_limit(self) -> int | None:
        """What the mint's /v1/info advertises (None: not read yet, or it says nothing)."""
        return self._advertised

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
            # Let concurrent callers join before the first request goes out.
            await asyncio.sleep(gather_s)
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
        """How much longer the queued batch should wait for more callers (0: send it now).

        Only once the limiter's budget runs low (see pacing.py): then a request should carry as
        many callers as their deadlines allow.
        """
        if not self._pacer.widening() or len(self._queue) >= self._capacity():
            return 0.0
        if self._pacer.quiet_remaining() > 0:
            return 0.0  # the batch gathers anyway while the quiet passes
        first, earliest = self._queue.first_added(), self._queue.earliest_deadline()
        if first is None or earliest is None:
            return 0.0
        reserve = _HOLD_RESERVE_S + 2 * self._latency_s
        until = min(first + self.settings.limiter_max_gather_ms / 1000, earliest - reserve)
        return max(0.0, until - self._clock())

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
        return max(1, self._limit - 1) if self.canary else self._limit

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

    def _limit_cap(self) -> int:
        advertised = self._advertised or self.settings.max_batch_size
        return min(self.settings.max_batch_size, advertised)

    def _note_good_answer(self, sent: int) -> None:
        """A learned limit grows back: after enough full answers at it, try twice as many (a
        too-long answer that was a glitch must not shrink requests for good)."""
        if self._limit >= self._limit_cap() or sent < self._limit:
            return
        self._good_at_limit += 1
        if self._good_at_limit >= _GROW_AFTER_ANSWERS:
            self._good_at_limit = 0
            self._limit = min(self._limit_cap(), self._limit * 2)
            log.info("mint %s: %d full answers; limit now %d", self.mint_url, sent, self._limit)

    async def _halve(self, chunk: Chunk, ys: list[str], sent: int, reason: str) -> None:
        self._good_at_limit = 0
        self._limit = min(self._limit, max(1, sent // 2))
        capacity = self._capacity()
        if capacity >= len(ys):
            raise MintProtocolError(
                f"mint refuses a request of {sent} Ys as too long ({reason})",
                mint_url=self.mint_url,
            )
        log.info("mint %s: %s for %d Ys; limit now %d", self.mint_url, reason, sent, self._limit)
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
        self._advertised = advertised_limit(answer[1])
        if self._advertised is not None and self._advertised < self._limit:
            self._limit = self._advertised
            log.info("mint %s advertises at most %d Ys per request", self.mint_url, self._limit)

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
