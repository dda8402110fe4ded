"""A live NUT-17 watch of proof states at one mint: `WatchManager`.

The worker says which Ys it wants watched and how urgently (`watch`, `unwatch`); the manager
keeps the mint's subscriptions equal to the best-ranked of them within its budget (watchplan.py),
one paced message at a time (wspacing.py), over a few connections (connection.py), and reports
every state it learns to `on_state(y, state, at, via)`.

Silence proves nothing (a mint may skip initial states and drop notifications; a socket may die
unnoticed), so after every subscribe, and every `snapshot_interval_s` for all watched Ys, it asks
the mint through `snapshot(ys)` (the gateway's checkstate, on the sweep's budget share) and
reports those states too. `live` tells which states are known truth now (live.py).

Failures are expected: a lost connection is replaced after a jittered exponential backoff, its
Ys count as unwatched (unknown) until resubscribed and confirmed again; a refused subscribe marks
the connection full and backs off; a mint that does not advertise NUT-17 proof_state is not
watched at all (`start` returns False) and the sweep alone covers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp

from streams.domain import MintState
from streams.mint import nut17
from streams.mint.connection import (
    MIN_SLEEP_S,
    ConnectFactory,
    MessageDropped,
    RequestRefused,
    WatchConnection,
    WatchRequestError,
    aiohttp_connector,
)
from streams.mint.health import call_safely
from streams.mint.live import LiveStates, Via
from streams.mint.pacing import Clock, LimiterSpec
from streams.mint.protocol import INFO_PATH, advertised_limit, normalise_mint_url
from streams.mint.watchconfig import NullWatchObserver, WatchConfig, WatchObserver
from streams.mint.watchplan import (
    Close,
    Open,
    PlanLimits,
    Rebuild,
    Recycle,
    Step,
    Subscribe,
    Tier,
    Unsubscribe,
    WantedSet,
    plan,
)
from streams.mint.wspacing import MessageBudget

log = logging.getLogger(__name__)

StateCallback = Callable[[str, MintState, datetime, Via], None]
"""on_state(y, state, at, via): called inline for every state learned; must be fast."""
Snapshot = Callable[[list[str]], Awaitable[Mapping[str, MintState]]]
"""snapshot(ys) -> {y: state}: the mint's current states (NUT-07 checkstate); may raise."""

_INFO_TIMEOUT_S = 5.0
_HEX = frozenset("0123456789abcdef")


class WatchManager:
    """Live proof-state watch of one mint. Create, `await start()`, feed, `await close()`."""

    def __init__(
        self,
        mint_url: str,
        *,
        snapshot: Snapshot,
        on_state: StateCallback,
        config: WatchConfig | None = None,
        observer: WatchObserver | None = None,
        connect: ConnectFactory | None = None,
        clock: Clock | None = None,
        wall_clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.mint_url = normalise_mint_url(mint_url)
        self.config = config or WatchConfig()
        self._ws_url = nut17.ws_url(self.mint_url)
        self._snapshot = snapshot
        self._on_state = on_state
        self._observer: WatchObserver = observer or NullWatchObserver()
        self._connect = connect
        self._clock = clock or time.monotonic
        self._wall_clock = wall_clock or (lambda: datetime.now(UTC))
        self._rng = rng or random.Random()
        cfg = self.config
        limiter = LimiterSpec(
            model=cfg.limiter_model,
            limit=cfg.limiter_limit,
            window_s=cfg.limiter_window_s,
            margin=cfg.limiter_margin,
            slack_s=cfg.limiter_slack_s,
        )
        self.budget = MessageBudget(
            messages_per_minute=cfg.messages_per_minute,
            burst=cfg.message_burst,
            limiter=limiter,
            clock=self._clock,
        )
        self.live = LiveStates(
            self._session_of, default_max_age_s=cfg.fresh_max_age_s, clock=self._clock
        )
        self.supported: bool | None = None  # None: not known yet (start not called, or failed)
        self._per_message = cfg.filters_per_message
        self._wanted = WantedSet()
        self._target: list[str] = []
        self._target_set: set[str] = set()
        self._home: dict[str, WatchConnection] = {}  # watched Y -> the connection watching it
        self._conns: dict[int, WatchConnection] = {}
        self._opening = 0
        self._lost = 0  # connections lost and not yet replaced
        self._failures = 0
        self._not_before = -math.inf
        self._changed = asyncio.Event()
        self._to_confirm: dict[str, None] = {}  # newly subscribed Ys, in order
        self._periodic: dict[str, None] = {}
        self._confirm_due = math.inf
        self._next_periodic = math.inf
        self._snapshot_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._http: aiohttp.ClientSession | None = None
        self._closed = False

    # --- public API ------------------------------------------------------------------------------

    async def start(self, info: Mapping[str, Any] | None = None) -> bool:
        """Start watching if the mint advertises NUT-17 proof_state subscriptions.

        `info` is the mint's /v1/info document, if the caller has it; else it is fetched (one
        HTTP request). Returns False, and watches nothing, if the mint does not advertise them
        or /v1/info could not be read (`supported` is then False or None; call again later).
        """
        if self._tasks or self._closed:
            return bool(self.supported)
        if self._connect is None:
            self._http = aiohttp.ClientSession()
            self._connect = aiohttp_connector(
                self._http, ping_interval_s=self.config.ping_interval_s, headers=self._headers
            )
        if info is None:
            info = await self._fetch_info()
            if info is None:
                return False
        self.supported = nut17.supports_proof_state(info)
        if not self.supported:
            log.info("mint %s does not advertise NUT-17 proof_state: not watched", self.mint_url)
            return False
        advertised = advertised_limit(info)  # Nutshell's cap on filters per message, too
        if advertised is not None:
            self._per_message = max(2, min(self._per_message, advertised))
        self._next_periodic = self._clock() + self.config.snapshot_interval_s
        self._tasks = [
            asyncio.create_task(self._run_forever(self._step, "planner")),
            asyncio.create_task(self._run_forever(self._snapshot_step, "snapshot")),
        ]
        return True

    def watch(self, ys: Iterable[str], *, tier: Tier = Tier.UNSPENT, score: float = 0.0) -> int:
        """Want `ys` watched with this priority (a Y watched again takes the new one).

        Returns how many were accepted; a Y that is not 66 hex characters with prefix 02/03 is
        skipped (the ledger validated them already; this only keeps garbage off the wire).
        """
        accepted = [y.lower() for y in ys if _looks_like_y(y)]
        self._wanted.add(accepted, tier, score)
        self._changed.set()
        return len(accepted)

    def unwatch(self, ys: Iterable[str]) -> None:
        """Stop watching `ys` (spent in the DB, token deleted, partition moved away)."""
        removed = self._wanted.remove(y.lower() for y in ys if isinstance(y, str))
        self._drop(removed)
        self._changed.set()

    @property
    def wanted(self) -> int:
        return len(self._wanted)

    @property
    def watched(self) -> int:
        """Ys subscribed and acknowledged on a live connection now."""
        return len(self._home)

    @property
    def connections(self) -> int:
        return len(self._conns)

    def is_watched(self, y: str) -> bool:
        return self._session_of(y.lower()) is not None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        conns, self._conns = list(self._conns.values()), {}
        self._home.clear()
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    # --- the target ------------------------------------------------------------------------------

    def _session_of(self, y: str) -> int | None:
        conn = self._home.get(y)
        return conn.session if conn is not None and conn.alive else None

    def _refresh_target(self) -> None:
        target = self._wanted.top(self.config.max_filters_per_mint)
        if target is self._target:
            return
        self._target, self._target_set = target, set(target)
        self._drop([y for y in self._home if y not in self._target_set])

    def _drop(self, ys: list[str]) -> None:
        """`ys` are no longer watched: their states are no longer known here."""
        for y in ys:
            self._home.pop(y, None)
            self._to_confirm.pop(y, None)
            self._periodic.pop(y, None)
        self.live.forget(ys)
        self._target_set.difference_update(ys)

    # --- the planner's loop ----------------------------------------------------------------------

    async def _run_forever(self, step: Callable[[], Awaitable[None]], name: str) -> None:
        while not self._closed:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end the watch: log it, pause, go on
                log.exception("watch of %s: %s step failed", self.mint_url, name)
                await asyncio.sleep(1.0)

    def _plan(self) -> Step | None:
        self._refresh_target()
        cfg = self.config
        limits = PlanLimits(
            max_connections=cfg.max_connections_per_mint,
            slots_per_connection=cfg.slots_per_connection,
            filters_per_message=self._per_message,
            max_subscriptions_per_connection=cfg.max_subscriptions_per_connection,
            rebuild_dead_fraction=cfg.rebuild_dead_fraction,
        )
        placed = {y: conn.session for y, conn in self._home.items() if conn.alive}
        return plan(self._target, placed, list(self._conns.values()), limits, opening=self._opening)

    async def _step(self) -> None:
        step = self._plan()
        if step is None:
            await self._wait_for_change(None)
            return
        wait = self._gate(step)
        if wait > 0:
            await self._wait_for_change(wait)
            return
        await self.budget.ready()
        step = self._plan()  # things may have changed while we waited for the budget
        if step is not None and self._gate(step) <= 0:
            await self._execute(step)
        self._report_gauges()

    def _gate(self, step: Step) -> float:
        """Seconds to wait before `step` (backoff after failures; tidying never waits)."""
        if isinstance(step, Unsubscribe | Close):
            return 0.0
        return max(0.0, self._not_before - self._clock())

    async def _wait_for_change(self, timeout: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)
        self._changed.clear()
        # Let a burst of watch() calls land before the next message carries them.
        await asyncio.sleep(self.config.gather_s)

    async def _execute(self, step: Step) -> None:
        if isinstance(step, Open):
            await self._open()
            return
        conn = self._conns.get(step.session)
        if conn is None or not conn.alive:
            return
        if isinstance(step, Subscribe):
            await self._subscribe(conn, step.ys)
        elif isinstance(step, Unsubscribe):
            await self._unsubscribe(conn, step.sub_id)
        elif isinstance(step, Rebuild):
            self._unhome(step.ys)  # unknown until subscribed again
            if await self._unsubscribe(conn, step.sub_id):
                await self._subscribe(conn, step.ys)
        elif isinstance(step, Recycle):
            call_safely(self._observer.reconnect, self.mint_url, reason="recycle")
            await self._discard(conn)
        else:
            await self._discard(conn)

    async def _open(self) -> None:
        assert self._connect is not None
        conn = WatchConnection(
            self._ws_url,
            connect=self._connect,
            budget=self.budget,
            hooks=_Hooks(self),
            request_timeout_s=self.config.request_timeout_s,
            keepalive_s=self.config.keepalive_s,
            clock=self._clock,
            rng=self._rng,
        )
        self._opening += 1
        try:
            await conn.open()
        except Exception as exc:
            log.info("watch of %s: connect failed: %r", self.mint_url, exc)
            self._back_off()
            return
        finally:
            self._opening -= 1
        if self._closed:
            await conn.close()
            return
        self._conns[conn.session] = conn
        if self._lost:
            self._lost -= 1
            call_safely(self._observer.reconnect, self.mint_url, reason="lost")

    async def _subscribe(self, conn: WatchConnection, ys: tuple[str, ...]) -> None:
        wanted = [y for y in ys if y in self._target_set and self._session_of(y) is None]
        if not wanted:
            return
        try:
            await conn.subscribe(wanted)
        except MessageDropped:
            self._back_off()  # the budget keeps quiet for a window; try again after
            return
        except RequestRefused as exc:
            log.info("watch of %s: subscribe refused (%d); backing off", self.mint_url, exc.code)
            call_safely(self._observer.rejected, self.mint_url, reason="subscribe refused")
            conn.full = True
            self._back_off()
            return
        except WatchRequestError:
            return  # the connection is gone; the hooks saw to it
        self._failures = 0
        for y in wanted:
            if y in self._target_set:
                self._home[y] = conn
                self._to_confirm[y] = None
        self._confirm_due = self._clock() + self.config.snapshot_delay_s
        self._snapshot_wake.set()

    async def _unsubscribe(self, conn: WatchConnection, sub_id: str) -> bool:
        try:
            await conn.unsubscribe(sub_id)
        except RequestRefused:
            # Whatever the mint thinks of it, it is not ours any more; its notifications are
            # ignored from now on.
            call_safely(self._observer.rejected, self.mint_url, reason="unsubscribe refused")
            conn.forget(sub_id)
            return True
        except WatchRequestError:
            return False
        return True

    async def _discard(self, conn: WatchConnection) -> None:
        self._conns.pop(conn.session, None)
        self._unhome([y for y, c in self._home.items() if c is conn])
        await conn.close()

    def _unhome(self, ys: Iterable[str]) -> None:
        for y in ys:
            self._home.pop(y, None)

    def _back_off(self) -> None:
        self._failures += 1
        cfg = self.config
        ceiling = min(cfg.backoff_max_s, cfg.backoff_initial_s * 2 ** (self._failures - 1))
        self._not_before = self._clock() + self._rng.uniform(ceiling / 2, ceiling)

    # --- what connections report -----------------------------------------------------------------

    def _connection_lost(self, conn: WatchConnection) -> None:
        if self._conns.pop(conn.session, None) is None:
            return
        self._unhome([y for y, c in self._home.items() if c is conn])
        self._lost += 1
        # Whoever else watches this mint lost it too: spread the reconnects.
        delay = self._rng.uniform(0, self.config.backoff_initial_s)
        self._not_before = max(self._not_before, self._clock() + delay)
        log.info(
            "watch of %s: connection lost; %d Ys unwatched until reconnected",
            self.mint_url,
            len(self._target_set) - len(self._home),
        )
        self._changed.set()
        self._report_gauges()

    def _learn(self, y: str, state: MintState, via: Via, session: int) -> None:
        if y not in self._target_set:
            return  # not watched (any more): not ours to report
        at = self._wall_clock()
        if not self.live.confirm(y, state, via=via, session=session, at=at):
            call_safely(self._observer.rejected, self.mint_url, reason="state after SPENT")
            return
        if via is Via.NOTIFICATION:
            call_safely(self._observer.notification, self.mint_url, state=state)
        call_safely(self._on_state, y, state, at, via)

    def _report_gauges(self) -> None:
        call_safely(
            self._observer.gauges,
            self.mint_url,
            wanted=len(self._wanted),
            watched=len(self._home),
            connections=len(self._conns),
        )

    # --- snapshots -------------------------------------------------------------------------------

    async def _snapshot_step(self) -> None:
        now = self._clock()
        if now >= self._next_periodic:
            self._next_periodic = now + self.config.snapshot_interval_s
            self._periodic.update(dict.fromkeys(y for y in self._target if y in self._home))
        batch = self._snapshot_batch(now)
        if not batch:
            due = min(self._next_periodic, self._confirm_due if self._to_confirm else math.inf)
            self._snapshot_wake.clear()
            timeout = None if math.isinf(due) else max(MIN_SLEEP_S, due - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._snapshot_wake.wait(), timeout)
            return
        retry_in = await self._take_snapshot(batch)
        if retry_in is not None:
            await asyncio.sleep(retry_in)

    def _snapshot_batch(self, now: float) -> list[str]:
        size = self.config.snapshot_batch_size
        batch: list[str] = []
        queues = [self._periodic]
        if now >= self._confirm_due:
            queues.insert(0, self._to_confirm)
        for queue in queues:
            while queue and len(batch) < size:
                y = next(iter(queue))
                del queue[y]
                if self._session_of(y) is not None:
                    batch.append(y)
        return batch

    async def _take_snapshot(self, batch: list[str]) -> float | None:
        """Snapshot `batch`; None if done, else seconds to wait before trying again."""
        sessions = {y: self._session_of(y) for y in batch}
        try:
            states = await self._snapshot(batch)
        except Exception as exc:
            outcome = str(getattr(exc, "code", type(exc).__name__))
            log.info("watch of %s: snapshot of %d Ys failed: %s", self.mint_url, len(batch), exc)
            call_safely(self._observer.snapshot, self.mint_url, ys=len(batch), outcome=outcome)
            # Back in line, first: they are still unconfirmed.
            self._to_confirm = dict.fromkeys(batch) | self._to_confirm
            self._confirm_due = min(self._confirm_due, self._clock())
            # The gateway says when its budget allows the next request (MintRateLimited).
            hint = getattr(exc, "retry_after", None)
            retry = self.config.snapshot_retry_s
            if isinstance(hint, int | float) and hint > 0:
                retry = min(retry, hint)
            return max(MIN_SLEEP_S, retry)
        call_safely(self._observer.snapshot, self.mint_url, ys=len(batch), outcome="ok")
        for y in batch:
            state, session = states.get(y), sessions[y]
            # Only what was read while the Y's subscription was up says anything about now.
            still_up = session is not None and self._session_of(y) == session
            if isinstance(state, MintState) and still_up:
                assert session is not None
                self._learn(y, state, Via.SNAPSHOT, session)
        return None

    async def _fetch_info(self) -> Mapping[str, Any] | None:
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(
                    self.mint_url + INFO_PATH,
                    timeout=aiohttp.ClientTimeout(total=_INFO_TIMEOUT_S),
                    headers=self._headers,
                ) as response,
            ):
                if response.status != 200:
                    raise ValueError(f"HTTP {response.status}")
                info = await response.json()
        except Exception as exc:
            log.warning("watch of %s: could not read /v1/info: %r", self.mint_url, exc)
            return None
        return info if isinstance(info, dict) else None

    @property
    def _headers(self) -> dict[str, str]:
        return dict(self.config.headers)


