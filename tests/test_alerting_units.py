"""Alerting's pure logic: windows, clocks, the EWMA baseline, the engine's rules, payloads.

No Kafka, no Faust: the engine runs against dicts, with event times chosen by the test.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.alerting import anomaly
from streams.alerting.anomaly import Baseline
from streams.alerting.engine import AlertEngine, Outcome
from streams.alerting.payloads import ALERTNAMES, alertmanager_alert, alertmanager_url, am_labels
from streams.alerting.rules import alert_id, to_ms
from streams.alerting.signals import (
    ChecksSignal,
    DiscrepancySignal,
    HealthSignal,
    Signal,
    SourceRef,
    TickSignal,
    parse_signal,
    signal_bytes,
)
from streams.alerting.windows import EventClock, WindowBook, window_start
from streams.core.contracts import Alert
from streams.core.domain import AlertKind, DiscrepancyType, Lifecycle, Severity
from streams.core.settings import AlertSettings, load_settings
from streams.mint.observer import MintHealth

MINT = "https://mint.example"
HOUR_MS = 3600 * 1000
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def conf(**fields: Any) -> AlertSettings:
    base: dict[str, Any] = {
        "webhook_url": None,
        "webhook_urls": {},
        "webhook_formats": {},
        "anomaly_warmup_windows": 3,
    }
    return AlertSettings(**{**base, **fields})


class Harness:
    """An engine over dicts; numbers each forwarded signal's source offset like a topic would."""

    def __init__(self, **fields: Any) -> None:
        self.conf = conf(**fields)
        self.state: dict[str, Any] = {}
        self.raised: dict[str, Any] = {}
        self.engine = AlertEngine(self.conf, self.state, self.raised)
        self.offsets: dict[str, int] = {}
        self.alerts: list[Alert] = []
        self.outcomes: list[Outcome] = []
        self.wall = T0

    def source(self, topic: str = "recon.discrepancies", partition: int = 0) -> SourceRef:
        key = f"{topic}:{partition}"
        self.offsets[key] = self.offsets.get(key, -1) + 1
        return SourceRef(topic=topic, partition=partition, offset=self.offsets[key])

    def feed(self, signal: Signal, *, wall: datetime | None = None) -> list[Alert]:
        if wall is not None:
            self.wall = wall
        out = self.engine.handle(signal, partition=0, wall_ms=to_ms(self.wall))
        self.outcomes.append(out)
        self.alerts += out.alerts
        return out.alerts

    def tick(self, wall: datetime) -> list[Alert]:
        return self.feed(TickSignal(at=wall), wall=wall)

    def discrepancy(
        self,
        at: datetime,
        *,
        npub: str = "npub1a",
        severity: Severity = Severity.HIGH,
        lifecycle: Lifecycle = Lifecycle.OPENED,
        request_id: str | None = "req-1",
        n: int = 1,
        mint: str = MINT,
        proofs: list[str] | None = None,
    ) -> list[DiscrepancySignal]:
        return [
            DiscrepancySignal(
                event_id=f"ev-{npub}-{severity}-{to_ms(at)}-{self.offsets.get('x', 0)}-{i}",
                at=at,
                mint_url=mint,
                npub=npub,
                severity=severity,
                type=DiscrepancyType.DB_UNSPENT_MINT_SPENT,
                lifecycle=lifecycle,
                request_id=request_id,
                proof_ref=proofs[i] if proofs else None,
                source=self.source(),
            )
            for i in range(n)
        ]

    def checks(self, at: datetime, proofs: int, mint: str = MINT) -> ChecksSignal:
        return ChecksSignal(
            event_id=f"chk-{to_ms(at)}",
            at=at,
            mint_url=mint,
            proofs=proofs,
            source=self.source("recon.proof-checks"),
        )

    def kinds(self) -> list[AlertKind]:
        return [a.kind for a in self.alerts]


def health(new: MintHealth, at: datetime, old: MintHealth = MintHealth.OK) -> HealthSignal:
    return HealthSignal(
        event_id=f"h-{to_ms(at)}", at=at, mint_url=MINT, old=old, new=new, reporter="w1"
    )


# --- windows and clocks ---------------------------------------------------------------------------


