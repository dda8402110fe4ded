"""The three-node KRaft cluster (`make stack-up KAFKA_NODES=3`) survives the loss of a node.

Uses the default stack's cluster when it is up (`stack.sh bootstrap` answers); otherwise starts a
private one in a temp state dir on free ports and removes it afterwards. Node 2 is killed with
SIGKILL, so the test exercises both controller failover (every node is a voter) and partition
leader failover, then restarts it and waits for it to be back in every ISR.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from stack.harness import StackScript

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(240)]

VICTIM = 2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StackScript, str]]:
    default = StackScript.default()
    found = default.run("bootstrap", "cluster", check=False)
    if found.returncode == 0:
        yield default, found.stdout.strip()
        return
    stack = StackScript.private(Path(tmp_path_factory.mktemp("cluster")))
    try:
        started = time.monotonic()
        stack.run("up", "cluster", timeout=300)
        print(f"\nprivate cluster cold start: {time.monotonic() - started:.1f} s")
        yield stack, stack.run("bootstrap", "cluster").stdout.strip()
    finally:
        stack.remove()


async def _isr(admin: AIOKafkaAdminClient, topic: str) -> dict[int, set[int]]:
    # The admin client may pick the node that is down for its metadata request, or one whose
    # metadata does not hold a new topic yet (it answers with an error code in the topic's entry
    # and no partitions, which aiokafka does not raise): ask again.
    for _ in range(50):
        try:
            (described,) = await admin.describe_topics([topic])
        except KafkaError:
            await asyncio.sleep(0.2)
            continue
        if described.get("error_code", 0) != 0 or not described["partitions"]:
            await asyncio.sleep(0.2)
            continue
        return {p["partition"]: set(p["isr"]) for p in described["partitions"]}
    raise AssertionError(f"no node answered a metadata request for {topic}")


async def _wait_full_isr(
    admin: AIOKafkaAdminClient, topic: str, timeout: float
) -> dict[int, set[int]]:
    """The ISR of every partition once all three nodes are in each (one node's word for it:
    another may still answer with older metadata)."""
    async with asyncio.timeout(timeout):
        while True:
            isr = await _isr(admin, topic)
            if isr and all(len(nodes) == 3 for nodes in isr.values()):
                return isr
            await asyncio.sleep(0.2)


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, request_timeout_ms=30_000
    )
    await producer.start()
    try:
        for i, value in enumerate(values):
            await producer.send_and_wait(topic, value, key=str(i).encode())
    finally:
        await producer.stop()


async def _consume_group(bootstrap: str, topic: str, group: str, count: int) -> list[bytes]:
    """The next `count` messages for consumer group `group`, committed."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[bytes] = []
    try:
        async with asyncio.timeout(60):
            while len(got) < count:
                batch = await consumer.getmany(timeout_ms=500)
                got.extend(r.value for records in batch.values() for r in records)
        await consumer.commit()
    finally:
        await consumer.stop()
    return got


async def test_cluster_keeps_serving_with_a_node_killed_and_takes_it_back(
    cluster: tuple[StackScript, str],
) -> None:
    stack, bootstrap = cluster
    assert len(bootstrap.split(",")) == 3
    topic = f"stack-cluster-{uuid.uuid4().hex[:8]}"
    group = f"{topic}-group"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        cluster_info = await admin.describe_cluster()
        assert sorted(b["node_id"] for b in cluster_info["brokers"]) == [1, 2, 3]
        await admin.create_topics(
            [NewTopic(topic, 3, 3, topic_configs={"min.insync.replicas": "2"})]
        )
        isr = await _wait_full_isr(admin, topic, 30)
        assert isr == {0: {1, 2, 3}, 1: {1, 2, 3}, 2: {1, 2, 3}}

        # Before: acks=all and a consumer group (which also creates __consumer_offsets, RF 3).
        before = [f"before-{i}".encode() for i in range(10)]
        await _produce(bootstrap, topic, before)
        assert sorted(await _consume_group(bootstrap, topic, group, 10)) == sorted(before)

        killed = time.monotonic()
        stack.run("kafka-node", "kill", str(VICTIM), timeout=60)
        # Still acks=all: once the dead node is fenced the ISRs shrink to 2 = min ISR.
        during = [f"during-{i}".encode() for i in range(10)]
        await _produce(bootstrap, topic, during)
        print(f"\nproduced with acks=all {time.monotonic() - killed:.1f} s after the kill")
        assert sorted(await _consume_group(bootstrap, topic, group, 10)) == sorted(during)
        isr = await _isr(admin, topic)
        async with asyncio.timeout(30):  # a node with older metadata may answer first
            while not all(VICTIM not in nodes and len(nodes) == 2 for nodes in isr.values()):
                await asyncio.sleep(0.2)
                isr = await _isr(admin, topic)

        # Every message, read without a group, from the two live nodes.
        reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        await reader.start()
        try:
            partitions = [TopicPartition(topic, p) for p in range(3)]
            reader.assign(partitions)
            await reader.seek_to_beginning(*partitions)
            everything: list[bytes] = []
            async with asyncio.timeout(30):
                while len(everything) < 20:
                    batch = await reader.getmany(timeout_ms=500)
                    everything.extend(r.value for rs in batch.values() for r in rs)
        finally:
            await reader.stop()
        assert sorted(everything) == sorted(before + during)

        restarted = time.monotonic()
        stack.run("kafka-node", "start", str(VICTIM), timeout=300)
        registered = time.monotonic() - restarted
        isr = await _wait_full_isr(admin, topic, 60)
        print(
            f"kafka-{VICTIM} registered {registered:.1f} s after its start, back in every ISR "
            f"after {time.monotonic() - restarted:.1f} s"
        )
        assert isr == {0: {1, 2, 3}, 1: {1, 2, 3}, 2: {1, 2, 3}}
        cluster_info = await admin.describe_cluster()
        assert sorted(b["node_id"] for b in cluster_info["brokers"]) == [1, 2, 3]
        after = [b"after-0"]
        await _produce(bootstrap, topic, after)
        assert await _consume_group(bootstrap, topic, group, 1) == after
        status = stack.run("status", check=False).stdout
        assert all(f"kafka-{n}   up" in status for n in (1, 2, 3)), status
    finally:
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()
