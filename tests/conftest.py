"""Fixtures shared by the whole suite.

Tests that touch Kafka or the mint run against the local stack (`make stack-up`); they fail, not
skip, when it is down, because a suite that silently skips its real-component tests proves nothing.
Every test gets its own topic names and consumer group, so runs never see each other's messages.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from streams.core.kafka import delete_topics
from streams.core.settings import KafkaSettings, Settings, TopicSettings, load_settings

pytest_plugins = ["tests.support.fixtures", "tests.support.pipeline"]

REPO = Path(__file__).resolve().parent.parent
KAFKA = os.environ.get("PROOFRECON_TEST_KAFKA", "127.0.0.1:9092")
MINT_URL = os.environ.get("PROOFRECON_TEST_MINT", "http://127.0.0.1:3338")
ARTIFACTS = REPO / "tests" / "artifacts"

TOPIC_FIELDS = TopicSettings.topic_fields()

# The run ids whose topics this session created; deleted when the session ends so that repeated
# local runs do not pile up thousands of partitions (the broker then takes minutes to restart).
_SESSION_RUN_IDS: set[str] = set()


def _stack_hint(what: str) -> str:
    return f"{what} is not reachable; start the local stack with `make stack-up`"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    import socket

    host, port = KAFKA.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        pytest.fail(_stack_hint(f"Kafka at {KAFKA}"))
    return KAFKA


@pytest.fixture(scope="session")
def mint_url() -> str:
    try:
        httpx.get(f"{MINT_URL}/v1/info", timeout=5).raise_for_status()
    except httpx.HTTPError:
        pytest.fail(_stack_hint(f"the mint at {MINT_URL}"))
    return MINT_URL


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex[:10]


def build_test_settings(run_id: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings of their own for one test (or module): topics, consumer group, data dir, port."""
    from devkit.mints import free_port

    _SESSION_RUN_IDS.add(run_id)
    topics = {field: f"t{run_id}.{field.replace('_', '-')}" for field in TOPIC_FIELDS}
    topics.update(overrides.pop("topics", {}))
    kafka = {"bootstrap_servers": KAFKA, "app_id": f"proofrecon-test-{run_id}"}
    kafka.update(overrides.pop("kafka", {}))
    mint = {"allowlist": [MINT_URL]}
    mint.update(overrides.pop("mint", {}))
    web = {"port": free_port()}
    web.update(overrides.pop("web", {}))
    # Tests wait for rows to reach ClickHouse: a shorter insert interval than production's.
    clickhouse = {"batch_max_wait_s": 1.0}
    clickhouse.update(overrides.pop("clickhouse", {}))
    return load_settings(
        data_dir=overrides.pop("data_dir", data_dir),
        topics=topics,
        kafka=kafka,
        mint=mint,
        web=web,
        clickhouse=clickhouse,
        **overrides,
    )


def _session_topic_prefixes() -> tuple[str, ...]:
    return tuple(
        prefix for run in _SESSION_RUN_IDS for prefix in (f"t{run}.", f"proofrecon-test-{run}")
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Delete the topics this session's tests created (a courtesy to the shared broker)."""
    import asyncio

    prefixes = _session_topic_prefixes()
    if not prefixes or os.environ.get("PROOFRECON_TEST_KEEP_TOPICS"):
        return
    kafka = KafkaSettings(bootstrap_servers=KAFKA)
    try:
        deleted = asyncio.run(delete_topics(kafka, lambda name: name.startswith(prefixes)))
    except Exception as exc:  # never turn a passing run red over cleanup
        print(f"\ncould not delete this session's test topics: {exc!r}")
        return
    print(f"\ndeleted {len(deleted)} test topics created by this session")


def clear_proofrecon_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("PROOFRECON_") and not key.startswith("PROOFRECON_TEST_"):
            monkeypatch.delenv(key)


@pytest.fixture
def make_settings(
    tmp_path: Path, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Settings]:
    """Settings isolated to this test: own topics, consumer group, data dir, web port."""
    clear_proofrecon_env(monkeypatch)

    def build(**overrides: Any) -> Settings:
        return build_test_settings(run_id, tmp_path / "data", **overrides)

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture(scope="session")
def artifacts_dir() -> Iterator[Path]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield ARTIFACTS