def test_windows_are_epoch_aligned() -> None:
    t = to_ms(T0 + timedelta(minutes=59, seconds=59))
    assert window_start(t, HOUR_MS) == to_ms(T0)
    assert window_start(to_ms(T0 + timedelta(hours=1)), HOUR_MS) == to_ms(T0) + HOUR_MS


def test_window_book_closes_after_grace_and_drops_late_events() -> None:
    book = WindowBook()
    start = to_ms(T0)
    assert book.window_for(start + 10, HOUR_MS) is not None
    assert book.close(start + HOUR_MS + 59_999, HOUR_MS, 60_000) == []  # inside the grace
    (closed,) = book.close(start + HOUR_MS + 60_000, HOUR_MS, 60_000)
    assert closed.start_ms == start and book.closed_until_ms == start + HOUR_MS
    assert book.window_for(start + 20, HOUR_MS) is None  # its window is gone: late
    assert book.window_for(start + HOUR_MS, HOUR_MS) is not None


def test_event_clock_follows_events_and_moves_on_when_quiet() -> None:
    clock = EventClock()
    clock.observe(1_000, wall_ms=50_000)
    clock.observe(500, wall_ms=50_001)  # an older event never moves it back
    assert clock.now_ms == 1_000
    clock.idle(wall_ms=55_000, idle_after_ms=10_000)  # quiet for 5 s: not yet
    assert clock.now_ms == 1_000
    clock.idle(wall_ms=70_001, idle_after_ms=10_000)  # quiet for 20 s: moves on by 20 s
    assert clock.now_ms == 1_000 + 20_000


@given(st.lists(st.integers(min_value=0, max_value=10 * HOUR_MS), min_size=1, max_size=200))
def test_every_event_is_counted_once_or_reported_late(times: list[int]) -> None:
    book, counted, late, closed = WindowBook(), 0, 0, 0
    for t in times:
        window = book.window_for(t, HOUR_MS)
        if window is None:
            late += 1
        else:
            window.checked += 1
            counted += 1
        closed += sum(w.checked for w in book.close(t, HOUR_MS, 0))
    assert counted + late == len(times)
    assert closed + sum(w.checked for w in book.windows.values()) == counted


# --- the EWMA baseline ----------------------------------------------------------------------------


def test_ewma_baseline_follows_the_recurrence() -> None:
    b = Baseline.first(10.0).updated(20.0, 0.5)
    assert (b.mean, b.variance, b.windows) == (15.0, 25.0, 2)
    assert b.deviation == 5.0


def test_anomaly_check_warm_up_minimum_count_and_deviation_floor() -> None:
    steady = Baseline(5.0, 0.0, 10)
    kwargs: dict[str, Any] = {
        "deviations": 3,
        "min_deviation": 1.0,
        "min_count": 5,
        "warmup_windows": 6,
    }
    assert anomaly.check(Baseline(5.0, 0.0, 5), 100, 100, **kwargs).finding == "warming_up"
    assert anomaly.check(steady, 100, 4, **kwargs).finding == "too_few"
    # Zero variance, but the floor keeps a wobble from being "infinitely many deviations".
    assert anomaly.check(steady, 7.9, 8, **kwargs).finding == "within_baseline"
    verdict = anomaly.check(steady, 8.1, 8, **kwargs)
    assert verdict.anomalous and verdict.limit == 8.0


@settings(max_examples=200)
@given(
    base=st.floats(min_value=0.5, max_value=50),
    noise=st.lists(st.floats(min_value=-0.3, max_value=0.3), min_size=8, max_size=40),
)
def test_steady_rates_never_look_anomalous(base: float, noise: list[float]) -> None:
    baseline = None
    for wobble in noise:
        rate = base * (1 + wobble / 10)
        verdict = anomaly.check(
            baseline, rate, 1000, deviations=3, min_deviation=1.0, min_count=1, warmup_windows=3
        )
        assert not verdict.anomalous
        baseline = anomaly.learn(baseline, rate, 0.3)


# --- HIGH_SEVERITY --------------------------------------------------------------------------------


