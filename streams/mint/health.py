"""A gateway's health as others see it, and the notifications when it changes.

Health is derived (from the breaker, the 429 silence and the failure count), so it can change with
no event at all, when a silence or cool-down simply runs out: a timer looks again then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from streams.mint.observer import GatewayObserver, HealthListener, MintHealth

log = logging.getLogger(__name__)

Assessment = tuple[MintHealth, float]
"""(health now, seconds after which it may change by itself; 0 if it will not)."""


def call_safely(hook: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """Run an observer or listener; what it raises is logged, never propagated into a check."""
    try:
        hook(*args, **kwargs)
    except Exception:
        log.exception("a mint gateway observer or listener raised")


class HealthTracker:
    def __init__(
        self, mint_url: str, assess: Callable[[], Assessment], observer: GatewayObserver
    ) -> None:
        self._mint_url = mint_url
        self._assess = assess
        self._observer = observer
        self._listeners: list[HealthListener] = []
        self._health = MintHealth.OK
        self._timer: asyncio.TimerHandle | None = None

    @property
    def current(self) -> MintHealth:
        self.refresh()
        return self._health

    def add_listener(self, listener: HealthListener) -> None:
        self._listeners.append(listener)

    def refresh(self) -> None:
        new, recheck_in = self._assess()
        old = self._health
        if new is not old:
            self._health = new
            log.info("mint %s health %s -> %s", self._mint_url, old, new)
            call_safely(self._observer.health_changed, self._mint_url, old, new)
            for listener in list(self._listeners):
                call_safely(listener, self._mint_url, old, new)
        # Rescheduled on every look, not only on a change: a later 429 extends the silence
        # without changing the health, and the recovery must still be noticed when it ends.
        self._schedule(recheck_in)

    def _schedule(self, delay: float) -> None:
        self.close()
        if delay <= 0:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # assessed outside the loop; the next event or access looks again
        self._timer = loop.call_later(delay + 0.01, self.refresh)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
