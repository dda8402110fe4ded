"""Run `proofrecon worker` or `proofrecon sink` as a subprocess and read what it emits (the demo,
the tests and the benchmarks)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.core.kafka import client_kwargs
from streams.core.settings import Settings, to_env

REPO = Path(__file__).resolve().parents[1]
# The same interpreter and package as the caller: works from a checkout and from an install.
CLI = [sys.executable, "-m", "streams.cli.main"]


def process_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a `proofrecon` child with exactly `settings`: inherited PROOFRECON_
    variables are dropped (to_env leaves unset fields out, so one would leak through)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PROOFRECON_")}
    return {**base, **to_env(settings), **(extra or {})}


class ServiceProcess:
    """`proofrecon <command>` with `settings`, ready once `ready_path` answers 200 on its web port;
    its JSON log lines are kept in `log_path`."""

    command = "worker"
    ready_path = "/readyz"

    def __init__(self, settings: Settings, log_path: Path, extra_env: dict[str, str] | None = None):
        self.settings = settings
        self.log_path = log_path
        self.extra_env = extra_env or {}
        self.cwd = REPO  # where the process runs (a test of the wheel runs it elsewhere)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web.port}"

    def argv(self) -> list[str]:
        return [*CLI, self.command]

    def launch(self) -> None:
        """Start the process without waiting for it (several can start side by side)."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own CLI, arguments built here
                self.argv(),
                env=process_env(self.settings, self.extra_env),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
            )

    def start(self, timeout: float = 90.0) -> Self:
        self.launch()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 90.0) -> None:
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.command} exited ({self.proc.returncode}):\n{self.tail()}"
                )
            try:
                if httpx.get(f"{self.url}{self.ready_path}", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"{self.command} not ready within {timeout} s:\n{self.tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_entries(self) -> list[dict[str, Any]]:
        entries = []
        for line in self.log_text().splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
        return entries


class WorkerProcess(ServiceProcess):
    """`proofrecon worker`: ready when its tables are recovered and Kafka answers."""


class SinkProcess(ServiceProcess):
    """`proofrecon sink` alone: ready when its web API answers."""

    command = "sink"
    ready_path = "/v1/analytics/ping"

    def status(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/v1/sink/status", timeout=10).json())


def fixes_of(corrections: list[dict[str, Any]], npub: str) -> list[dict[str, Any]]:
    """The distinct correction commands for `npub`, in order of first appearance.

    A preflight, the sweep and the live watch can each find the same discrepancy and issue the
    same fix; the same fix has the same `command_id`, which a wallet applies once.
    """
    seen: dict[str, dict[str, Any]] = {}
    for command in corrections:
        if command.get("npub") == npub:
            seen.setdefault(command["command_id"], command)
    return list(seen.values())


async def read_topic(
    settings: Settings,
    topic: str,
    *,
    until: Callable[[list[dict[str, Any]]], bool] | None = None,
    timeout: float = 20.0,
    idle: float = 1.5,
) -> list[dict[str, Any]]:
    """Every JSON record of `topic` from the start: until `until(records)` holds, or, without it,
    until nothing new arrived for `idle` seconds. Values are decoded; `_key` holds the key."""
    consumer = AIOKafkaConsumer(
        topic,
        **client_kwargs(settings.kafka),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for items in batch.values():
                for item in items:
                    value = json.loads(item.value) if item.value else {}
                    value["_key"] = item.key.decode() if item.key else None
                    records.append(value)
                    last_new = time.monotonic()
            if until is not None and until(records):
                return records
            if until is None and time.monotonic() - last_new > idle:
                return records
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    if until is not None:
        raise AssertionError(
            f"{topic}: condition not met in {timeout} s; got {len(records)} records"
        )
    return records


# --- the sink's progress ---------------------------------------------------------------------

SINK_TOPICS = ("discrepancies", "preflight_results", "corrections", "proof_checks")


def topic_of(settings: Settings, kind: str) -> str:
    return str(getattr(settings.topics, kind))


async def sink_offsets(settings: Settings) -> tuple[dict[str, int], dict[str, int]]:
    """(end offsets, committed offsets of the sink's group), summed per topic kind."""
    group = f"{settings.kafka.app_id}-clickhouse-sink"
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings.kafka),
        group_id=group,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        ends: dict[str, int] = {}
        committed: dict[str, int] = {}
        for kind in SINK_TOPICS:
            topic = topic_of(settings, kind)
            tps = [TopicPartition(topic, p) for p in range(settings.topics.partitions)]
            end = await consumer.end_offsets(tps)
            ends[kind] = sum(end.values())
            committed[kind] = sum([(await consumer.committed(tp)) or 0 for tp in tps])
        return ends, committed
    finally:
        await consumer.stop()
