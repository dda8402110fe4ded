"""`proofrecon alerts test` and `proofrecon alerts summary`."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from streams.alerting.delivery import Deliverer, Receiver, routes
from streams.alerting.summary import alert_summary
from streams.cli.base import Subparsers
from streams.core.contracts import Alert
from streams.core.domain import AlertKind, Severity
from streams.core.settings import Settings

EXIT_DELIVERED, EXIT_FAILED, EXIT_NO_WEBHOOK = 0, 1, 2


def sample_alert(settings: Settings, kind: AlertKind) -> Alert:
    """A clearly marked test alert; a fresh id each time (it is a new alert, not a replay)."""
    mint_url = settings.mint.allowlist[0] if settings.mint.allowlist else "https://mint.example"
    severity = (
        Severity.MEDIUM
        if kind in (AlertKind.RATE_THRESHOLD, AlertKind.ANOMALY)
        else (Severity.HIGH)
    )
    now = datetime.now(UTC)
    return Alert(
        alert_id=f"test-{uuid.uuid4()}",
        kind=kind,
        severity=severity,
        mint_url=mint_url,
        npub="npub1proofrecontestalert" if kind is AlertKind.HIGH_SEVERITY else None,
        message=f"TEST alert sent by `proofrecon alerts test` ({kind.value}); nothing is wrong",
        observed=1,
        window_start=now - timedelta(minutes=1),
        raised_at=now,
    )


async def send_test_alert(
    settings: Settings, kind: AlertKind, timeout: float
) -> tuple[int, list[str]]:
    """Deliver one sample alert through the configured webhooks of `kind`, with the worker's
    retries and backoff (for at most `timeout` seconds). Returns (exit code, lines to print)."""
    receivers = routes(settings.alerts)[kind]
    if not receivers:
        return EXIT_NO_WEBHOOK, [
            f"no webhook configured for {kind.value}: set PROOFRECON_ALERT_WEBHOOK_URL "
            "(or PROOFRECON_ALERT_WEBHOOK_URLS)"
        ]
    outcomes: dict[str, str] = {}

    def done(alert: Alert, receiver: Receiver, outcome: str) -> None:
        outcomes[receiver.name] = outcome

    web = settings.web
    conf = settings.alerts.model_copy(update={"webhook_give_up_after_s": timeout})
    deliverer = Deliverer(conf, generator_url=f"http://{web.host}:{web.port}/metrics", on_done=done)
    alert = sample_alert(settings, kind)
    try:
        deliverer.submit(alert, receivers, test=True)
        await deliverer.wait_idle(timeout + conf.webhook_timeout_s + 1)
    finally:
        await deliverer.close()
    lines = [f"sent test alert {alert.alert_id} ({kind.value})"]
    for receiver in receivers:
        outcome = outcomes.get(receiver.name, "no answer in time")
        lines.append(f"  {receiver.name}: {outcome}")
    ok = all(outcomes.get(r.name) == "delivered" for r in receivers)
    return (EXIT_DELIVERED if ok else EXIT_FAILED), lines


async def summary_lines(settings: Settings, since_minutes: float | None) -> list[str]:
    since = None
    if since_minutes is not None:
        since = datetime.now(UTC) - timedelta(minutes=since_minutes)
    return await alert_summary(settings, since=since)


def add_alerts(sub: Subparsers) -> None:
    alerts = sub.add_parser("alerts", help="alert delivery and the alerts raised")
    asub = alerts.add_subparsers(dest="alerts_cmd", required=True)
    test = asub.add_parser(
        "test",
        help="send a sample alert through the configured webhooks",
        description="Exit codes: 0 delivered everywhere, 1 a webhook failed, 2 none configured.",
    )
    test.add_argument(
        "--kind", choices=[k.value for k in AlertKind], default=AlertKind.HIGH_SEVERITY.value
    )
    test.add_argument("--timeout", type=float, default=20.0, help="seconds of retries (default 20)")
    test.set_defaults(handler=_alerts_test)
    summary = asub.add_parser("summary", help="print the alerts on the alerts topic")
    summary.add_argument("--since-minutes", type=float, default=None)
    summary.set_defaults(handler=_alerts_summary)


def _alerts_test(args: argparse.Namespace, settings: Settings) -> int:
    import logging.config

    from streams.core.logs import logging_config

    # Each failed attempt is logged (JSON on stderr) with its receiver and error.
    logging.config.dictConfig(logging_config(settings.log_level))
    code, lines = asyncio.run(send_test_alert(settings, AlertKind(args.kind), args.timeout))
    for line in lines:
        print(line)
    return code


def _alerts_summary(args: argparse.Namespace, settings: Settings) -> int:
    for line in asyncio.run(summary_lines(settings, args.since_minutes)):
        print(line)
    return 0
