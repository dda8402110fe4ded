"""The local stack is made of real components and they behave as the rest of the suite assumes."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import clickhouse_connect
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.core.cashu import y_from_secret
from streams.core.kafka import describe_topics, ensure_topics, topic_specs
from streams.core.settings import Settings
from tests.conftest import TOPIC_FIELDS

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parent.parent


def _kcat_partition(bootstrap: str, topic: str, key: str) -> int:
    """Produce one keyed message with kcat (a neutral librdkafka client) and report its partition.

    murmur2_random is librdkafka's name for the Java client's partitioner, which aiokafka follows.
    """
    kcat = shutil.which("kcat")
    assert kcat, "kcat is needed (Debian package `kcat`; `make sysdeps` installs it)"
    subprocess.run(
        [
            kcat,
            "-b",
            bootstrap,
            "-P",
            "-t",
            topic,
            "-K",
            "\t",
            "-X",
            "topic.partitioner=murmur2_random",
        ],
        input=f"{key}\tfrom-kcat\n",
        text=True,
        check=True,
        timeout=30,
    )
    out = subprocess.run(
        [kcat, "-b", bootstrap, "-C", "-t", topic, "-e", "-q", "-f", "%k\t%p\t%s\n"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    for line in out.splitlines():
        k, partition, value = line.split("\t")
        if k == key and value == "from-kcat":
            return int(partition)
    raise AssertionError(f"kcat did not read back its message: {out!r}")


async def test_keyed_message_round_trip_lands_on_murmur2_partition(
    kafka_bootstrap: str, settings: Settings
) -> None:
    await ensure_topics(settings)
    topic = settings.topics.token_status
    npubs = [f"npub1test{i:03d}xyz" for i in range(12)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        sent = {n: await producer.send_and_wait(topic, key=n.encode(), value=b"{}") for n in npubs}
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    received: dict[str, int] = {}
    try:
        async with asyncio.timeout(20):
            while len(received) < len(npubs):
                batch = await consumer.getmany(timeout_ms=500)
                for tp, records in batch.items():
                    for record in records:
                        received[record.key.decode()] = tp.partition
    finally:
        await consumer.stop()

    assert received == {n: meta.partition for n, meta in sent.items()}
    assert len(set(received.values())) > 1, "12 keys should spread over several partitions"
    for npub in npubs[:3]:
        assert _kcat_partition(kafka_bootstrap, topic, npub) == received[npub]


async def test_topics_create_is_idempotent(kafka_bootstrap: str, make_settings) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(topics={"partitions": 4})
    first = await ensure_topics(settings)
    second = await ensure_topics(settings)
    assert all(line.startswith("created") for line in first)
    assert all(line.startswith("exists") for line in second)
    info = await describe_topics(settings)
    assert {name: i.partitions for name, i in info.items()} == {
        s.name: 4 for s in topic_specs(settings)
    }
    assert info[settings.topics.preflight_results].cleanup_policy == "compact,delete"
    assert info[settings.topics.token_status].cleanup_policy == "delete"


async def test_topics_create_cli_twice(
    kafka_bootstrap: str, settings: Settings, tmp_path: Path
) -> None:
    env_file = tmp_path / "test.env"
    lines = [
        f"PROOFRECON_KAFKA_BOOTSTRAP_SERVERS={kafka_bootstrap}",
        "PROOFRECON_TOPIC_PARTITIONS=3",
    ]
    for field in TOPIC_FIELDS:
        lines.append(f"PROOFRECON_TOPIC_{field.upper()}={getattr(settings.topics, field)}-cli")
    env_file.write_text("\n".join(lines) + "\n")
    cli = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "proofrecon"
    runs = [
        subprocess.run(
            [str(cli), "--env-file", str(env_file), "topics", "create"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert f"created {settings.topics.token_status}-cli (3 partitions)" in runs[0].stdout
    assert f"exists  {settings.topics.token_status}-cli (3 partitions)" in runs[1].stdout


async def test_mint_checkstate_answers_batch(mint_url: str) -> None:
    ys = [y_from_secret(f"proofrecon-stack-test-{i}") for i in range(50)]
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{mint_url}/v1/checkstate", json={"Ys": ys})
    assert response.status_code == 200
    states = response.json()["states"]
    assert [s["Y"] for s in states] == ys
    # Secrets nobody minted: the mint answers UNSPENT for any Y it never saw.
    assert {s["state"] for s in states} == {"UNSPENT"}


def test_embedded_clickhouse_round_trip(tmp_path: Path) -> None:
    client = clickhouse_connect.get_client(dsn=f"chdb://{tmp_path / 'chdb'}")
    try:
        client.command("CREATE DATABASE IF NOT EXISTS stacktest")
        client.command(
            "CREATE TABLE stacktest.t (hour DateTime('UTC'), mint LowCardinality(String), n UInt32)"
            " ENGINE = MergeTree ORDER BY (hour, mint)"
        )
        rows = [[1_700_000_000 + 3600 * i, f"http://m{i % 2}", i] for i in range(10)]
        client.insert("stacktest.t", rows, column_names=["hour", "mint", "n"])
        result = client.query("SELECT mint, sum(n) FROM stacktest.t GROUP BY mint ORDER BY mint")
        assert result.result_rows == [("http://m0", 20), ("http://m1", 25)]
    finally:
        client.close()


def test_stack_script_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is needed (`make sysdeps` installs the Debian package)"
    result = subprocess.run(
        [shellcheck, "stack/stack.sh"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout
