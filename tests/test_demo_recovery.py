"""The demo's worker survives a local stack whose Kafka data was removed under its table stores.

Real Kafka and a real worker: the worker writes its ledger, stops, its changelog topics are
deleted (what `make stack-clean` or a hand-made cleanup does), and a new start must not stay down
on Faust's ConsistencyError. A start that fails for any other reason must still fail.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from devkit.demo import STALE_TABLES, _start_worker
from devkit.processes import WorkerProcess
from streams.client import TokenStatusPublisher, token_status_event
from streams.core.cashu import y_from_secret
from streams.core.kafka import delete_topics
from streams.core.settings import Settings

NPUB = "npub1demorecovery"


async def _record_token(settings: Settings, worker: WorkerProcess) -> str:
    secret = secrets.token_hex(32)
    proof = {"secret": secret, "amount": 8, "keyset_id": "00ad268c4d1f5826"}
    token_id = f"tok-{uuid.uuid4().hex[:8]}"
    event = token_status_event(NPUB, token_id, settings.mint.allowlist[0], "unspent", [proof])
    async with TokenStatusPublisher(settings) as publisher:
        await publisher.publish(event)
    y = y_from_secret(secret)
    await _ledger_has(worker, y)
    return y


async def _ledger_has(worker: WorkerProcess, y: str) -> None:
    async with httpx.AsyncClient(base_url=worker.url, timeout=5) as http:
        for _ in range(150):
            view = (await http.get(f"/v1/proofs/{y}", params={"npub": NPUB})).json()
            if view["ledger"] is not None:
                return
            await asyncio.sleep(0.1)
    raise AssertionError("the ledger never showed the token")


async def _delete_changelogs(settings: Settings) -> int:
    app_id = settings.kafka.app_id
    mine = await delete_topics(
        settings.kafka, lambda name: name.startswith(app_id) and name.endswith("-changelog")
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        for _ in range(100):  # deletion completes in the background
            if not set(mine) & set(await admin.list_topics()):
                return len(mine)
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    raise AssertionError(f"changelog topics still listed: {mine}")


async def test_demo_worker_rebuilds_stale_table_stores(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    kafka_bootstrap: str,
    mint_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings(sweep={"enabled": False}, clickhouse={"sink_enabled": False})
    worker = WorkerProcess(settings, tmp_path / "first.log")
    await asyncio.to_thread(worker.start)
    try:
        # Faust checks only a persisted offset above 0: one partition needs a few writes.
        for _ in range(3):
            await _record_token(settings, worker)
        # The stores note their changelog offsets at the next commit.
        await asyncio.sleep(settings.kafka.commit_interval_s * 2 + 1)
    finally:
        worker.stop()
    assert await _delete_changelogs(settings) > 0

    again = WorkerProcess(settings, tmp_path / "second.log")
    try:
        await asyncio.to_thread(_start_worker, again)
        # It came up on the rebuilt stores and keeps working.
        await _record_token(settings, again)
    finally:
        again.stop()
    assert STALE_TABLES in again.log_text(), "the first start should have met ConsistencyError"
    assert "rebuilding them" in capsys.readouterr().out


def test_demo_worker_start_failure_for_another_reason_is_not_hidden(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # A broker nobody listens on: the worker cannot start, and nothing is retried or removed.
    settings = make_settings(kafka={"bootstrap_servers": "127.0.0.1:1"})
    stores = settings.data_dir / "faust"
    stores.mkdir(parents=True)
    marker = stores / "keep"
    marker.write_text("x")
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    with pytest.raises(AssertionError):
        _start_worker_quickly(worker)
    assert marker.exists()


def _start_worker_quickly(worker: WorkerProcess) -> None:
    original = worker.start

    def start(timeout: float = 20.0) -> WorkerProcess:
        try:
            return original(timeout)
        finally:
            worker.stop()

    worker.start = start  # type: ignore[method-assign]
    _start_worker(worker)
