"""Read `recon.alerts` back and summarise it: for `make demo` and `proofrecon alerts summary`.

lines = asyncio.run(alert_summary(settings, since=demo_started_at))
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from streams.alerting.rules import is_recovery
from streams.core.contracts import Alert
from streams.core.kafka import client_kwargs, describe_topics
from streams.core.settings import Settings


async def read_alerts(
    settings: Settings, *, since: datetime | None = None, timeout: float = 10.0
) -> list[Alert]:
    """Every alert on the alerts topic now (first copy of each alert_id), oldest first.

    Reads from the start up to the end offsets taken when called; `since` keeps alerts raised at
    or after it.
    """
    topic = settings.topics.alerts
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings.kafka),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    info = (await describe_topics(settings)).get(topic)
    if info is None:
        return []
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(info.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        seen: dict[str, Alert] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await _caught_up(consumer, ends):
                break
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    alert = _parse(record.value)
                    if alert is not None:
                        seen.setdefault(alert.alert_id, alert)
    finally:
        await consumer.stop()
    alerts = sorted(seen.values(), key=lambda a: a.raised_at)
    return [a for a in alerts if since is None or a.raised_at >= since]


async def _caught_up(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


def _parse(raw: bytes | None) -> Alert | None:
    if not raw:
        return None
    try:
        return Alert.model_validate_json(raw)
    except ValidationError:
        return None


def summarise_alerts(alerts: Sequence[Alert]) -> list[str]:
    """Lines for a terminal: a count by kind, then one line per alert."""
    if not alerts:
        return ["alerts      none raised"]
    counts = Counter(a.kind.value for a in alerts)
    by_kind = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
    lines = [f"alerts      {len(alerts)} raised ({by_kind})"]
    for alert in alerts:
        kind = f"{alert.kind.value}{' (recovered)' if is_recovery(alert) else ''}"
        lines.append(
            f"  {alert.raised_at:%H:%M:%S} {kind:<28} {alert.severity.value:<6} {alert.message}"
        )
    return lines


async def alert_summary(settings: Settings, *, since: datetime | None = None) -> list[str]:
    return summarise_alerts(await read_alerts(settings, since=since))
