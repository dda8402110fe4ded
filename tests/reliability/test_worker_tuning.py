"""The worker changes the campaign called for, on their own: the stall fence (a zombie exits
before it answers for partitions it lost) and Faust's fetch long-poll shortened (a fixed wait
that table recovery's offset lookups queued behind at every start)."""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

import aiokafka
import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.core.settings import KafkaSettings
from streams.worker import transport
from streams.worker.fencing import EXIT_CODE, StallFence
from streams.worker.transport import FETCH_MAX_WAIT_MS


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fence(limit_s: float = 7.0) -> tuple[StallFence, Clock, list[int]]:
    clock, exits = Clock(), []
    return StallFence(limit_s, clock=clock, exit_process=exits.append), clock, exits


def test_the_limit_leaves_one_heartbeat_interval_of_the_session() -> None:
    assert StallFence.for_settings(KafkaSettings(session_timeout_s=10.0)).limit_s == 7.0
    assert StallFence.for_settings(KafkaSettings(session_timeout_s=6.0)).limit_s == 4.0


def test_start_up_is_no_pause() -> None:
    stall, clock, exits = fence()
    clock.now += 60.0  # the app took a minute to start: not armed yet
    assert not stall.check()
    stall.tick()
    assert exits == []


def test_a_pause_within_the_session_is_survived() -> None:
    stall, clock, exits = fence()
    stall.tick()
    for _ in range(10):
        clock.now += 6.9
        stall.tick()
    assert exits == []


def test_a_pause_past_the_limit_exits_at_once(capfd: pytest.CaptureFixture[str]) -> None:
    stall, clock, exits = fence()
    stall.tick()
    clock.now += 14.0  # SIGSTOP for 14 s, then SIGCONT
    assert stall.check()
    assert exits == [EXIT_CODE]
    assert "paused 14.0 s" in capfd.readouterr().err


def test_the_fetch_wait_reaches_the_consumer_faust_creates(monkeypatch: pytest.MonkeyPatch) -> None:
    made = SimpleNamespace(_fetch_max_wait_ms=1500)
    parent: Any = faust_aiokafka.AIOKafkaConsumerThread
    monkeypatch.setattr(parent, "_create_worker_consumer", lambda self, transport: made)
    thread = object.__new__(transport._ConsumerThread)  # no consumer started: only the factory
    assert thread._create_worker_consumer(None)._fetch_max_wait_ms == FETCH_MAX_WAIT_MS
    assert FETCH_MAX_WAIT_MS < 1500


def test_the_pinned_libraries_still_work_the_way_the_wrapper_relies_on() -> None:
    # Faust hard-codes the long-poll in the factory the wrapper wraps ...
    assert "fetch_max_wait_ms=1500" in inspect.getsource(
        faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer
    )
    # ... and aiokafka builds its fetcher from the attribute the wrapper sets.
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(
        aiokafka.AIOKafkaConsumer.start
    )
