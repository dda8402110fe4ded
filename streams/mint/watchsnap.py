"""The watch's checkstate side: snapshots of the watched Ys through the gateway (silence proves
nothing: initial notifications may be missing, notifications may be dropped) and the one read
of /v1/info that tells whether the mint supports NUT-17 proof_state. `WatchManager` inherits it
and owns the state it declares."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import aiohttp

from streams.core.domain import MintState
from streams.mint.connection import (
    MIN_SLEEP_S,
)
from streams.mint.health import call_safely
from streams.mint.limiter import Clock
from streams.mint.live import LiveStates, Via
from streams.mint.protocol import INFO_PATH
from streams.mint.snapshots import SnapshotQueue
from streams.mint.watchconfig import WatchConfig, WatchObserver

log = logging.getLogger("streams.mint.watch")

Snapshot = Callable[[list[str]], Awaitable[Mapping[str, MintState]]]
"""snapshot(ys) -> {y: state}: the mint's current states (NUT-07 checkstate); may raise."""
_INFO_TIMEOUT_S = 5.0


class WatchSnapshots:
    """State the snapshot methods use; `WatchManager.__init__` sets every one of them."""

    mint_url: str
    config: WatchConfig
    live: LiveStates
    _snapshot: Snapshot
    _snapshots: SnapshotQueue
    _snapshot_wake: asyncio.Event
    _observer: WatchObserver
    _clock: Clock
    _wall_clock: Callable[[], datetime]
    _http: aiohttp.ClientSession | None
    _closed: bool
    _target: list[str]

    def _learn(self, y: str, state: MintState, via: Via, subscription: str | None) -> None:
        raise NotImplementedError

    def _subscription_of(self, y: str) -> str | None:
        raise NotImplementedError

    # --- snapshots -------------------------------------------------------------------------------

    async def _snapshot_step(self) -> None:
        batch = self._snapshots.next_batch(
            lambda y: self._subscription_of(y) is not None,
            lambda: [y for y in self._target if self._subscription_of(y) is not None],
        )
        if not batch:
            self._snapshot_wake.clear()
            wait = self._snapshots.wait_s()
            timeout = None if wait is None else max(MIN_SLEEP_S, wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._snapshot_wake.wait(), timeout)
            return
        retry_in = await self._take_snapshot(batch)
        if retry_in is not None:
            await asyncio.sleep(retry_in)

    async def _take_snapshot(self, batch: list[str]) -> float | None:
        """Snapshot `batch`; None if done, else seconds to wait before trying again."""
        watching = {y: self._subscription_of(y) for y in batch}
        try:
            states = await self._snapshot(batch)
        except Exception as exc:
            outcome = str(getattr(exc, "code", type(exc).__name__))
            log.info("watch of %s: snapshot of %d Ys failed: %s", self.mint_url, len(batch), exc)
            call_safely(self._observer.snapshot, self.mint_url, ys=len(batch), outcome=outcome)
            self._snapshots.failed(batch)
            # The gateway says when its budget allows the next request (MintRateLimited).
            hint = getattr(exc, "retry_after", None)
            retry = self.config.snapshot_retry_s
            if isinstance(hint, int | float) and hint > 0:
                retry = min(retry, hint)
            return max(MIN_SLEEP_S, retry)
        call_safely(self._observer.snapshot, self.mint_url, ys=len(batch), outcome="ok")
        for y in batch:
            state, subscription = states.get(y), watching[y]
            # Only what was read while the Y's subscription stood says anything about now.
            if isinstance(state, MintState) and subscription == self._subscription_of(y):
                self._learn(y, state, Via.SNAPSHOT, subscription)
        return None

    # --- /v1/info --------------------------------------------------------------------------------

    def _http_session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http

    async def _fetch_info(self) -> Mapping[str, Any] | None:
        try:
            async with self._http_session().get(
                self.mint_url + INFO_PATH,
                timeout=aiohttp.ClientTimeout(total=_INFO_TIMEOUT_S),
                headers=dict(self.config.headers),
            ) as response:
                if response.status != 200:
                    raise ValueError(f"HTTP {response.status}")
                info = await response.json()
        except Exception as exc:
            log.warning("watch of %s: could not read /v1/info: %r", self.mint_url, exc)
            return None
        return info if isinstance(info, dict) else None
