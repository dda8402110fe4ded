"""An asyncio loop on virtual time: when nothing is ready, the clock jumps to the next timer.

Hours of pacing, keep-alives and backoff run in milliseconds, deterministically. Only for code
whose I/O is in memory (fake transports): a real socket's data would arrive "late" while virtual
time races ahead.

    def test_x() -> None:
        run_virtual(scenario())          # inside: asyncio.get_running_loop().time() is virtual
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector:
    def __init__(self, real: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        self._real = real
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        events = self._real.select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            raise RuntimeError("virtual time: nothing scheduled and nothing to wait for (deadlock)")
        self._loop.now += timeout
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, start: float = 1000.0) -> None:
        super().__init__()
        self.now = start
        real: Any = self._selector  # type: ignore[has-type]
        self._selector = _JumpingSelector(real, self)

    def time(self) -> float:
        return self.now


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