def test_fifty_high_of_one_npub_in_one_melt_are_one_alert_saying_fifty() -> None:
    h = Harness()
    for signal in h.discrepancy(T0, n=50):
        assert h.feed(signal, wall=T0) == []  # gathering
    for signal in h.discrepancy(T0, npub="npub1b", n=3, request_id="req-2"):
        h.feed(signal, wall=T0)
    h.tick(T0 + timedelta(seconds=3))
    by_npub = {a.npub: a for a in h.alerts}
    assert set(by_npub) == {"npub1a", "npub1b"} and h.kinds() == [AlertKind.HIGH_SEVERITY] * 2
    assert by_npub["npub1a"].observed == 50 and by_npub["npub1b"].observed == 3
    assert "50 HIGH" in by_npub["npub1a"].message and "req-1" in by_npub["npub1a"].message
    # The id names the group by its first event: the same input always gives the same id.
    first = h.outcomes[0]
    assert first.alerts == [] and by_npub["npub1a"].alert_id == alert_id(
        AlertKind.HIGH_SEVERITY, MINT, "npub1a", f"ev-npub1a-HIGH-{to_ms(T0)}-0-0"
    )


def test_a_proof_found_by_a_melt_and_by_the_live_watch_counts_once() -> None:
    h = Harness(high_cooldown_s=300)
    refs = [f"proof-{i}" for i in range(3)]
    for signal in h.discrepancy(T0, n=3, proofs=refs):  # the live watch saw them first
        h.feed(signal, wall=T0)
    for signal in h.discrepancy(T0, n=3, proofs=refs, request_id="req-melt"):  # then a melt
        h.feed(signal, wall=T0)
    h.tick(T0 + timedelta(seconds=3))
    assert [a.observed for a in h.alerts] == [3] and "req-melt" in h.alerts[0].message
    # Within the cool-down, a second melt of the same proofs is no news; a new proof is.
    at = T0 + timedelta(minutes=1)
    for signal in h.discrepancy(at, n=4, proofs=[*refs, "proof-new"], request_id="req-again"):
        h.feed(signal, wall=at)
    later = T0 + timedelta(minutes=6)
    h.feed(h.discrepancy(later, npub="npub1z")[0], wall=later)
    assert [a.observed for a in h.alerts if a.npub == "npub1a"] == [3, 1]


def test_resolved_and_lower_severities_raise_no_high_alert() -> None:
    h = Harness()
    for signal in h.discrepancy(T0, lifecycle=Lifecycle.RESOLVED, n=5):
        h.feed(signal)
    for signal in h.discrepancy(T0, severity=Severity.MEDIUM, n=5):
        h.feed(signal)
    h.tick(T0 + timedelta(minutes=1))
    assert h.alerts == []


def test_high_within_cooldown_is_summed_into_one_follow_up() -> None:
    h = Harness(high_cooldown_s=300)
    for signal in h.discrepancy(T0, n=2):
        h.feed(signal, wall=T0)
    h.tick(T0 + timedelta(seconds=3))
    for minute in (1, 2, 3):  # three more melts inside the cool-down: no page each time
        at = T0 + timedelta(minutes=minute)
        for signal in h.discrepancy(at, n=4, request_id=f"req-{minute}"):
            h.feed(signal, wall=at)
    assert [a.observed for a in h.alerts] == [2]
    # The cool-down ends in event time: the next event after it closes the group.
    later = T0 + timedelta(minutes=6)
    for signal in h.discrepancy(later, npub="npub1z"):
        h.feed(signal, wall=later)
    assert [(a.npub, a.observed) for a in h.alerts] == [("npub1a", 2), ("npub1a", 12)]
    assert "12 more" in h.alerts[1].message


def test_catching_up_a_backlog_keeps_each_melts_high_proofs_in_one_alert() -> None:
    """After an outage the inputs of many partitions arrive merged, out of event-time order: a
    later npub's events can come first. Each melt is still one alert, with its whole count."""
    h = Harness()
    catch_up = T0 + timedelta(hours=3)  # the worker comes back long after the events
    for signal in h.discrepancy(T0 + timedelta(minutes=30), npub="npub1late", n=2):
        h.feed(signal, wall=catch_up)
    for signal in h.discrepancy(T0, npub="npub1early", n=3, request_id="req-early"):
        h.feed(signal, wall=catch_up)
    h.tick(catch_up + timedelta(seconds=3))
    assert sorted((a.npub, a.observed) for a in h.alerts) == [("npub1early", 3), ("npub1late", 2)]


