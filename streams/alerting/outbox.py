"""The alert outbox: alerts raised but not yet published to recon.alerts or delivered to every
webhook, kept in a table (a dict in tests) so a crash or a rebalance loses none.

An entry lives on the partition whose event raised the alert; each tick of that partition scans
it for alerts to publish again and deliveries to resubmit. An entry leaves once the alert is
published and every receiver has confirmed (or given up), or when it is older than the give-up
time.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from streams.alerting.rules import to_ms
from streams.core.contracts import Alert, to_json_dict

Entry = dict[str, Any]
Receivers = Callable[[Alert], list[str]]


class Outbox:
    def __init__(self, table: MutableMapping[str, Any], give_up_after_s: float) -> None:
        self._table = table
        self._give_up_ms = int(give_up_after_s * 1000)

    def add(self, alert: Alert, partition: int, receivers: list[str]) -> None:
        self._table[alert.alert_id] = {
            "p": partition,
            "at": to_ms(datetime.now(UTC)),
            "alert": to_json_dict(alert),
            "receivers": receivers,
            "published": False,
        }

    def published(self, alert_id: str) -> None:
        entry = self._table.get(alert_id)
        if entry is None:
            return
        if entry["receivers"]:
            self._table[alert_id] = {**entry, "published": True}
        else:
            del self._table[alert_id]

    def receipt(self, alert_id: str, receiver: str) -> None:
        entry = self._table.get(alert_id)
        if entry is None:
            return
        left = [name for name in entry["receivers"] if name != receiver]
        if not left and entry["published"]:
            del self._table[alert_id]
        else:
            self._table[alert_id] = {**entry, "receivers": left}

    def scan(
        self, partition: int
    ) -> tuple[list[Alert], list[tuple[Alert, list[str]]], list[Entry]]:
        """This partition's leftovers: alerts to publish again, (alert, receivers) still owed a
        delivery, and the entries given up (removed here)."""
        republish: list[Alert] = []
        owed: list[tuple[Alert, list[str]]] = []
        expired: list[tuple[str, Entry]] = []
        now_ms = to_ms(datetime.now(UTC))
        for alert_id, entry in list(self._table.items()):
            if not isinstance(entry, dict) or entry.get("p") != partition:
                continue
            if entry["published"] and now_ms - entry["at"] >= self._give_up_ms:
                expired.append((alert_id, entry))
                continue
            alert = Alert.model_validate(entry["alert"])
            if not entry["published"]:
                republish.append(alert)
            if entry["receivers"]:
                owed.append((alert, list(entry["receivers"])))
        for alert_id, _ in expired:
            del self._table[alert_id]
        return republish, owed, [entry for _, entry in expired]

    def has(self, partition: int) -> bool:
        return any(
            isinstance(entry, dict) and entry.get("p") == partition
            for _, entry in self._table.items()
        )
