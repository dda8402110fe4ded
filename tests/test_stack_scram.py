"""The single-node broker's SASL_PLAINTEXT listener: SCRAM-SHA-512 with the stack's test user.

Uses the default broker's listener (`stack.sh scram`) when it has one; a broker started before the
listener existed has none until it is restarted, and then a private single-node broker in a temp
state dir is started (and removed) instead.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from stack.harness import StackScript
from streams.core.kafka import client_kwargs
from streams.core.settings import KafkaSettings

pytestmark = [pytest.mark.stack, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def scram(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """(bootstrap, user, password) of a SASL_PLAINTEXT/SCRAM-SHA-512 listener."""
    found = StackScript.default().run("scram", check=False)
    if found.returncode == 0:
        bootstrap, user, password = found.stdout.split()
        yield bootstrap, user, password
        return
    stack = StackScript.private(Path(tmp_path_factory.mktemp("scram")))
    try:
        stack.run("up", "kafka", timeout=300)
        bootstrap, user, password = stack.run("scram").stdout.split()
        yield bootstrap, user, password
    finally:
        stack.remove()


def _sasl(bootstrap: str, user: str, password: str) -> dict[str, Any]:
    return {
        "bootstrap_servers": bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": user,
        "sasl_plain_password": password,
    }


async def test_scram_producer_and_consumer_round_trip(scram: tuple[str, str, str]) -> None:
    bootstrap, user, password = scram
    assert user == "proofrecon"
    # The project's own client settings, as a deployment with SASL would set them.
    kafka = KafkaSettings(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=user,
        sasl_password=password,
    )
    assert client_kwargs(kafka) == _sasl(bootstrap, user, password)
    topic = f"stack-scram-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**client_kwargs(kafka), request_timeout_ms=15_000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
        producer = AIOKafkaProducer(**client_kwargs(kafka), acks="all")
        await producer.start()
        try:
            sent = await producer.send_and_wait(topic, b"over SCRAM", key=b"k")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic, **client_kwargs(kafka), group_id=f"{topic}-g", auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            async with asyncio.timeout(30):
                record = await consumer.getone()
        finally:
            await consumer.stop()
        assert (record.key, record.value, record.offset) == (b"k", b"over SCRAM", sent.offset)
    finally:
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()


async def test_scram_refuses_a_wrong_password(
    scram: tuple[str, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap, user, _ = scram
    producer = AIOKafkaProducer(**_sasl(bootstrap, user, "not-the-password"))
    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaError):
        await producer.start()
    await producer.stop()
    assert "SaslAuthenticationFailed" in caplog.text or "Authentication failed" in caplog.text


async def test_scram_refuses_an_unknown_user(scram: tuple[str, str, str]) -> None:
    bootstrap, _, password = scram
    producer = AIOKafkaProducer(**_sasl(bootstrap, "nobody", password))
    with pytest.raises(KafkaError):
        await producer.start()
    await producer.stop()