# --- RATE_THRESHOLD -------------------------------------------------------------------------------


def test_rate_threshold_is_raised_once_per_window_when_crossed() -> None:
    h = Harness(rate_threshold_medium=10)
    for i in range(25):
        for signal in h.discrepancy(T0 + timedelta(minutes=i), severity=Severity.MEDIUM):
            h.feed(signal)
    (alert,) = h.alerts
    assert (alert.kind, alert.severity, alert.observed, alert.threshold) == (
        AlertKind.RATE_THRESHOLD,
        Severity.MEDIUM,
        10,
        10,
    )
    assert (alert.window_start, alert.window_end) == (T0, T0 + timedelta(hours=1))
    for signal in h.discrepancy(T0 + timedelta(hours=1, minutes=1), severity=Severity.MEDIUM, n=9):
        h.feed(signal)
    assert len(h.alerts) == 1  # the next window stays under the threshold


# --- ANOMALY --------------------------------------------------------------------------------------


def hourly(h: Harness, counts: list[int], *, checked: int = 1000) -> None:
    for hour, count in enumerate(counts):
        at = T0 + timedelta(hours=hour, minutes=10)
        h.feed(h.checks(at, checked))
        for i, signal in enumerate(h.discrepancy(at, severity=Severity.MEDIUM, n=count)):
            h.feed(signal.model_copy(update={"event_id": f"{hour}-{i}"}))
    # An event two hours on closes the last window (event time, not the wall clock).
    h.feed(h.checks(T0 + timedelta(hours=len(counts) + 1), 1))


def test_spike_after_steady_history_is_one_anomaly() -> None:
    h = Harness(rate_threshold_medium=0, anomaly_min_count=5)
    hourly(h, [5, 6, 4, 5, 5, 6, 60])
    (alert,) = h.alerts
    assert (alert.kind, alert.severity, alert.observed) == (AlertKind.ANOMALY, Severity.MEDIUM, 60)
    assert alert.window_start == T0 + timedelta(hours=6)
    assert alert.threshold is not None and 5 < alert.threshold < 10


def test_steady_history_raises_no_anomaly_and_warm_up_raises_nothing() -> None:
    h = Harness(rate_threshold_medium=0)
    hourly(h, [5, 6, 4, 5, 5, 6, 5, 4])
    assert h.alerts == []
    warm = Harness(rate_threshold_medium=0, anomaly_warmup_windows=6)
    hourly(warm, [5, 5, 60])  # a spike inside the warm-up
    assert warm.alerts == []


def test_a_quiet_mint_still_gets_its_verdict_by_the_wall_clock() -> None:
    h = Harness(rate_threshold_medium=0, idle_after_s=10, grace_s=60)
    now = datetime.now(UTC).replace(minute=5, second=0, microsecond=0)
    start = now - timedelta(hours=4)
    for hour in range(3):
        at = start + timedelta(hours=hour)
        h.feed(h.checks(at, 1000), wall=at)
        for signal in h.discrepancy(at, severity=Severity.MEDIUM, n=5):
            h.feed(signal, wall=at)
    spike = start + timedelta(hours=3)
    h.feed(h.checks(spike, 1000), wall=spike)
    for signal in h.discrepancy(spike, severity=Severity.MEDIUM, n=80):
        h.feed(signal, wall=spike)
    assert h.alerts == []  # nobody else speaks for this mint: its window is still open
    h.tick(spike + timedelta(seconds=5))
    assert h.alerts == []  # quiet for 5 s: not idle yet
    h.tick(spike + timedelta(hours=1, minutes=2))
    assert h.kinds() == [AlertKind.ANOMALY]


# --- MINT_UNAVAILABLE -----------------------------------------------------------------------------


