"""The alerting state machine: one signal in, the alerts it raises out. No Faust, no Kafka.

State lives in two key-value stores the caller provides: in the worker, Faust tables written in
the signal's event context; in tests, dicts. Every key belongs to one mint, and every mint to one
partition of `recon.alerts-input`, so each key is only ever written by events of its partition.

    state   "mint|<url>"          clock, open windows, baselines, incident, counted offsets
            "high|<url>|<npub>"   an open HIGH group
            "partition|<n>"       the mints seen on partition n (what a tick walks)
    raised  <alert_id>            alerts already raised: a replay never raises one twice

Exactly-once counting under at-least-once delivery: every forwarded signal names its source record
(topic, partition, offset); a mint remembers the highest offset it counted per source partition
and skips anything at or below it (a forwarder's redelivery after a crash, or a replay of the
discrepancy topic from the start).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from streams.alerting import anomaly
from streams.alerting.anomaly import Baseline
from streams.alerting.rules import (
    HighGroup,
    Incident,
    anomaly_alert,
    high_alert,
    high_followup_alert,
    incident_alert,
    rate_alert,
    to_datetime,
    to_ms,
)
from streams.alerting.signals import (
    ChecksSignal,
    DiscrepancySignal,
    HealthSignal,
    Signal,
    SourceRef,
    TickSignal,
)
from streams.alerting.windows import EventClock, Window, WindowBook
from streams.core.contracts import Alert
from streams.core.domain import AlertKind, Lifecycle, Severity
from streams.core.settings import AlertSettings

EXPIRY_EVERY_MS = 3600 * 1000  # how often a partition forgets raised ids past retention


class KeyValue(Protocol):
    """What the engine needs of a store: a Faust table and a dict both qualify."""

    def get(self, key: str, /) -> Any: ...
    def __setitem__(self, key: str, value: Any, /) -> None: ...
    def __delitem__(self, key: str, /) -> None: ...
    def items(self) -> Iterable[tuple[Any, Any]]: ...


@dataclass
class Outcome:
    """What handling one signal produced, for the caller to emit and to count."""

    alerts: list[Alert] = field(default_factory=list)
    suppressed: list[tuple[AlertKind, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # inputs ignored: duplicate | late
    open_incidents: dict[str, bool] = field(default_factory=dict)  # mint -> incident open
    busy: bool = True  # whether the partition still has anything a tick could close


@dataclass(slots=True)
class MintState:
    url: str
    clock: EventClock = field(default_factory=EventClock)
    book: WindowBook = field(default_factory=WindowBook)
    baselines: dict[Severity, Baseline] = field(default_factory=dict)
    incident: Incident = field(default_factory=Incident)
    groups: list[str] = field(default_factory=list)  # npubs with an open HIGH group
    offsets: dict[str, int] = field(default_factory=dict)  # source stream -> highest counted

    def first_time(self, source: SourceRef) -> bool:
        """Whether `source` was not counted before; remembers it."""
        seen = self.offsets.get(source.stream)
        if seen is not None and source.offset <= seen:
            return False
        self.offsets[source.stream] = source.offset
        return True

    @property
    def busy(self) -> bool:
        return bool(self.book.windows or self.groups or self.incident.is_open)

    def to_dict(self) -> dict[str, Any]:
        return {
            "clock": self.clock.to_dict(),
            "book": self.book.to_dict(),
            "baselines": {s.value: b.to_dict() for s, b in self.baselines.items()},
            "incident": self.incident.to_dict(),
            "groups": self.groups,
            "offsets": self.offsets,
        }

    @classmethod
    def from_dict(cls, url: str, data: dict[str, Any]) -> MintState:
        return cls(
            url,
            EventClock.from_dict(data.get("clock", {})),
            WindowBook.from_dict(data.get("book", {})),
            {Severity(s): Baseline.from_dict(b) for s, b in data.get("baselines", {}).items()},
            Incident.from_dict(data.get("incident", {})),
            list(data.get("groups", [])),
            dict(data.get("offsets", {})),
        )


class AlertEngine:
    def __init__(self, conf: AlertSettings, state: KeyValue, raised: KeyValue) -> None:
        self.conf = conf
        self._state = state
        self._raised = raised
        self._size_ms = conf.window_s * 1000
        self._grace_ms = int(conf.grace_s * 1000)
        self._thresholds = {
            Severity.HIGH: conf.rate_threshold_high,
            Severity.MEDIUM: conf.rate_threshold_medium,
            Severity.LOW: conf.rate_threshold_low,
        }

    def handle(self, signal: Signal, *, partition: int, wall_ms: int) -> Outcome:
        out = Outcome()
        if isinstance(signal, TickSignal):
            self._tick(partition, to_ms(signal.at), out)
        elif isinstance(signal, DiscrepancySignal):
            self._discrepancy(signal, partition, wall_ms, out)
        elif isinstance(signal, ChecksSignal):
            self._checks(signal, partition, wall_ms, out)
        elif isinstance(signal, HealthSignal):
            self._health(signal, partition, wall_ms, out)
        return out

    # --- inputs ----------------------------------------------------------------------------

    def _discrepancy(
        self, signal: DiscrepancySignal, partition: int, wall_ms: int, out: Outcome
    ) -> None:
        mint = self._load(signal.mint_url, partition)
        if not mint.first_time(signal.source):
            out.dropped.append("duplicate")
            return
        if signal.lifecycle is Lifecycle.OPENED:  # RESOLVED events are lifecycle updates
            t_ms = to_ms(signal.at)
            mint.clock.observe(t_ms, wall_ms)
            window = mint.book.window_for(t_ms, self._size_ms)
            if window is None:
                out.dropped.append("late")
            else:
                window.counts[signal.severity] += 1
                self._check_rate(mint, window, signal.severity, partition, wall_ms, out)
            if signal.severity is Severity.HIGH:
                self._add_high(mint, signal, partition, wall_ms, out)
        self._advance(mint, partition, wall_ms, out)
        self._save(mint, out)

    def _checks(self, signal: ChecksSignal, partition: int, wall_ms: int, out: Outcome) -> None:
        mint = self._load(signal.mint_url, partition)
        if not mint.first_time(signal.source):
            out.dropped.append("duplicate")
            return
        t_ms = to_ms(signal.at)
        mint.clock.observe(t_ms, wall_ms)
        window = mint.book.window_for(t_ms, self._size_ms)
        if window is None:
            out.dropped.append("late")
        else:
            window.checked += signal.proofs
        self._advance(mint, partition, wall_ms, out)
        self._save(mint, out)

    def _health(self, signal: HealthSignal, partition: int, wall_ms: int, out: Outcome) -> None:
        mint = self._load(signal.mint_url, partition)
        change = mint.incident.report(
            signal.new,
            to_ms(signal.at),
            include_rate_limit=self.conf.mint_alert_on_rate_limit,
            flap_cooldown_ms=int(self.conf.mint_flap_cooldown_s * 1000),
        )
        if change is not None:
            alert = incident_alert(change, mint_url=mint.url, raised_at=to_datetime(wall_ms))
            if change.alerted:
                self._raise(alert, partition, wall_ms, out)
            else:
                out.suppressed.append((AlertKind.MINT_UNAVAILABLE, "flapping"))
        self._save(mint, out)

    def _tick(self, partition: int, wall_ms: int, out: Outcome) -> None:
        doc = self._state.get(_partition_key(partition)) or {"mints": []}
        busy = False
        for url in doc["mints"]:
            mint = self._load(url, partition)
            mint.clock.idle(wall_ms, int(self.conf.idle_after_s * 1000))
            self._advance(mint, partition, wall_ms, out)
            self._save(mint, out)
            busy = busy or mint.busy
        out.busy = busy
        if wall_ms - doc.get("expired_at", 0) >= EXPIRY_EVERY_MS:
            self._expire_raised(partition, wall_ms)
            self._state[_partition_key(partition)] = {**doc, "expired_at": wall_ms}

    # --- rules -----------------------------------------------------------------------------

    def _check_rate(
        self,
        mint: MintState,
        window: Window,
        severity: Severity,
        partition: int,
        wall_ms: int,
        out: Outcome,
    ) -> None:
        threshold = self._thresholds[severity]
        count = window.counts[severity]
        if threshold <= 0 or count < threshold or severity in window.rate_raised:
            return
        window.rate_raised.add(severity)  # once per window, raised when crossed
        alert = rate_alert(
            mint_url=mint.url,
            severity=severity,
            start_ms=window.start_ms,
            size_ms=self._size_ms,
            count=count,
            threshold=threshold,
            raised_at=to_datetime(wall_ms),
        )
        self._raise(alert, partition, wall_ms, out)

    def _add_high(
        self,
        mint: MintState,
        signal: DiscrepancySignal,
        partition: int,
        wall_ms: int,
        out: Outcome,
    ) -> None:
        key = _group_key(mint.url, signal.npub)
        stored = self._state.get(key)
        group = HighGroup.from_dict(stored) if stored else None
        cooldown_ms = int(self.conf.high_cooldown_s * 1000)
        if group is not None and not group.accepts(to_ms(signal.at), cooldown_ms):
            self._end_group(mint, signal.npub, group, partition, wall_ms, out)
            group = None
        if group is None:
            group = HighGroup.open(signal, wall_ms)
            if signal.npub not in mint.groups:
                mint.groups.append(signal.npub)
        group.add(signal)
        self._state[key] = group.to_dict()

    def _advance(self, mint: MintState, partition: int, wall_ms: int, out: Outcome) -> None:
        """Raise what the clocks now make due: HIGH groups' alerts, closed windows' verdicts."""
        now_ms = mint.clock.now_ms
        gather_ms = int(self.conf.high_gather_s * 1000)
        cooldown_ms = int(self.conf.high_cooldown_s * 1000)
        for npub in list(mint.groups):
            key = _group_key(mint.url, npub)
            stored = self._state.get(key)
            if stored is None:
                mint.groups.remove(npub)
                continue
            group = HighGroup.from_dict(stored)
            # The group's own event time, not the mint's: the mint's clock is driven by every
            # npub's events, merged out of order from several partitions (a catch-up after an
            # outage merges hours), and would close each group at its first event. One npub's
            # events come from one partition, in order.
            if group.due(wall_ms, group.last_ms, gather_ms):
                group.alerted = True
                alert = high_alert(
                    group, mint_url=mint.url, npub=npub, raised_at=to_datetime(wall_ms)
                )
                self._raise(alert, partition, wall_ms, out)
                self._state[key] = group.to_dict()
            # Only a group that has alerted ends by the mint's clock (see above): a group still
            # gathering keeps what arrives until its own gather is over.
            if group.alerted and group.ended(now_ms, cooldown_ms):
                self._end_group(mint, npub, group, partition, wall_ms, out)
        for window in mint.book.close(now_ms, self._size_ms, self._grace_ms):
            self._judge(mint, window, partition, wall_ms, out)

    def _end_group(
        self,
        mint: MintState,
        npub: str,
        group: HighGroup,
        partition: int,
        wall_ms: int,
        out: Outcome,
    ) -> None:
        if not group.alerted:  # ended before its gather did: it still gets its alert
            group.alerted = True
            alert = high_alert(group, mint_url=mint.url, npub=npub, raised_at=to_datetime(wall_ms))
            self._raise(alert, partition, wall_ms, out)
        if group.more:
            followup = high_followup_alert(
                group,
                mint_url=mint.url,
                npub=npub,
                cooldown_s=self.conf.high_cooldown_s,
                raised_at=to_datetime(wall_ms),
            )
            self._raise(followup, partition, wall_ms, out)
        del self._state[_group_key(mint.url, npub)]
        if npub in mint.groups:
            mint.groups.remove(npub)

    def _judge(
        self, mint: MintState, window: Window, partition: int, wall_ms: int, out: Outcome
    ) -> None:
        """A closed window: each severity's rate against its baseline, then learn from it."""
        conf = self.conf
        for severity in Severity:
            count = window.counts[severity]
            rate = anomaly.rate_per_1k(count, window.checked)
            if rate is None:
                continue  # nothing checked: no rate to judge or to learn from
            baseline = mint.baselines.get(severity)
            verdict = anomaly.check(
                baseline,
                rate,
                count,
                deviations=conf.anomaly_deviations,
                min_deviation=conf.anomaly_min_deviation_per_1k,
                min_count=conf.anomaly_min_count,
                warmup_windows=conf.anomaly_warmup_windows,
            )
            if verdict.anomalous and baseline is not None and verdict.limit is not None:
                alert = anomaly_alert(
                    mint_url=mint.url,
                    severity=severity,
                    start_ms=window.start_ms,
                    size_ms=self._size_ms,
                    rate=rate,
                    count=count,
                    checked=window.checked,
                    baseline=baseline,
                    limit=verdict.limit,
                    raised_at=to_datetime(wall_ms),
                )
                self._raise(alert, partition, wall_ms, out)
            mint.baselines[severity] = anomaly.learn(baseline, rate, conf.anomaly_alpha)

    # --- state -----------------------------------------------------------------------------

    def _raise(self, alert: Alert, partition: int, wall_ms: int, out: Outcome) -> None:
        if alert.kind not in self.conf.kinds:
            return
        if self._raised.get(alert.alert_id) is not None:
            out.suppressed.append((alert.kind, "duplicate"))
            return
        self._raised[alert.alert_id] = {"at": wall_ms, "p": partition}
        out.alerts.append(alert)

    def _expire_raised(self, partition: int, wall_ms: int) -> None:
        cutoff = wall_ms - int(self.conf.dedup_retention_s * 1000)
        # Only this partition's ids: a delete goes to the current event's changelog partition.
        expired = [
            key
            for key, value in list(self._raised.items())
            if isinstance(value, dict) and value.get("p") == partition and value["at"] < cutoff
        ]
        for key in expired:
            del self._raised[key]

    def _load(self, url: str, partition: int) -> MintState:
        stored = self._state.get(_mint_key(url))
        if stored is not None:
            return MintState.from_dict(url, stored)
        pkey = _partition_key(partition)
        doc = self._state.get(pkey) or {"mints": []}
        if url not in doc["mints"]:
            self._state[pkey] = {**doc, "mints": [*doc["mints"], url]}
        return MintState(url)

    def _save(self, mint: MintState, out: Outcome) -> None:
        self._state[_mint_key(mint.url)] = mint.to_dict()
        out.open_incidents[mint.url] = mint.incident.is_open


def _mint_key(url: str) -> str:
    return f"mint|{url}"


def _group_key(url: str, npub: str) -> str:
    return f"high|{url}|{npub}"


def _partition_key(partition: int) -> str:
    return f"partition|{partition}"
