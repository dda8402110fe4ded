"""What a live watch knows about each watched Y, and whether that is truth *now*.

A state is only as good as the watch behind it. A mint pushes changes while our connection is
alive and subscribed, but silence proves nothing: CDK sends no initial notification for a Y it
never saw and drops notifications under bursts, and any socket can die unnoticed for a while. So
a state counts as known truth only if

- it was *confirmed* (by a notification, or by a checkstate snapshot) while the subscription
  that watches the Y now was in place: a change after that would have been notified,
- that subscription's connection is still alive, and
- the confirmation is at most `max_age_s` old (which bounds what a dropped notification or a
  silently dead socket can hide).

Anything else is unknown, and the caller asks the mint (the preflight path) instead.

SPENT is final: a later notification or snapshot saying otherwise is stale (a subscription's
initial state may be read before, and arrive after, a spend's event) and is refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from streams.core.domain import MintState
from streams.mint.limiter import Clock


class Via(StrEnum):
    """How a state was learned (a metrics and event label)."""

    NOTIFICATION = "notification"
    SNAPSHOT = "snapshot"


@dataclass(frozen=True, slots=True)
class LiveState:
    state: MintState
    confirmed_at: float  # monotonic clock
    learned_at: datetime  # wall clock, for events
    via: Via
    subscription: str  # the subId that watched the Y when it was confirmed


SubscriptionOf = Callable[[str], str | None]
"""The subscription (subId) watching a Y now on a live connection, or None."""


class LiveStates:
    """Read-only for callers; the WatchManager feeds it."""

    def __init__(
        self,
        subscription_of: SubscriptionOf,
        *,
        default_max_age_s: float,
        clock: Clock | None = None,
    ) -> None:
        self._subscription_of = subscription_of
        self._clock = clock or time.monotonic
        self.default_max_age_s = default_max_age_s
        self._states: dict[str, LiveState] = {}

    def get(self, y: str) -> LiveState | None:
        """The last state learned for a watched `y` (fresh or not), or None."""
        return self._states.get(y.lower())

    def fresh(self, y: str, max_age_s: float | None = None) -> bool:
        """Is `y`'s last state known truth now (see the module docstring)?"""
        return self.fresh_state(y, max_age_s) is not None

    def fresh_state(self, y: str, max_age_s: float | None = None) -> MintState | None:
        """`y`'s state if it is known truth now, else None (unknown: ask the mint)."""
        y = y.lower()
        known = self._states.get(y)
        if known is None:
            return None
        limit = self.default_max_age_s if max_age_s is None else max_age_s
        if self._clock() - known.confirmed_at > limit:
            return None
        if self._subscription_of(y) != known.subscription:
            return None  # its connection closed, or it was resubscribed: nothing is known now
        return known.state

    def fresh_states(
        self, ys: Iterable[str], max_age_s: float | None = None
    ) -> dict[str, MintState]:
        """The subset of `ys` whose state is known truth now, with that state."""
        found: dict[str, MintState] = {}
        for y in ys:
            state = self.fresh_state(y, max_age_s)
            if state is not None:
                found[y.lower()] = state
        return found

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, y: object) -> bool:
        return isinstance(y, str) and y.lower() in self._states

    # --- fed by the manager --------------------------------------------------------------------

    def is_stale(self, y: str, state: MintState) -> bool:
        """Would `state` contradict what is final (SPENT) for `y`?"""
        known = self._states.get(y)
        return known is not None and known.state is MintState.SPENT and state is not known.state

    def confirm(
        self, y: str, state: MintState, *, via: Via, subscription: str, at: datetime
    ) -> bool:
        """Record a state learned while `subscription` watched `y`; False if refused as stale
        (SPENT is final)."""
        if self.is_stale(y, state):
            return False
        self._states[y] = LiveState(state, self._clock(), at, via, subscription)
        return True

    def forget(self, ys: Iterable[str]) -> None:
        for y in ys:
            self._states.pop(y, None)
