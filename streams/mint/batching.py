"""The gateway's waiting room: callers' asks, the queue of Ys not yet sent, and chunks in flight.

Pure data structures (no I/O, no clock of their own), so the coalescing rules are plain code:
a Y asked by several callers is queued once; a chunk takes preflight Ys before sweep Ys, which
only fill the room left; every caller gets exactly its own Ys back, or an error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from streams.core.domain import MintState, Source
from streams.core.errors import MintError
from streams.mint.pacing import BACKGROUND

ErrorFactory = Callable[[], MintError]


@dataclass(eq=False)
class Ask:
    """One caller's check: the Ys it still waits for and where its answer goes."""

    source: Source
    deadline: float
    future: asyncio.Future[None]
    pending: set[str]
    results: dict[str, MintState] = field(default_factory=dict)
    added_at: float = 0.0  # when the caller joined the queue (the gateway's clock)

    @property
    def live(self) -> bool:
        return not self.future.done()

    def answer(self, y: str, state: MintState) -> None:
        if not self.live:
            return
        self.results[y] = state
        self.pending.discard(y)
        if not self.pending:
            self.future.set_result(None)

    def fail(self, error: ErrorFactory) -> None:
        if self.live:
            self.future.set_exception(error())


def _payer(asks: Sequence[Ask]) -> Source:
    """Whose budget a request for these asks spends: PREFLIGHT if any of them is urgent (or
    there are none), else VALIDATE when only validate waits, else SWEEP."""
    sources = {a.source for a in asks}
    if not sources or sources - BACKGROUND:
        return Source.PREFLIGHT
    return Source.VALIDATE if sources == {Source.VALIDATE} else Source.SWEEP


def _unique_live(asks: Iterable[Ask]) -> list[Ask]:
    return list({id(a): a for a in asks if a.live}.values())


@dataclass(eq=False)
class Chunk:
    """Ys sent together, and the asks waiting on each of them."""

    asks: dict[str, list[Ask]]

    def live_asks(self, ys: Sequence[str]) -> list[Ask]:
        return _unique_live(a for y in ys for a in self.asks.get(y, ()))

    def source(self, ys: Sequence[str]) -> Source:
        """A background source only if every caller still waiting on `ys` is one."""
        return _payer(self.live_asks(ys))

    def deliver(self, ys: Sequence[str], states: dict[str, MintState]) -> None:
        for y in ys:
            for ask in self.asks.get(y, ()):
                ask.answer(y, states[y])

    def fail(self, ys: Sequence[str], error: ErrorFactory) -> None:
        for ask in self.live_asks(ys):
            ask.fail(error)


class AskQueue:
    """Ys waiting for a request, in arrival order, each with the asks that want it."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[Ask]] = {}

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def __len__(self) -> int:
        """Distinct Ys waiting."""
        return len(self._waiting)

    def _live(self) -> list[Ask]:
        return _unique_live(a for waiting in self._waiting.values() for a in waiting)

    def first_added(self) -> float | None:
        """When the longest-waiting caller still queued joined (None: nobody waits)."""
        return min((a.added_at for a in self._live()), default=None)

    def earliest_deadline(self) -> float | None:
        """The most urgent deadline among the callers still queued (None: nobody waits)."""
        return min((a.deadline for a in self._live()), default=None)

    def add(self, ask: Ask, ys: Sequence[str]) -> None:
        """Queue `ask` for `ys` (its pending Ys, in the caller's order: requests keep it)."""
        for y in ys:
            self._waiting.setdefault(y, []).append(ask)

    def forget(self, ask: Ask) -> None:
        """Take a caller that stopped waiting out of the queue; Ys nobody wants any more go."""
        for y in ask.pending:
            waiting = self._waiting.get(y)
            if waiting is None:
                continue
            with contextlib.suppress(ValueError):
                waiting.remove(ask)
            if not waiting:
                del self._waiting[y]

    def source(self) -> Source:
        """PREFLIGHT if any queued caller is not a background one: then the queue may wait for
        budget. Otherwise the background source that pays for the next request."""
        return _payer(self._live())

    def take_chunk(self, capacity: int) -> tuple[Chunk, list[str]]:
        """Pop up to `capacity` Ys: preflight Ys first, sweep Ys fill the rest."""
        urgent: list[str] = []
        rest: list[str] = []
        for y, asks in self._waiting.items():
            (urgent if any(a.source not in BACKGROUND for a in asks) else rest).append(y)
        chosen = (urgent + rest)[:capacity]
        return Chunk({y: self._waiting.pop(y) for y in chosen}), chosen

    def fail_all(self, error: ErrorFactory) -> None:
        asks = self._live()
        self._waiting.clear()
        for ask in asks:
            ask.fail(error)

    def fail_due_before(self, horizon: float, error: ErrorFactory) -> None:
        """Fail the asks whose deadline comes before `horizon` (they cannot be served in time)."""
        asks = self._live()
        for ask in asks:
            if ask.deadline < horizon:
                ask.fail(error)
