"""A live NUT-17 watch of proof states at one mint: `WatchManager`.

The worker says which Ys it wants watched and how urgently (`watch`, `unwatch`); the manager
keeps the mint's subscriptions equal to the best-ranked of them within its budget (watchplan.py),
one paced message at a time (wspacing.py), over a few connections (connection.py), and reports
every state it learns to `on_state(y, state, at, via)`.

Silence proves nothing (a mint may skip initial states and drop notifications; a socket may die
unnoticed), so shortly after every subscribe, and every `snapshot_interval_s` for all watched Ys,
it asks the mint through `snapshot(ys)` (the gateway's checkstate, on the sweep's budget share;
snapshots.py) and reports those states too. `live` tells which states are known truth now.

Failures are expected: a lost connection is replaced after a jittered delay, its Ys count as
unwatched (unknown) until resubscribed and confirmed again; connect failures, refused subscribes
and connections that die young back off exponentially until a connection stays up `STABLE_S`;
a mint that does not advertise NUT-17 proof_state is not watched at all (`start` returns False)
and the sweep alone covers it.
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

from streams.core.domain import MintState
from streams.core.mint_url import normalise_or_strip
from streams.mint import nut17
from streams.mint.connection import (
    ConnectFactory,
    WatchConnection,
    aiohttp_connector,
)
from streams.mint.health import call_safely
from streams.mint.limiter import Clock, LimiterSpec
from streams.mint.live import LiveStates, Via
from streams.mint.protocol import advertised_limit
from streams.mint.snapshots import SnapshotQueue
from streams.mint.watchconfig import NullWatchObserver, WatchConfig, WatchObserver
from streams.mint.watchplan import (
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
from streams.mint.watchsnap import Snapshot, WatchSnapshots
from streams.mint.watchsteps import STABLE_S, WatchSteps
from streams.mint.wspacing import MessageBudget

log = logging.getLogger(__name__)

StateCallback = Callable[[str, MintState, datetime, Via], None]
"""on_state(y, state, at, via): called inline for every state learned; must be fast."""

_HEX = frozenset("0123456789abcdef")


class WatchManager(WatchSnapshots, WatchSteps):
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
        self.mint_url = normalise_or_strip(mint_url)
        self.config = cfg = config or WatchConfig()
        self._ws_url = nut17.ws_url(self.mint_url)
        self._snapshot = snapshot
        self._on_state = on_state
        self._observer: WatchObserver = observer or NullWatchObserver()
        self._connect = connect
        self._clock = clock or time.monotonic
        self._wall_clock = wall_clock or (lambda: datetime.now(UTC))
        self._rng = rng or random.Random()
        self.budget = _budget(cfg, self._clock)
        self.live = LiveStates(
            self._subscription_of, default_max_age_s=cfg.fresh_max_age_s, clock=self._clock
        )
        self.supported: bool | None = None  # None: not known yet (start not called, or failed)
        self._per_message = cfg.filters_per_message
        self._wanted = WantedSet()
        self._target: list[str] = []
        self._target_set: set[str] = set()
        # Watched Y -> the connection and subscription (subId) watching it, once acknowledged.
        self._home: dict[str, tuple[WatchConnection, str]] = {}
        self._conns: dict[int, WatchConnection] = {}
        self._opening = 0
        self._lost = 0  # connections lost and not yet replaced
        self._failures = 0
        self._not_before = -math.inf
        self._changed = asyncio.Event()
        self._snapshots = SnapshotQueue(
            interval_s=cfg.snapshot_interval_s,
            delay_s=cfg.snapshot_delay_s,
            batch_size=cfg.snapshot_batch_size,
            clock=self._clock,
        )
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
            return bool(self._tasks)
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
        if self._connect is None:
            self._connect = aiohttp_connector(
                self._http_session(),
                ping_interval_s=self.config.ping_interval_s,
                headers=dict(self.config.headers),
            )
        self._snapshots.start()
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
        return sum(1 for conn, _ in self._home.values() if conn.alive)

    @property
    def connections(self) -> int:
        return len(self._conns)

    def is_watched(self, y: str) -> bool:
        return self._subscription_of(y.lower()) is not None

    def layout(self) -> dict[int, list[int]]:
        """Per open connection, the sizes of its subscriptions (for metrics and debugging)."""
        return {
            session: sorted(len(ys) for ys in conn.subscriptions.values())
            for session, conn in self._conns.items()
        }

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

    def _subscription_of(self, y: str) -> str | None:
        home = self._home.get(y)
        return home[1] if home is not None and home[0].alive else None

    def _refresh_target(self) -> None:
        target = self._wanted.top(self.config.max_filters_per_mint)
        if target is self._target:
            return
        new = set(target)
        gone = [y for y in self._target_set if y not in new]
        self._target, self._target_set = target, new
        self._drop(gone)

    def _drop(self, ys: list[str]) -> None:
        """`ys` are no longer watched: their states are no longer known here."""
        self._unhome(ys)
        self._snapshots.drop(ys)
        self.live.forget(ys)
        self._target_set.difference_update(ys)

    def _unhome(self, ys: Iterable[str]) -> None:
        for y in ys:
            self._home.pop(y, None)

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
        placed = {y: conn.session for y, (conn, _) in self._home.items() if conn.alive}
        conns = list(self._conns.values())
        return plan(self._target, placed, conns, limits, opening=self._opening)

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
        """Seconds to wait before `step`: the backoff (tidying up never waits for it)."""
        if isinstance(step, Open | Subscribe | Rebuild | Recycle):
            return max(0.0, self._not_before - self._clock())
        return 0.0

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
        else:  # Recycle or Close
            if isinstance(step, Recycle):
                call_safely(self._observer.reconnect, self.mint_url, reason="recycle")
            await self._discard(conn)

    def _hooks(self) -> _Hooks:
        return _Hooks(self)

    # --- what connections report -----------------------------------------------------------------

    def _connection_lost(self, conn: WatchConnection) -> None:
        if self._conns.pop(conn.session, None) is None:
            return
        self._unhome([y for y, (c, _) in self._home.items() if c is conn])
        self._lost += 1
        if self._clock() - conn.opened_at < STABLE_S:
            self._back_off()  # dying young: do not hammer the mint with reconnects
        else:
            # Whoever else watches this mint lost it too: spread the reconnects.
            delay = self._rng.uniform(0, self.config.backoff_initial_s)
            self._not_before = max(self._not_before, self._clock() + delay)
        log.info(
            "watch of %s: connection lost; %d Ys unwatched until reconnected",
            self.mint_url,
            len(self._target_set) - self.watched,
        )
        self._changed.set()
        self._report_gauges()

    def _learn(self, y: str, state: MintState, via: Via, subscription: str | None) -> None:
        if y not in self._target_set:
            return  # not watched (any more): not ours to report
        if self.live.is_stale(y, state):
            call_safely(self._observer.rejected, self.mint_url, reason="state after SPENT")
            return
        at = self._wall_clock()
        if subscription is not None:
            self.live.confirm(y, state, via=via, subscription=subscription, at=at)
        if via is Via.NOTIFICATION:
            call_safely(self._observer.notification, self.mint_url, state=state)
        call_safely(self._on_state, y, state, at, via)

    def _report_gauges(self) -> None:
        call_safely(
            self._observer.gauges,
            self.mint_url,
            wanted=len(self._wanted),
            watched=self.watched,
            connections=len(self._conns),
        )


class _Hooks:
    """What connections report, routed to their manager."""

    def __init__(self, manager: WatchManager) -> None:
        self._m = manager

    def notified(self, conn: WatchConnection, note: nut17.Notification) -> None:
        # Any notification is the mint's truth when it was sent; it confirms the Y for the
        # subscription watching it now. A Y not placed yet is being subscribed: its first
        # states may precede the acknowledgement, and count once its subscription is placed.
        current = self._m._subscription_of(note.y)
        if current is None and note.sub_id == conn.keepalive_sub:
            self._m._learn(note.y, note.state, Via.NOTIFICATION, None)
            return
        self._m._learn(note.y, note.state, Via.NOTIFICATION, current or note.sub_id)

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


def _budget(cfg: WatchConfig, clock: Clock) -> MessageBudget:
    """One budget per mint for every message its connections send, connects included."""
    limiter = LimiterSpec(
        model=cfg.limiter_model,
        limit=cfg.limiter_limit,
        window_s=cfg.limiter_window_s,
        margin=cfg.limiter_margin,
        slack_s=cfg.limiter_slack_s,
    )
    return MessageBudget(
        messages_per_minute=cfg.messages_per_minute,
        burst=cfg.message_burst,
        limiter=limiter,
        clock=clock,
    )


def _looks_like_y(y: object) -> bool:
    return (
        isinstance(y, str) and len(y) == 66 and y[:2] in ("02", "03") and _HEX.issuperset(y.lower())
    )
