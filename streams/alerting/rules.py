"""The alert rules' pieces: deterministic ids, HIGH groups, mint incidents, and the alerts.

Pure logic, no Faust or Kafka. Times are epoch milliseconds. Alerts carry counts, severities,
npubs and mint URLs only: no Y and never a proof secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from streams.alerting.anomaly import Baseline
from streams.alerting.signals import DiscrepancySignal
from streams.core.contracts import Alert
from streams.core.domain import AlertKind, Severity
from streams.core.ids import stable_id
from streams.mint.observer import MintHealth

MAX_REQUEST_IDS = 5  # request ids named in one HIGH alert
# Proofs remembered per HIGH group to count each once; past it, repeats count again (a group this
# large pages anyway, and its state stays a few tens of KiB).
MAX_PROOF_REFS = 1000


def alert_id(kind: AlertKind, *parts: str) -> str:
    """Deterministic: the same rule firing on the same input always gives the same id."""
    return stable_id("alert", kind.value, *parts)


def to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def to_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _hhmm(ms: int) -> str:
    return to_datetime(ms).strftime("%Y-%m-%d %H:%M UTC")


# --- HIGH_SEVERITY --------------------------------------------------------------------------------


@dataclass(slots=True)
class HighGroup:
    """HIGH discrepancies of one npub at one mint, from the first one for a cool-down.

    The alert goes out `gather` after the group opened (wall time, so it is prompt) or once event
    time passed that point; whatever arrives within the gather is in its count (a melt's 50 HIGH
    proofs arrive within milliseconds). Later ones within the cool-down (event time) are summed
    into one follow-up when the cool-down ends, so a busy npub pages once per cool-down. Counts are
    of distinct proofs: the same proof found by a preflight and by the live watch (or in a second
    melt) is one discrepancy to the person paged.
    """

    first_event_id: str
    start_ms: int
    opened_wall_ms: int
    last_ms: int
    count: int = 0
    more: int = 0  # arrived after the alert went out
    types: dict[str, int] = field(default_factory=dict)
    request_ids: list[str] = field(default_factory=list)
    alerted: bool = False
    proof_refs: set[str] = field(default_factory=set)

    @classmethod
    def open(cls, signal: DiscrepancySignal, wall_ms: int) -> HighGroup:
        t = to_ms(signal.at)
        return cls(signal.event_id, t, wall_ms, t)

    def accepts(self, t_ms: int, cooldown_ms: int) -> bool:
        return t_ms < self.start_ms + cooldown_ms

    def add(self, signal: DiscrepancySignal) -> None:
        self.last_ms = max(self.last_ms, to_ms(signal.at))
        rid = signal.request_id
        named = rid in self.request_ids or len(self.request_ids) >= MAX_REQUEST_IDS
        if rid and not self.alerted and not named:
            self.request_ids.append(rid)
        if not self._first_sight(signal.proof_ref):
            return
        if self.alerted:
            self.more += 1
            return
        self.count += 1
        self.types[signal.type.value] = self.types.get(signal.type.value, 0) + 1

    def _first_sight(self, ref: str | None) -> bool:
        if ref is None:
            return True  # a signal from before proofs were named: count it
        if ref in self.proof_refs:
            return False
        if len(self.proof_refs) < MAX_PROOF_REFS:
            self.proof_refs.add(ref)
        return True

    def due(self, wall_ms: int, now_ms: int | None, gather_ms: int) -> bool:
        if self.alerted:
            return False
        if wall_ms - self.opened_wall_ms >= gather_ms:
            return True
        return now_ms is not None and now_ms >= self.start_ms + gather_ms

    def ended(self, now_ms: int | None, cooldown_ms: int) -> bool:
        return now_ms is not None and now_ms >= self.start_ms + cooldown_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "first": self.first_event_id,
            "start": self.start_ms,
            "opened_wall": self.opened_wall_ms,
            "last": self.last_ms,
            "count": self.count,
            "more": self.more,
            "types": self.types,
            "requests": self.request_ids,
            "alerted": self.alerted,
            "proofs": list(self.proof_refs),  # written per signal: no sort needed
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HighGroup:
        return cls(
            data["first"],
            data["start"],
            data["opened_wall"],
            data["last"],
            data["count"],
            data["more"],
            dict(data["types"]),
            list(data["requests"]),
            data["alerted"],
            set(data.get("proofs", ())),  # absent in groups stored before proofs were named
        )


def high_alert(group: HighGroup, *, mint_url: str, npub: str, raised_at: datetime) -> Alert:
    types = ", ".join(f"{n} {t}" for t, n in sorted(group.types.items()))
    requests = f"; request {', '.join(group.request_ids)}" if group.request_ids else ""
    message = (
        f"{group.count} HIGH severity discrepancies for {npub} at {mint_url} ({types}): "
        f"the wallet holds proofs the mint says are spent; melts with them are blocked{requests}"
    )
    return _high_group_alert(group, mint_url, npub, raised_at, message, group.count)


def high_followup_alert(
    group: HighGroup, *, mint_url: str, npub: str, cooldown_s: float, raised_at: datetime
) -> Alert:
    message = (
        f"{group.more} more HIGH severity discrepancies for {npub} at {mint_url} within "
        f"{cooldown_s:g} s of the alert for the first {group.count}"
    )
    return _high_group_alert(group, mint_url, npub, raised_at, message, group.more, "more")


def _high_group_alert(
    group: HighGroup,
    mint_url: str,
    npub: str,
    raised_at: datetime,
    message: str,
    observed: int,
    *id_suffix: str,
) -> Alert:
    kind = AlertKind.HIGH_SEVERITY
    return Alert(
        alert_id=alert_id(kind, mint_url, npub, group.first_event_id, *id_suffix),
        kind=kind,
        severity=Severity.HIGH,
        mint_url=mint_url,
        npub=npub,
        message=message,
        observed=observed,
        window_start=to_datetime(group.start_ms),
        window_end=to_datetime(group.last_ms),
        raised_at=raised_at,
    )


# --- RATE_THRESHOLD and ANOMALY -------------------------------------------------------------------


def rate_alert(
    *,
    mint_url: str,
    severity: Severity,
    start_ms: int,
    size_ms: int,
    count: int,
    threshold: int,
    raised_at: datetime,
) -> Alert:
    return Alert(
        alert_id=alert_id(AlertKind.RATE_THRESHOLD, mint_url, severity.value, str(start_ms)),
        kind=AlertKind.RATE_THRESHOLD,
        severity=severity,
        mint_url=mint_url,
        message=f"{count} {severity.value} discrepancies at {mint_url} in the window from "
        f"{_hhmm(start_ms)} ({size_ms // 60_000} min) reached the threshold of {threshold}",
        observed=count,
        threshold=threshold,
        window_start=to_datetime(start_ms),
        window_end=to_datetime(start_ms + size_ms),
        raised_at=raised_at,
    )


def anomaly_alert(
    *,
    mint_url: str,
    severity: Severity,
    start_ms: int,
    size_ms: int,
    rate: float,
    count: int,
    checked: int,
    baseline: Baseline,
    limit: float,
    raised_at: datetime,
) -> Alert:
    return Alert(
        alert_id=alert_id(AlertKind.ANOMALY, mint_url, severity.value, str(start_ms)),
        kind=AlertKind.ANOMALY,
        severity=severity,
        mint_url=mint_url,
        message=f"{severity.value} discrepancy rate at {mint_url} was {rate:.2f} per 1,000 proofs "
        f"({count} of {checked} checked) in the window from {_hhmm(start_ms)}; baseline "
        f"{baseline.mean:.2f} ± {baseline.deviation:.2f} over {baseline.windows} windows, "
        f"alert above {limit:.2f}",
        observed=round(rate, 6),
        threshold=round(limit, 6),
        window_start=to_datetime(start_ms),
        window_end=to_datetime(start_ms + size_ms),
        raised_at=raised_at,
    )


# --- MINT_UNAVAILABLE -----------------------------------------------------------------------------


class Change(StrEnum):
    OPENED = "opened"
    RECOVERED = "recovered"


@dataclass(frozen=True, slots=True)
class IncidentChange:
    change: Change
    since_ms: int
    at_ms: int
    cause: MintHealth
    alerted: bool  # False: inside the flap cool-down, nobody is paged


@dataclass(slots=True)
class Incident:
    """A mint's availability as reported by the workers' gateways.

    Any worker's circuit opening (or rate limit, if configured) opens the incident; any report of
    OK closes it. A mint that is unavailable again within the flap cool-down of its last alert
    opens an incident quietly, and its recovery is quiet too, so a flapping mint pages once.
    """

    down_since_ms: int | None = None
    cause: MintHealth | None = None
    alerted: bool = False
    last_alert_ms: int | None = None

    @property
    def is_open(self) -> bool:
        return self.down_since_ms is not None

    def report(
        self, new: MintHealth, at_ms: int, *, include_rate_limit: bool, flap_cooldown_ms: int
    ) -> IncidentChange | None:
        unavailable = new is MintHealth.CIRCUIT_OPEN or (
            new is MintHealth.RATE_LIMITED and include_rate_limit
        )
        if unavailable and self.down_since_ms is None:
            quiet = self.last_alert_ms is not None and at_ms - self.last_alert_ms < flap_cooldown_ms
            self.down_since_ms, self.cause, self.alerted = at_ms, new, not quiet
            if not quiet:
                self.last_alert_ms = at_ms
            return IncidentChange(Change.OPENED, at_ms, at_ms, new, not quiet)
        if new is MintHealth.OK and self.down_since_ms is not None and self.cause is not None:
            change = IncidentChange(
                Change.RECOVERED, self.down_since_ms, at_ms, self.cause, self.alerted
            )
            self.down_since_ms, self.cause, self.alerted = None, None, False
            return change
        return None  # DEGRADED, or no change

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.down_since_ms,
            "cause": self.cause.value if self.cause else None,
            "alerted": self.alerted,
            "last_alert": self.last_alert_ms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Incident:
        cause = data.get("cause")
        return cls(
            data.get("since"),
            MintHealth(cause) if cause else None,
            bool(data.get("alerted")),
            data.get("last_alert"),
        )


_CAUSE = {
    MintHealth.CIRCUIT_OPEN: "its circuit opened after repeated failures",
    MintHealth.RATE_LIMITED: "it rate-limited us (HTTP 429)",
}


def incident_alert(change: IncidentChange, *, mint_url: str, raised_at: datetime) -> Alert:
    """An outage (window_end null) or its recovery (window_end = when it recovered).

    Both are HIGH: while a mint's truth cannot be had, every melt for it is BLOCKED.
    """
    since = to_datetime(change.since_ms)
    if change.change is Change.OPENED:
        return Alert(
            alert_id=alert_id(AlertKind.MINT_UNAVAILABLE, mint_url, str(change.since_ms)),
            kind=AlertKind.MINT_UNAVAILABLE,
            severity=Severity.HIGH,
            mint_url=mint_url,
            message=f"mint {mint_url} is unavailable: {_CAUSE.get(change.cause, change.cause)}; "
            "melts for this mint are BLOCKED (MINT_UNAVAILABLE)",
            observed=0,
            window_start=since,
            raised_at=raised_at,
        )
    down_s = max(0.0, (change.at_ms - change.since_ms) / 1000)
    return Alert(
        alert_id=alert_id(AlertKind.MINT_UNAVAILABLE, mint_url, str(change.since_ms), "recovered"),
        kind=AlertKind.MINT_UNAVAILABLE,
        severity=Severity.HIGH,
        mint_url=mint_url,
        message=f"mint {mint_url} recovered after {down_s:.0f} s unavailable ({change.cause})",
        observed=round(down_s, 3),
        window_start=since,
        window_end=to_datetime(change.at_ms),
        raised_at=raised_at,
    )


def is_recovery(alert: Alert) -> bool:
    """A MINT_UNAVAILABLE alert with an end is the incident's recovery."""
    return alert.kind is AlertKind.MINT_UNAVAILABLE and alert.window_end is not None
