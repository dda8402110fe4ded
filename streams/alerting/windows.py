"""Event time: a mint's clock, and its tumbling windows. Pure logic, no Faust or Kafka.

Times are epoch milliseconds (UTC). Windows and cool-downs follow the events' own timestamps, not
the wall clock, so a replay closes the same windows with the same counts, and tests with synthetic
timestamps are fast and exact. The wall clock only matters when a mint goes quiet (see
`EventClock.idle`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.core.domain import Severity


def window_start(t_ms: int, size_ms: int) -> int:
    """Start of the tumbling window holding `t_ms`; windows are aligned to the epoch (UTC)."""
    return t_ms - t_ms % size_ms


@dataclass(slots=True)
class EventClock:
    """A mint's event-time clock: how far its events have got (a watermark).

    It follows the latest event time seen and never goes back. When the mint goes quiet (nothing
    for `idle_after` of wall time), it moves on from the latest event by the wall time that passed
    since, so a quiet mint's last window still closes and gets its verdict. A replay streams
    events without pause, so its clock follows their timestamps and closes nothing early.
    """

    latest_ms: int | None = None  # the latest event time seen
    seen_wall_ms: int | None = None  # wall time at which the last event was processed
    now_ms: int | None = None  # the clock's reading

    def observe(self, t_ms: int, wall_ms: int) -> None:
        self.latest_ms = t_ms if self.latest_ms is None else max(self.latest_ms, t_ms)
        self.seen_wall_ms = wall_ms
        self.now_ms = self.latest_ms if self.now_ms is None else max(self.now_ms, self.latest_ms)

    def idle(self, wall_ms: int, idle_after_ms: int) -> None:
        if self.latest_ms is None or self.seen_wall_ms is None:
            return
        quiet_ms = wall_ms - self.seen_wall_ms
        if quiet_ms >= idle_after_ms:
            moved = self.latest_ms + quiet_ms
            self.now_ms = moved if self.now_ms is None else max(self.now_ms, moved)

    def to_dict(self) -> dict[str, Any]:
        return {"latest": self.latest_ms, "seen_wall": self.seen_wall_ms, "now": self.now_ms}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EventClock:
        return cls(data.get("latest"), data.get("seen_wall"), data.get("now"))


def _zero_counts() -> dict[Severity, int]:
    return dict.fromkeys(Severity, 0)


@dataclass(slots=True)
class Window:
    """One mint's tumbling window: proofs checked and OPENED discrepancies by severity."""

    start_ms: int
    checked: int = 0
    counts: dict[Severity, int] = field(default_factory=_zero_counts)
    rate_raised: set[Severity] = field(default_factory=set)  # RATE_THRESHOLD is once per window

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "counts": {s.value: n for s, n in self.counts.items()},
            "rate_raised": sorted(s.value for s in self.rate_raised),
        }

    @classmethod
    def from_dict(cls, start_ms: int, data: dict[str, Any]) -> Window:
        counts = _zero_counts()
        counts.update({Severity(k): int(v) for k, v in data.get("counts", {}).items()})
        raised = {Severity(s) for s in data.get("rate_raised", [])}
        return cls(start_ms, int(data.get("checked", 0)), counts, raised)


@dataclass(slots=True)
class WindowBook:
    """A mint's open windows, and where closed ones end (anything before that is late)."""

    windows: dict[int, Window] = field(default_factory=dict)
    closed_until_ms: int | None = None

    def window_for(self, t_ms: int, size_ms: int) -> Window | None:
        """The open window holding `t_ms`, opened if need be; None if its window already closed."""
        start = window_start(t_ms, size_ms)
        window = self.windows.get(start)
        if window is not None:
            return window
        if self.closed_until_ms is not None and start < self.closed_until_ms:
            return None
        window = self.windows[start] = Window(start)
        return window

    def close(self, now_ms: int | None, size_ms: int, grace_ms: int) -> list[Window]:
        """Remove and return, oldest first, the windows whose end plus grace the clock passed."""
        if now_ms is None:
            return []
        due = sorted(s for s in self.windows if s + size_ms + grace_ms <= now_ms)
        if not due:
            return []
        end = due[-1] + size_ms
        self.closed_until_ms = (
            end if self.closed_until_ms is None else max(self.closed_until_ms, end)
        )
        return [self.windows.pop(s) for s in due]

    def to_dict(self) -> dict[str, Any]:
        return {
            "windows": {str(s): w.to_dict() for s, w in self.windows.items()},
            "closed_until": self.closed_until_ms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowBook:
        windows = {int(s): Window.from_dict(int(s), w) for s, w in data.get("windows", {}).items()}
        return cls(windows, data.get("closed_until"))
