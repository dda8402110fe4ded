"""Helpers of the safety tests: raw Kafka access (what the Python client would refuse to send),
answers and dead letters by request id or by source offset, and polling."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import RecordMetadata

from devkit.processes import read_topic
from devkit.wallet import WalletProof
from streams.core.settings import Settings
from tests.conftest import MINT_URL

T = TypeVar("T")


@dataclass(frozen=True)
class RawRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


async def produce(
    settings: Settings,
    topic: str,
    value: bytes,
    *,
    key: bytes | None,
    headers: Sequence[tuple[str, bytes]] | None = None,
) -> RecordMetadata:
    """One record, as any producer on the network could write it (no client-side checks)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers, max_request_size=4 * 2**20
    )
    await producer.start()
    try:
        sent: RecordMetadata = await producer.send_and_wait(
            topic, value=value, key=key, headers=list(headers) if headers else None
        )
        return sent
    finally:
        await producer.stop()


async def raw_records(
    settings: Settings,
    topic: str,
    *,
    until: Callable[[list[RawRecord]], bool] | None = None,
    timeout: float = 20.0,
    idle: float = 1.5,
) -> list[RawRecord]:
    """Every record of `topic` from the start, bytes as stored: until `until(records)` holds, or,
    without it, until nothing new arrived for `idle` seconds."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[RawRecord] = []
    try:
        deadline = time.monotonic() + timeout
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for items in batch.values():
                for item in items:
                    headers = tuple((name, bytes(value)) for name, value in item.headers or ())
                    records.append(
                        RawRecord(item.partition, item.offset, item.key, item.value, headers)
                    )
                    last_new = time.monotonic()
            if until is not None and until(records):
                return records
            if until is None and time.monotonic() - last_new > idle:
                return records
    finally:
        await consumer.stop()
    if until is not None:
        raise AssertionError(f"{topic}: condition not met in {timeout} s ({len(records)} records)")
    return records


async def answers_to(
    settings: Settings, request_ids: set[str], *, topic: str | None = None, timeout: float = 30
) -> dict[str, dict[str, Any]]:
    """The first answer to each of `request_ids` (on the results topic unless `topic`)."""
    records = await read_topic(
        settings,
        topic or settings.topics.preflight_results,
        until=lambda rs: request_ids <= {r.get("request_id") for r in rs},
        timeout=timeout,
    )
    found: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.get("request_id") in request_ids:
            found.setdefault(record["request_id"], record)
    return found


async def dead_letters_of(
    settings: Settings, source_topic: str, offsets: set[tuple[int, int]], *, timeout: float = 30
) -> list[dict[str, Any]]:
    """The dead-letter records of the input records at (partition, offset) of `source_topic`."""

    def mine(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            r
            for r in records
            if r.get("source_topic") == source_topic
            and (r.get("partition"), r.get("offset")) in offsets
        ]

    records = await read_topic(
        settings,
        settings.topics.dead_letter,
        until=lambda rs: {(r["partition"], r["offset"]) for r in mine(rs)} >= offsets,
        timeout=timeout,
    )
    return mine(records)


async def topic_names(settings: Settings) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def melt_body(
    owner: str, proofs: Sequence[WalletProof], mint_url: str = MINT_URL, **extra: Any
) -> dict[str, Any]:
    """A melt request as JSON, before any client-side validation."""
    return {
        "request_id": f"req-{uuid.uuid4().hex}",
        "npub": owner,
        "mint_url": mint_url,
        "proofs": [{"Y": p.Y, "amount": p.amount, "keyset_id": p.keyset_id} for p in proofs],
        "requested_at": datetime.now(UTC).isoformat(),
        **extra,
    }


def dumps(body: Any) -> bytes:
    return json.dumps(body).encode()


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 20.0, every: float = 0.2
) -> T:
    """Poll `probe` until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while True:
        found = await probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"still nothing after {timeout} s")
        await asyncio.sleep(every)


async def proof_view(
    base_url: str, owner: str, y: str, *, token: str | None = None
) -> dict[str, Any]:
    """The worker's `GET /v1/proofs/{Y}?npub=` view."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=base_url, timeout=5, headers=headers) as http:
        response = await http.get(f"/v1/proofs/{y}", params={"npub": owner})
        response.raise_for_status()
        view: dict[str, Any] = response.json()
        return view
