"""When a live watch asks the mint for the states of its watched Ys (checkstate). Pure.

Notifications alone prove nothing: CDK sends no initial state for a Y it never saw, drops
notifications under bursts, and a socket can die unnoticed. So every Y is snapshotted

- shortly after its subscription is acknowledged (`delay_s`, so that the subscribes of a
  (re)connect share requests), before any periodic round: until then a CDK mint has told us
  nothing about it;
- and every `interval_s` with all other watched Ys, to catch what was dropped.

Batches carry at most `batch_size` Ys (one checkstate request each). A batch that failed goes
back to the front of the line.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from streams.mint.limiter import Clock


class SnapshotQueue:
    def __init__(self, *, interval_s: float, delay_s: float, batch_size: int, clock: Clock) -> None:
        self.interval_s = interval_s
        self.delay_s = delay_s
        self.batch_size = batch_size
        self._clock = clock
        self._fresh: dict[str, None] = {}  # newly subscribed, in order
        self._periodic: dict[str, None] = {}
        self._fresh_due = math.inf
        self._next_round = math.inf

    def start(self) -> None:
        self._next_round = self._clock() + self.interval_s

    def subscribed(self, ys: Iterable[str]) -> None:
        self._fresh.update(dict.fromkeys(ys))
        self._fresh_due = self._clock() + self.delay_s

    def failed(self, ys: list[str]) -> None:
        """A batch got no answer: its Ys are still unconfirmed, first in line."""
        self._fresh = dict.fromkeys(ys) | self._fresh
        self._fresh_due = min(self._fresh_due, self._clock())

    def drop(self, ys: Iterable[str]) -> None:
        for y in ys:
            self._fresh.pop(y, None)
            self._periodic.pop(y, None)

    def next_batch(
        self, watched: Callable[[str], bool], everyone: Callable[[], list[str]]
    ) -> list[str]:
        """The next Ys to snapshot (empty: nothing due). `watched(y)`: is it watched now;
        `everyone()`: all watched Ys, best ranked first, for a periodic round."""
        now = self._clock()
        if now >= self._next_round:
            self._next_round = now + self.interval_s
            self._periodic.update(dict.fromkeys(everyone()))
        queues = [self._fresh, self._periodic] if now >= self._fresh_due else [self._periodic]
        batch: list[str] = []
        for queue in queues:
            while queue and len(batch) < self.batch_size:
                y = next(iter(queue))
                del queue[y]
                if watched(y):  # one that lost its subscription is queued again when resubscribed
                    batch.append(y)
        return batch

    def wait_s(self) -> float | None:
        """Seconds until something may be due (None: only when a subscribe says so)."""
        due = min(self._next_round, self._fresh_due if self._fresh else math.inf)
        return None if math.isinf(due) else max(0.0, due - self._clock())
