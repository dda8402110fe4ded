"""Bounded memories of what mints said: the SPENT set and the last state seen per Y.

SPENT is final (NUT-07), so a Y once read SPENT from a valid answer is never sent again: that is
the only state worth caching. UNSPENT and PENDING can change at any moment and are not cached for
decisions; they are only remembered for display ("last mint state seen"). Both are LRU-bounded so a
long-running worker's memory stays flat. Callers add only from answers that passed validation.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime
from typing import Generic, NamedTuple, TypeVar

from streams.core.domain import MintState

K = TypeVar("K")
V = TypeVar("V")


class LruMap(Generic[K, V]):
    """A mapping that forgets its least recently used entry beyond `maxsize` (0: keeps nothing)."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 0:
            raise ValueError("maxsize must be >= 0")
        self.maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if self.maxsize == 0:
            return
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)


class SpentCache:
    """Ys a mint has answered SPENT. Membership is final; only the size bound forgets."""

    def __init__(self, maxsize: int) -> None:
        self._lru: LruMap[str, bool] = LruMap(maxsize)

    def __len__(self) -> int:
        return len(self._lru)

    def __contains__(self, y: object) -> bool:
        return y in self._lru

    def add(self, y: str) -> None:
        self._lru.put(y, True)

    def partition(self, ys: Iterable[str]) -> tuple[list[str], list[str]]:
        """Split `ys` into (known SPENT, still to ask), preserving order; hits are refreshed."""
        hits: list[str] = []
        misses: list[str] = []
        for y in ys:
            (hits if self._lru.get(y) else misses).append(y)
        return hits, misses


class SeenState(NamedTuple):
    """The last state a mint gave for a Y, and when (UTC)."""

    state: MintState
    seen_at: datetime
