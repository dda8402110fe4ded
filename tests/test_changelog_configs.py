"""Every table's changelog gets the contract topics' min.insync.replicas: with acks=all, a table
write then needs as many replicas as the outputs it stands beside (the broker's default, often 1,
would otherwise apply to Faust's changelogs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from streams.core.settings import load_settings
from streams.worker.app import create_app


@pytest.mark.parametrize(("min_isr", "expected"), [(2, {"min.insync.replicas": "2"}), (None, {})])
def test_every_changelog_carries_the_min_insync_replicas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, min_isr: int | None, expected: dict[str, str]
) -> None:
    monkeypatch.delenv("PROOFRECON_TOPIC_MIN_INSYNC_REPLICAS", raising=False)
    settings = load_settings(
        data_dir=tmp_path, topics={"min_insync_replicas": min_isr, "replication_factor": 3}
    )
    runtime = create_app(settings, registry=CollectorRegistry())  # builds; connects to nothing
    tables = list(runtime.app.tables.values())
    names = {table.name for table in tables}
    assert {"tokens", "open-discrepancies", "alert-state", "alert-raised", "alert-outbox"} <= names
    for table in tables:
        topic = table.changelog_topic
        assert dict(topic.config or {}) == expected, table.name
        # Faust creates it with its own setting's replication factor, which is ours.
        assert (topic.replicas or runtime.app.conf.topic_replication_factor) == 3, table.name