def test_mint_unavailable_then_recovered_and_flapping_pages_once() -> None:
    h = Harness(mint_flap_cooldown_s=300)
    h.feed(health(MintHealth.DEGRADED, T0))
    assert h.alerts == []
    h.feed(health(MintHealth.CIRCUIT_OPEN, T0 + timedelta(seconds=1), MintHealth.DEGRADED))
    h.feed(health(MintHealth.CIRCUIT_OPEN, T0 + timedelta(seconds=2)))  # another worker: same
    h.feed(health(MintHealth.OK, T0 + timedelta(seconds=41), MintHealth.CIRCUIT_OPEN))
    down, up = h.alerts
    assert down.kind == up.kind == AlertKind.MINT_UNAVAILABLE
    assert down.window_end is None and "unavailable" in down.message
    assert up.window_end == T0 + timedelta(seconds=41) and up.observed == 40
    assert up.window_start == down.window_start and up.alert_id != down.alert_id
    # Down again two minutes later: inside the flap cool-down, neither it nor its recovery pages.
    h.feed(health(MintHealth.CIRCUIT_OPEN, T0 + timedelta(minutes=2)))
    h.feed(health(MintHealth.OK, T0 + timedelta(minutes=3)))
    assert len(h.alerts) == 2
    assert [o.suppressed for o in h.outcomes[-2:]] == [
        [(AlertKind.MINT_UNAVAILABLE, "flapping")]
    ] * 2


def test_rate_limited_pages_only_if_configured() -> None:
    h = Harness(mint_alert_on_rate_limit=False)
    h.feed(health(MintHealth.RATE_LIMITED, T0))
    assert h.alerts == []
    on = Harness()
    on.feed(health(MintHealth.RATE_LIMITED, T0))
    assert "rate-limited" in on.alerts[0].message


# --- exactly once, replays, dedup -----------------------------------------------------------------


def test_redelivered_sources_are_not_counted_twice() -> None:
    h = Harness(rate_threshold_high=3, high_gather_s=2)
    signals = h.discrepancy(T0, n=2)
    for signal in signals + signals:  # a forwarder's redelivery after a crash
        h.feed(signal)
    h.tick(T0 + timedelta(seconds=5))
    assert [(a.kind, a.observed) for a in h.alerts] == [(AlertKind.HIGH_SEVERITY, 2)]
    assert h.outcomes[2].dropped == ["duplicate"]


@settings(max_examples=60, deadline=None)
@given(
    plan=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=6 * 3600),  # seconds after T0
            st.sampled_from(list(Severity)),
            st.sampled_from(["npub1a", "npub1b", "npub1c"]),
            st.integers(min_value=1, max_value=30),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_replaying_every_input_raises_nothing_new(
    plan: list[tuple[int, Severity, str, int]],
) -> None:
    h = Harness(rate_threshold_high=5, rate_threshold_medium=20, rate_threshold_low=40)
    inputs: list[Signal] = []
    for seconds, severity, npub, n in sorted(plan):
        at = T0 + timedelta(seconds=seconds)
        inputs.append(h.checks(at, 100))
        inputs += h.discrepancy(at, severity=severity, npub=npub, n=n)
    for signal in inputs:
        h.feed(signal, wall=max(h.wall, signal.at))
    h.tick(h.wall + timedelta(hours=3))
    first = [a.alert_id for a in h.alerts]
    assert len(first) == len(set(first))
    for signal in inputs:  # the source topics read again from the start
        h.feed(signal)
    h.tick(h.wall + timedelta(hours=4))
    assert [a.alert_id for a in h.alerts] == first


def test_raised_ids_are_remembered_and_expire_after_retention() -> None:
    h = Harness(dedup_retention_s=3600 * 24)
    h.feed(health(MintHealth.CIRCUIT_OPEN, T0))
    assert len(h.raised) == 1
    h.tick(T0 + timedelta(hours=2))
    assert len(h.raised) == 1
    h.tick(T0 + timedelta(days=2))
    assert h.raised == {}


def test_disabled_kinds_are_not_raised() -> None:
    h = Harness(kinds=frozenset({AlertKind.MINT_UNAVAILABLE}))
    for signal in h.discrepancy(T0, n=3):
        h.feed(signal)
    h.tick(T0 + timedelta(seconds=5))
    assert h.alerts == []


# --- payloads and signals -------------------------------------------------------------------------


