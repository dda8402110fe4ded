"""The watch's connection steps: open a connection, subscribe and unsubscribe Ys on it, discard
it, back off after a failure. The planner (watchplan.py) says which step is next; `WatchManager`
inherits these and owns the state they declare."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable

from streams.mint.connection import (
    ConnectFactory,
    ConnectionHooks,
    MessageDropped,
    RequestRefused,
    WatchConnection,
    WatchRequestError,
)
from streams.mint.health import call_safely
from streams.mint.limiter import Clock
from streams.mint.snapshots import SnapshotQueue
from streams.mint.watchconfig import WatchConfig, WatchObserver
from streams.mint.wspacing import MessageBudget

log = logging.getLogger("streams.mint.watch")


# A connection that stayed up this long proves the mint takes us: failures are forgiven.
STABLE_S = 60.0


class WatchSteps:
    """State the connection steps use; `WatchManager.__init__` sets every one of them."""

    mint_url: str
    config: WatchConfig
    budget: MessageBudget
    _ws_url: str
    _connect: ConnectFactory | None
    _conns: dict[int, WatchConnection]
    _home: dict[str, tuple[WatchConnection, str]]
    _target_set: set[str]
    _opening: int
    _lost: int
    _failures: int
    _not_before: float
    _observer: WatchObserver
    _snapshots: SnapshotQueue
    _snapshot_wake: asyncio.Event
    _clock: Clock
    _rng: random.Random
    _closed: bool

    def _subscription_of(self, y: str) -> str | None:
        raise NotImplementedError

    def _unhome(self, ys: Iterable[str]) -> None:
        raise NotImplementedError

    def _hooks(self) -> ConnectionHooks:
        raise NotImplementedError

    async def _open(self) -> None:
        assert self._connect is not None
        conn = WatchConnection(
            self._ws_url,
            connect=self._connect,
            budget=self.budget,
            hooks=self._hooks(),
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
        wanted = [y for y in ys if y in self._target_set and self._subscription_of(y) is None]
        if not wanted:
            return
        try:
            sub_id = await conn.subscribe(wanted)
        except MessageDropped:
            self._back_off()  # the budget keeps a quiet window; then this is tried again
            return
        except RequestRefused as exc:
            log.info("watch of %s: subscribe refused (%d); backing off", self.mint_url, exc.code)
            call_safely(self._observer.rejected, self.mint_url, reason="subscribe refused")
            conn.full = True
            self._back_off()
            return
        except WatchRequestError:
            return  # the connection is gone; the hooks saw to it
        placed = [y for y in wanted if y in self._target_set]
        for y in placed:
            self._home[y] = (conn, sub_id)
        self._snapshots.subscribed(placed)
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
        self._unhome([y for y, (c, _) in self._home.items() if c is conn])
        await conn.close()

    def _back_off(self) -> None:
        now = self._clock()
        if any(now - c.opened_at >= STABLE_S for c in self._conns.values()):
            self._failures = 0  # the mint has been taking us: this is a fresh failure
        self._failures += 1
        cfg = self.config
        ceiling = min(cfg.backoff_max_s, cfg.backoff_initial_s * 2 ** (self._failures - 1))
        self._not_before = now + self._rng.uniform(ceiling / 2, ceiling)
