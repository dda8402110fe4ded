"""What a webhook receives. Pure logic.

Alertmanager (API v2, `POST /api/v2/alerts`, a JSON list of
`{labels, annotations, startsAt, endsAt, generatorURL}`): labels identify an alert and are what
Alertmanager deduplicates, groups and routes on, so they hold only stable facts (kind, severity,
mint, npub) and never the alert id, which goes into the annotations. A mint's recovery is posted
with the same labels as its outage and `endsAt` set to the recovery, which resolves it.

We post each alert once rather than re-sending it while active, so every alert carries an explicit
`endsAt`: point-in-time alerts end `alertmanager_resolve_after_s` after they start, an open outage
after `alertmanager_incident_ttl_s` unless its recovery resolves it sooner.

Generic JSON: the alert exactly as on `recon.alerts`; receivers deduplicate by `alert_id`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from streams.alerting.rules import is_recovery
from streams.core.contracts import Alert, to_json_dict
from streams.core.domain import AlertKind, Severity
from streams.core.settings import AlertSettings

ALERTNAMES = {
    AlertKind.HIGH_SEVERITY: "ProofreconHighSeverityDiscrepancies",
    AlertKind.RATE_THRESHOLD: "ProofreconDiscrepancyRate",
    AlertKind.ANOMALY: "ProofreconDiscrepancyAnomaly",
    AlertKind.MINT_UNAVAILABLE: "ProofreconMintUnavailable",
}
# Alertmanager routing conventionally matches lowercase severities.
AM_SEVERITY = {Severity.HIGH: "critical", Severity.MEDIUM: "warning", Severity.LOW: "info"}
ALERTMANAGER_PATH = "/api/v2/alerts"


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def am_labels(alert: Alert, *, test: bool = False) -> dict[str, str]:
    found = {
        "alertname": ALERTNAMES[alert.kind],
        "service": "proofrecon",
        "kind": alert.kind.value,
        "severity": AM_SEVERITY[alert.severity],
        "discrepancy_severity": alert.severity.value,
        "mint_url": alert.mint_url,
    }
    if alert.kind is AlertKind.MINT_UNAVAILABLE:
        del found["discrepancy_severity"]  # an outage is not about discrepancies
    if alert.npub:
        found["npub"] = alert.npub
    if test:
        found["test"] = "true"  # never the same identity as a real alert: it must not resolve one
    return found


def am_annotations(alert: Alert) -> dict[str, str]:
    found = {
        "summary": _summary(alert),
        "description": alert.message,
        "alert_id": alert.alert_id,
        "observed": f"{alert.observed:g}",
        "raised_at": rfc3339(alert.raised_at),
    }
    if alert.threshold is not None:
        found["threshold"] = f"{alert.threshold:g}"
    if alert.window_start is not None:
        found["window_start"] = rfc3339(alert.window_start)
    if alert.window_end is not None:
        found["window_end"] = rfc3339(alert.window_end)
    return found


def _summary(alert: Alert) -> str:
    if alert.kind is AlertKind.HIGH_SEVERITY:
        return f"{alert.observed:g} HIGH severity discrepancies for {alert.npub}"
    if alert.kind is AlertKind.RATE_THRESHOLD:
        return f"{alert.severity.value} discrepancy count over threshold at {alert.mint_url}"
    if alert.kind is AlertKind.ANOMALY:
        return f"{alert.severity.value} discrepancy rate anomaly at {alert.mint_url}"
    if is_recovery(alert):
        return f"mint {alert.mint_url} recovered"
    return f"mint {alert.mint_url} unavailable"


def alertmanager_alert(
    alert: Alert, conf: AlertSettings, *, generator_url: str, test: bool = False
) -> dict[str, Any]:
    if alert.kind is AlertKind.MINT_UNAVAILABLE:
        starts = alert.window_start or alert.raised_at
        ends = alert.window_end or starts + timedelta(seconds=conf.alertmanager_incident_ttl_s)
    else:
        starts = alert.raised_at
        ends = starts + timedelta(seconds=conf.alertmanager_resolve_after_s)
    return {
        "labels": am_labels(alert, test=test),
        "annotations": am_annotations(alert),
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(ends),
        "generatorURL": generator_url,
    }


def alertmanager_payload(
    alerts: Sequence[Alert], conf: AlertSettings, *, generator_url: str, test: bool = False
) -> list[dict[str, Any]]:
    return [alertmanager_alert(a, conf, generator_url=generator_url, test=test) for a in alerts]


def json_payload(alert: Alert) -> dict[str, Any]:
    return to_json_dict(alert)


def alertmanager_url(base: str) -> str:
    """Accept an Alertmanager base URL (http://am:9093) or the full endpoint."""
    trimmed = base.rstrip("/")
    return trimmed if trimmed.endswith(ALERTMANAGER_PATH) else trimmed + ALERTMANAGER_PATH
