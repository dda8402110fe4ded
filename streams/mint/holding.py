"""When the gateway holds a queued batch for more callers, and how often callers arrive.

Pure logic over the pacer's state and the queue's timings; the gateway asks `hold_s()` before it
sends a batch. Holding pays only when the limiter's budget is what limits (pacing.py): fewer,
fuller requests make a session's budget last, but a held batch must still be answered before its
earliest caller's deadline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from streams.mint.pacing import Pacer

# A held batch leaves this long before its earliest caller's deadline, plus twice the mint's
# recent latency, so the answer still arrives in time.
HOLD_RESERVE_S = 0.2


class CallerArrivals:
    """A moving average of the gaps between preflight callers: under an elastic limiter a batch
    is held only when more callers are likely to join it."""

    def __init__(self) -> None:
        self.gap_s = math.inf
        self._last_at = -math.inf

    def note(self, at: float) -> None:
        gap = at - self._last_at
        self._last_at = at
        self.gap_s = gap if math.isinf(self.gap_s) else 0.8 * self.gap_s + 0.2 * gap


@dataclass(frozen=True, slots=True)
class QueuedBatch:
    """What the hold decision needs to know of the queue."""

    size: int
    capacity: int
    first_added: float | None
    earliest_deadline: float | None


def hold_s(
    pacer: Pacer,
    batch: QueuedBatch,
    *,
    caller_gap_s: float,
    latency_s: float,
    max_gather_s: float,
    now: float,
) -> float:
    """How much longer the queued batch should wait for more callers (0: send it now).

    When the session's budget is what limits us: under an elastic limiter from the session's
    first request, as long as callers come more often than a batch may wait (sparse ones would
    only be made slow); under other limiters once the budget runs low. A held request carries
    as many callers as their deadlines allow.
    """
    widening = pacer.widening()
    if batch.size >= batch.capacity:
        return 0.0
    if not (widening or pacer.plans_sessions()):
        return 0.0
    if pacer.quiet_remaining() > 0:
        return 0.0  # the batch gathers anyway while the quiet passes
    first, earliest = batch.first_added, batch.earliest_deadline
    if first is None or earliest is None:
        return 0.0
    reserve = HOLD_RESERVE_S + 2 * latency_s
    until = min(first + max_gather_s, earliest - reserve)
    if not widening and caller_gap_s >= until - first:
        return 0.0  # callers too sparse for anyone to join a held batch
    return max(0.0, until - now)
