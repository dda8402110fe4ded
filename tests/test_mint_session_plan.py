"""The gateway's plan for an elastic limiter's session (streams.mint.gateway `_hold_s`, pacing.py),
on virtual time against an in-memory mint whose limiter is Nutshell's: every request, refused or
not, counts and pushes the count's expiry a window further; 429 past the limit.

- Melts at 50/s for 90 s, each with a 2 s deadline: spreading the session's 54 requests over it
  (each request holding as many melts as their deadlines allow) answers nearly every melt with
  the mint's truth, and the limiter never refuses a request.
- Sparse melts (one every 5 s, nothing to merge) are sent at once, never held.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from streams.core.errors import MintError
from streams.core.settings import MintSettings
from streams.mint import MintGateway
from tests.support.virtual_time import run_virtual

MINT = "https://mint.example"
LIMIT = 60
WINDOW_S = 60.0


class ElasticMint:
    """A checkstate endpoint behind Nutshell's fixed-window-elastic-expiry limiter."""

    def __init__(self, latency_s: float = 0.005) -> None:
        self.latency_s = latency_s
        self.count = 0
        self.expires = -math.inf
        self.statuses: Counter[int] = Counter()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(self.latency_s)
        now = asyncio.get_running_loop().time()
        if request.url.path == "/v1/info":
            return httpx.Response(200, json={"nuts": {"7": {"supported": True}}})
        if now >= self.expires:
            self.count = 0
        self.count += 1
        self.expires = now + WINDOW_S
        if self.count > LIMIT:
            self.statuses[429] += 1
            return httpx.Response(429, json={"detail": "Rate limit exceeded."})
        self.statuses[200] += 1
        ys = json.loads(request.content)["Ys"]
        return httpx.Response(
            200, json={"states": [{"Y": y, "state": "UNSPENT", "witness": None} for y in ys]}
        )


def _ys(n: int) -> list[str]:
    # Ys need only look right here: the mint is ours and answers whatever it is asked.
    return [("02" + os.urandom(32).hex()) for _ in range(n)]


def _settings(monkeypatch: pytest.MonkeyPatch) -> MintSettings:
    for key in list(os.environ):
        if key.startswith("PROOFRECON_MINT_"):
            monkeypatch.delenv(key)
    return MintSettings(allowlist=[MINT], limiter_model="elastic", limiter_limit=LIMIT)


def _gateway(mint: ElasticMint, settings: MintSettings) -> MintGateway:
    """Built inside the virtual loop: its clock is the loop's."""
    loop_time: Callable[[], float] = lambda: asyncio.get_running_loop().time()  # noqa: E731
    return MintGateway(MINT, settings, clock=loop_time, transport=httpx.MockTransport(mint.handle))


async def _melts(
    mint: ElasticMint,
    settings: MintSettings,
    rate: float,
    duration: float,
    outcomes: Counter[str],
    waits: list[float],
) -> None:
    loop = asyncio.get_running_loop()
    gateway = _gateway(mint, settings)

    async def melt() -> None:
        started = loop.time()
        try:
            await gateway.check(_ys(3), deadline_s=1.98)  # ~20 ms went to Kafka already
        except MintError as exc:
            outcomes[exc.code] += 1
            return
        outcomes["truth"] += 1
        waits.append(loop.time() - started)

    tasks = []
    start = loop.time()
    for i in range(int(rate * duration)):
        await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
        tasks.append(asyncio.create_task(melt()))
    await asyncio.gather(*tasks)
    await gateway.close()


def test_a_session_spread_over_90_s_of_melts_answers_them_with_the_mints_truth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mint = ElasticMint()
    outcomes: Counter[str] = Counter()
    run_virtual(_melts(mint, _settings(monkeypatch), 50.0, 90.0, outcomes, []))
    assert mint.statuses[429] == 0
    assert sum(outcomes.values()) == 4500
    assert outcomes["truth"] >= 0.95 * 4500, outcomes


def test_sparse_melts_are_sent_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    mint = ElasticMint()
    outcomes: Counter[str] = Counter()
    waits: list[float] = []
    run_virtual(_melts(mint, _settings(monkeypatch), 0.2, 100.0, outcomes, waits))
    assert outcomes == {"truth": 20}
    # Each answered in its own request's time: nothing was held back for company.
    assert max(waits) < 10 * mint.latency_s


def test_melts_in_a_quiet_minute_fail_closed_at_once_and_the_next_session_serves_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mint = ElasticMint()
    outcomes: Counter[str] = Counter()
    run_virtual(_melts(mint, _settings(monkeypatch), 50.0, 240.0, outcomes, []))
    assert mint.statuses[429] == 0
    assert outcomes["truth"] > 0 and outcomes["MINT_RATE_LIMITED"] > 0
    assert set(outcomes) <= {"truth", "MINT_RATE_LIMITED", "MINT_DEADLINE_EXCEEDED"}