class _Hooks:
    """What connections report, routed to their manager."""

    def __init__(self, manager: WatchManager) -> None:
        self._m = manager

    def notified(self, conn: WatchConnection, note: nut17.Notification) -> None:
        m = self._m
        home = m._home.get(note.y)
        # A subscription's first states may come before its acknowledgement: they are confirmed
        # on this connection, and count once the subscribe is acknowledged here.
        session = home.session if home is not None and home.alive else conn.session
        m._learn(note.y, note.state, Via.NOTIFICATION, session)

    def rejected(self, conn: WatchConnection, reason: str) -> None:
        log.debug("watch of %s: rejected: %s", self._m.mint_url, reason)
        call_safely(self._m._observer.rejected, self._m.mint_url, reason=reason)

    def sent(self, conn: WatchConnection, kind: str) -> None:
        call_safely(self._m._observer.message_sent, self._m.mint_url, kind=kind)

    def refused(self, conn: WatchConnection) -> None:
        log.warning(
            "watch of %s: the mint refused a message (rate limit?): quiet", self._m.mint_url
        )
        self._m.budget.note_refused()
        call_safely(self._m._observer.rejected, self._m.mint_url, reason="message refused")

    def lost(self, conn: WatchConnection) -> None:
        self._m._connection_lost(conn)


def _looks_like_y(y: object) -> bool:
    return (
        isinstance(y, str) and len(y) == 66 and y[:2] in ("02", "03") and _HEX.issuperset(y.lower())
    )
