"""Finding 24 (low): a future `requested_at` stretched a request's deadline.

At 7262b21 the deadline was `requested_at + deadline_ms`, trusting the producer's clock: a request
stamped 2099 with `deadline_ms: 1` waited ~72 years' worth of deadline (held its partition's acks
through a whole limiter quiet) instead of failing fast.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from devkit.processes import WorkerProcess
from devkit.wallet import Scenario
from streams.client import PreflightClient
from streams.core.settings import load_settings
from streams.worker.agents.melt_requests import Preflight
from tests.conftest import clear_proofrecon_env
from tests.support.pipeline import ask, melt, npub


@pytest.mark.stack
async def test_finding_24_a_request_from_2099_with_a_1_ms_deadline_exceeds_it_at_once(
    client: PreflightClient, worker: WorkerProcess, real_scenario: Scenario
) -> None:
    request = melt(
        npub(), real_scenario.unspent[:2], requested_at="2099-01-01T00:00:00Z", deadline_ms=1
    )
    result = await ask(client, request)
    assert (result.verdict, result.code) == ("BLOCKED", "DEADLINE_EXCEEDED")
    assert result.duration_ms < 1000


def _preflight(monkeypatch: pytest.MonkeyPatch, **preflight: Any) -> Preflight:
    clear_proofrecon_env(monkeypatch)
    settings = load_settings(mint={"default_deadline_ms": 2000}, preflight=preflight)
    # deadline_s reads only the settings.
    return Preflight(cast(Any, SimpleNamespace(settings=settings, metrics=None, emit=None)))


def _request(requested_at: datetime, deadline_ms: int | None) -> Any:
    return SimpleNamespace(requested_at=requested_at, deadline_ms=deadline_ms)


def test_finding_24_deadline_s_never_trusts_a_future_clock_nor_exceeds_the_max(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    preflight = _preflight(monkeypatch, max_deadline_ms=10_000)
    now = datetime.now(UTC)
    future = now + timedelta(days=365 * 70)
    # A future requested_at counts as now.
    assert 0 < preflight.deadline_s(_request(future, 1)) <= 0.001
    assert 4.5 < preflight.deadline_s(_request(future, 5_000)) <= 5.0
    # Never past the configured max, however long the request asks for.
    assert preflight.deadline_s(_request(now, 600_000)) <= 10.0
    assert preflight.deadline_s(_request(future, 600_000)) <= 10.0
    # A past requested_at still counts down from it; no deadline: the mint default, capped too.
    assert preflight.deadline_s(_request(now - timedelta(seconds=3), 1_000)) <= 0
    assert preflight.deadline_s(_request(now, None)) == 2.0
    capped = _preflight(monkeypatch, max_deadline_ms=500)
    assert capped.deadline_s(_request(now, None)) == 0.5