def _alert(**fields: Any) -> Alert:
    base: dict[str, Any] = {
        "alert_id": "a-1",
        "kind": AlertKind.HIGH_SEVERITY,
        "severity": Severity.HIGH,
        "mint_url": MINT,
        "npub": "npub1a",
        "message": "50 HIGH severity discrepancies",
        "observed": 50,
        "window_start": T0,
        "window_end": T0,
        "raised_at": T0 + timedelta(seconds=2),
    }
    return Alert(**{**base, **fields})


def test_alertmanager_alert_has_stable_labels_and_explicit_end() -> None:
    c = conf(alertmanager_resolve_after_s=600)
    body = alertmanager_alert(_alert(), c, generator_url="http://w:6066/metrics")
    assert body["labels"] == {
        "alertname": "ProofreconHighSeverityDiscrepancies",
        "service": "proofrecon",
        "kind": "HIGH_SEVERITY",
        "severity": "critical",
        "discrepancy_severity": "HIGH",
        "mint_url": MINT,
        "npub": "npub1a",
    }
    assert body["annotations"]["alert_id"] == "a-1"  # never a label: it would split identities
    assert body["annotations"]["observed"] == "50"
    assert body["startsAt"] == "2026-03-02T10:00:02.000Z"
    assert body["endsAt"] == "2026-03-02T10:10:02.000Z"
    assert body["generatorURL"] == "http://w:6066/metrics"


def test_mint_recovery_resolves_the_outage_in_alertmanager() -> None:
    c = conf()
    down = _alert(kind=AlertKind.MINT_UNAVAILABLE, npub=None, window_end=None, alert_id="d")
    up = _alert(kind=AlertKind.MINT_UNAVAILABLE, npub=None, window_end=T0 + timedelta(minutes=5))
    fired = alertmanager_alert(down, c, generator_url="http://g/")
    resolved = alertmanager_alert(up, c, generator_url="http://g/")
    assert fired["labels"] == resolved["labels"]
    assert fired["startsAt"] == resolved["startsAt"] == "2026-03-02T10:00:00.000Z"
    assert fired["endsAt"] == "2026-03-03T10:00:00.000Z"  # the incident TTL
    assert resolved["endsAt"] == "2026-03-02T10:05:00.000Z"


def test_test_alerts_never_share_an_identity_with_real_ones() -> None:
    assert am_labels(_alert(), test=True)["test"] == "true"
    assert "test" not in am_labels(_alert())


def test_alertmanager_url_accepts_base_or_endpoint() -> None:
    assert alertmanager_url("http://am:9093/") == "http://am:9093/api/v2/alerts"
    assert alertmanager_url("http://am:9093/api/v2/alerts") == "http://am:9093/api/v2/alerts"


def test_signals_round_trip_and_reject_junk() -> None:
    h = Harness()
    for signal in [*h.discrepancy(T0), h.checks(T0, 3), health(MintHealth.OK, T0)]:
        assert parse_signal(signal_bytes(signal)) == signal
    with pytest.raises(ValueError):
        parse_signal(b'{"kind": "nope"}')


def test_per_kind_webhooks_parse_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROOFRECON_ALERT_WEBHOOK_URL", "http://am:9093")
    monkeypatch.setenv(
        "PROOFRECON_ALERT_WEBHOOK_URLS", "ANOMALY=,HIGH_SEVERITY=https://hook.example/x?token=a=b"
    )
    monkeypatch.setenv("PROOFRECON_ALERT_WEBHOOK_FORMATS", "HIGH_SEVERITY=json")
    monkeypatch.setenv("PROOFRECON_ALERT_KINDS", "HIGH_SEVERITY,ANOMALY")
    a = load_settings().alerts
    assert a.webhook_urls == {
        AlertKind.ANOMALY: "",
        AlertKind.HIGH_SEVERITY: "https://hook.example/x?token=a=b",
    }
    assert a.webhook_formats == {AlertKind.HIGH_SEVERITY: "json"}
    assert a.kinds == {AlertKind.HIGH_SEVERITY, AlertKind.ANOMALY}
    monkeypatch.setenv("PROOFRECON_ALERT_WEBHOOK_URLS", "ANOMALY=ftp://x")
    with pytest.raises(ValueError):
        load_settings()


def test_alertmanager_alert_names_are_prometheus_label_safe() -> None:
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) for name in ALERTNAMES.values())
