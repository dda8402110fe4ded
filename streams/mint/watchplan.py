"""Which Ys to watch at a mint, and the next message that brings the watch closer to that. Pure.

The worker may want far more Ys watched than a mint allows one client, so the wanted set is
ranked and only its top (`max_filters_per_mint`) is the *target*:

1. Tier.PENDING: proofs the wallet's DB calls pending (an in-flight melt: the mint's word decides
   how it ended, and a PENDING proof that went back to UNSPENT is reclaimable);
2. Tier.MELT: proofs of recent melt requests (a second melt of the same proofs is the double
   spend the preflight exists to block);
3. Tier.UNSPENT: the rest, by a score the worker picks (recently changed, larger amounts first).

Within a tier a higher score ranks first, then the Y watched earlier (so equal priorities do not
churn). A Y watched again takes its new priority.

Every message counts against the mint's rate limit (wspacing.py), so the planner picks one step
at a time, most useful first, and the manager executes it when the budget allows:

1. subscribe target Ys not watched yet, best ranked first, on a live connection with room (a
   connection holds at most `slots_per_connection` distinct Ys *ever*: Nutshell never frees a
   filter on unsubscribe, and refuses new filters once a connection holds 1000), as many per
   message as allowed;
2. else open a connection, if fewer than `max_connections` are open;
3. else recycle (close, then reopen and resubscribe) the connection whose slots are most wasted
   on Ys no longer watched, or that the mint refused to extend;
4. then tidy: unsubscribe subscriptions none of whose Ys is watched any more, close connections
   left with nothing, and rebuild (unsubscribe, resubscribe the rest) subscriptions mostly made
   of Ys no longer watched. Until then the mint keeps notifying us about them; we ignore it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from sortedcontainers import SortedList


class Tier(IntEnum):
    """How urgently a Y should be watched (lower first)."""

    PENDING = 0
    MELT = 1
    UNSPENT = 2


class WantedSet:
    """The Ys the worker wants watched at one mint, ranked: tier first, then higher score, then
    first wanted. Kept sorted, so a change costs O(log n) and the top is a slice: the worker
    feeds it its whole book (a million Ys), and the planner asks for the top after changes."""

    def __init__(self) -> None:
        self._keys: dict[str, tuple[int, float, int]] = {}
        self._ranked: SortedList = SortedList()  # (tier, -score, seq, y)
        self._order = itertools.count()
        self._top: list[str] | None = None
        self._top_n = -1

    def add(self, ys: Iterable[str], tier: Tier, score: float) -> None:
        for y in ys:
            known = self._keys.get(y)
            if known is not None and known[:2] == (int(tier), -score):
                continue  # unchanged: the ranking stays valid
            if known is not None:
                self._ranked.remove((*known, y))
            seq = known[2] if known is not None else next(self._order)
            key = (int(tier), -score, seq)
            self._keys[y] = key
            self._ranked.add((*key, y))
            self._top = None

    def remove(self, ys: Iterable[str]) -> list[str]:
        removed = []
        for y in ys:
            known = self._keys.pop(y, None)
            if known is not None:
                self._ranked.remove((*known, y))
                removed.append(y)
        if removed:
            self._top = None
        return removed

    def top(self, n: int) -> list[str]:
        """The `n` best-ranked Ys, best first (cached until the set changes)."""
        if self._top is None or self._top_n != n:
            self._top, self._top_n = [item[3] for item in self._ranked.islice(0, n)], n
        return self._top

    def __contains__(self, y: object) -> bool:
        return y in self._keys

    def __len__(self) -> int:
        return len(self._keys)


@dataclass(frozen=True, slots=True)
class PlanLimits:
    max_connections: int
    slots_per_connection: int
    filters_per_message: int
    max_subscriptions_per_connection: int
    rebuild_dead_fraction: float


class ConnView(Protocol):
    """What the planner reads of a connection (WatchConnection satisfies it)."""

    @property
    def session(self) -> int: ...
    @property
    def alive(self) -> bool: ...
    @property
    def full(self) -> bool: ...
    @property
    def subscriptions(self) -> Mapping[str, frozenset[str]]: ...
    @property
    def slots_used(self) -> AbstractSet[str]: ...


@dataclass(frozen=True, slots=True)
class Open:
    pass


@dataclass(frozen=True, slots=True)
class Subscribe:
    session: int
    ys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    session: int
    sub_id: str


@dataclass(frozen=True, slots=True)
class Rebuild:
    session: int
    sub_id: str
    ys: tuple[str, ...]  # the subscription's Ys still watched there


@dataclass(frozen=True, slots=True)
class Recycle:
    session: int


@dataclass(frozen=True, slots=True)
class Close:
    session: int


Step = Open | Subscribe | Unsubscribe | Rebuild | Recycle | Close


def plan(
    ranked: Sequence[str],
    placed: Mapping[str, int],
    conns: Sequence[ConnView],
    limits: PlanLimits,
    *,
    opening: int = 0,
) -> Step | None:
    """The next step toward watching exactly `ranked` (the target, best first).

    `placed` maps each watched Y to the session that watches it (acknowledged, alive);
    `conns` are the live connections; `opening` counts connections being opened now.
    """
    live = [c for c in conns if c.alive]
    unplaced = [y for y in ranked if y not in placed]
    if unplaced:
        step = _place(unplaced, placed, live, limits, opening)
        if step is not None:
            return step
    return _tidy(placed, live, limits)


def _room(conn: ConnView, limits: PlanLimits) -> int:
    if conn.full or len(conn.subscriptions) >= limits.max_subscriptions_per_connection:
        return 0
    return max(0, limits.slots_per_connection - len(conn.slots_used))


def _place(
    unplaced: list[str],
    placed: Mapping[str, int],
    live: list[ConnView],
    limits: PlanLimits,
    opening: int,
) -> Step | None:
    roomy = [c for c in live if _room(c, limits) > 0]
    if roomy:
        best = max(roomy, key=lambda c: (_room(c, limits), -c.session))
        n = min(_room(best, limits), limits.filters_per_message)
        return Subscribe(best.session, tuple(unplaced[:n]))
    if opening:
        return None  # a connection is on its way
    if len(live) < limits.max_connections:
        return Open()
    watched_on: dict[int, int] = {}
    for session in placed.values():
        watched_on[session] = watched_on.get(session, 0) + 1

    def waste(c: ConnView) -> tuple[int, bool]:
        return len(c.slots_used) - watched_on.get(c.session, 0), c.full

    victim = max(live, key=waste, default=None)
    if victim is not None and (waste(victim)[0] > 0 or victim.full):
        return Recycle(victim.session)
    return None


def _tidy(placed: Mapping[str, int], live: list[ConnView], limits: PlanLimits) -> Step | None:
    for conn in live:
        if not conn.subscriptions:
            return Close(conn.session)  # nothing is watched without a subscription
        for sub_id, ys in conn.subscriptions.items():
            watched = tuple(y for y in ys if placed.get(y) == conn.session)
            if not watched:
                return Unsubscribe(conn.session, sub_id)
            if 1 - len(watched) / len(ys) >= limits.rebuild_dead_fraction:
                return Rebuild(conn.session, sub_id, watched)
    return None
