"""The gateway's own behaviour against an honest (fault-free) local mint: coalescing, chunking,
per-caller answers, observer hooks, lifecycle."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from streams.core.cashu import y_from_secret
from streams.core.domain import MintState, Source
from streams.core.errors import (
    MintDeadlineExceeded,
    MintNotAllowed,
    MintRateLimited,
    MintUnavailable,
)
from streams.core.settings import MintSettings
from streams.mint import MintGateway, MintGateways, MintHealth, RequestOutcome
from tests.support.fault_mint import Fault, FaultMint


def new_ys(n: int) -> list[str]:
    tag = uuid.uuid4().hex
    return [y_from_secret(f"{tag}-{i}") for i in range(n)]


class RecordingObserver:
    def __init__(self) -> None:
        self.requests: list[tuple[int, RequestOutcome]] = []
        self.checks: list[tuple[Source, int, str]] = []
        self.hits: list[int] = []
        self.health: list[tuple[MintHealth, MintHealth]] = []

    def request_finished(
        self, mint_url: str, *, ys: int, outcome: RequestOutcome, latency_s: float
    ) -> None:
        assert latency_s >= 0
        self.requests.append((ys, outcome))

    def check_finished(
        self, mint_url: str, *, source: Source, ys: int, outcome: str, latency_s: float
    ) -> None:
        self.checks.append((source, ys, outcome))

    def cache_hits(self, mint_url: str, *, source: Source, hits: int) -> None:
        self.hits.append(hits)

    def health_changed(self, mint_url: str, old: MintHealth, new: MintHealth) -> None:
        self.health.append((old, new))


@pytest.fixture
async def gateway(
    fault_mint: FaultMint, mint_settings: Callable[..., MintSettings]
) -> AsyncIterator[Callable[..., MintGateway]]:
    made: list[MintGateway] = []

    def build(**fields: Any) -> MintGateway:
        observer = fields.pop("observer", None)
        fields.setdefault("gather_window_ms", 2)
        gw = MintGateway(fault_mint.url, mint_settings(fault_mint.url, **fields), observer=observer)
        made.append(gw)
        return gw

    yield build
    for gw in made:
        await gw.close()


async def test_concurrent_callers_are_merged_deduplicated_and_answered_separately(
    fault_mint: FaultMint, gateway: Callable[..., MintGateway]
) -> None:
    gw = gateway()
    pool = new_ys(100)
    truth = {y: list(MintState)[i % 3] for i, y in enumerate(pool)}
    fault_mint.states.update(truth)
    rng = random.Random(7)
    asks = [rng.choices(pool, k=12) for _ in range(60)]  # overlapping, with duplicates
    answers = await asyncio.gather(*(gw.check(ys) for ys in asks))
    for ys, answer in zip(asks, answers, strict=True):
        assert answer == {y: truth[y] for y in ys}
    assert fault_mint.request_count == 1
    sent = fault_mint.checkstate_requests[0]
    assert len(sent) == len(set(sent)) == len({y for ys in asks for y in ys})


async def test_big_batches_are_chunked_and_chunks_go_out_concurrently(
    fault_mint: FaultMint, gateway: Callable[..., MintGateway]
) -> None:
    gw = gateway(max_batch_size=100, burst=10)  # within budget: pacing is not under test here
    fault_mint.delay_s = 0.3
    ys = new_ys(450)
    started = time.monotonic()
    assert await gw.check(ys) == dict.fromkeys(ys, MintState.UNSPENT)
    # Five 0.3 s requests, at most four out at once: two rounds (0.6 s), not five (1.5 s).
    assert time.monotonic() - started < 1.2
    assert sorted(len(r) for r in fault_mint.checkstate_requests) == [50, 100, 100, 100, 100]


async def test_a_cancelled_caller_does_not_disturb_the_others(
    fault_mint: FaultMint, gateway: Callable[..., MintGateway]
) -> None:
    gw = gateway()
    fault_mint.delay_s = 0.2
    shared = new_ys(3)
    leaving = asyncio.create_task(gw.check(shared))
    staying = asyncio.create_task(gw.check(shared))
    await asyncio.sleep(0.05)
    leaving.cancel()
    assert await staying == dict.fromkeys(shared, MintState.UNSPENT)
    assert leaving.cancelled()


async def test_observer_sees_requests_checks_cache_hits_and_health(
    fault_mint: FaultMint, gateway: Callable[..., MintGateway]
) -> None:
    observer = RecordingObserver()
    gw = gateway(observer=observer, max_retries=0)
    ys = new_ys(4)
    fault_mint.states[ys[0]] = MintState.SPENT
    await gw.check(ys)
    await gw.check(ys[:1], source=Source.SWEEP)  # a cache hit
    fault_mint.script(Fault.UNKNOWN_STATE)
    with pytest.raises(Exception, match="unknown state"):
        await gw.check(new_ys(2))
    assert observer.requests == [(4, RequestOutcome.OK), (2, RequestOutcome.PROTOCOL_ERROR)]
    assert observer.checks == [
        (Source.PREFLIGHT, 4, "ok"),
        (Source.SWEEP, 1, "ok"),
        (Source.PREFLIGHT, 2, "MINT_PROTOCOL_ERROR"),
    ]
    assert observer.hits == [1]
    assert observer.health == [(MintHealth.OK, MintHealth.DEGRADED)]


async def test_a_raising_listener_or_observer_never_breaks_a_check(
    fault_mint: FaultMint, gateway: Callable[..., MintGateway]
) -> None:
    class Broken(RecordingObserver):
        def request_finished(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("metrics backend down")

    gw = gateway(observer=Broken(), max_retries=0)

    def bad_listener(url: str, old: MintHealth, new: MintHealth) -> None:
        raise RuntimeError("alerting down")

    gw.add_health_listener(bad_listener)
    fault_mint.script(Fault.SERVER_ERROR)
    with pytest.raises(Exception, match="HTTP 500"):
        await gw.check(new_ys(1))
    ys = new_ys(2)
    assert await gw.check(ys) == dict.fromkeys(ys, MintState.UNSPENT)
    assert gw.health is MintHealth.OK


async def test_close_fails_waiting_callers_at_once(
    fault_mint: FaultMint, gateway: Callable[..., MintGateway]
) -> None:
    gw = gateway()
    fault_mint.default = Fault.STALL
    waiting = asyncio.create_task(gw.check(new_ys(2), deadline_s=5))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await gw.close()
    with pytest.raises(MintUnavailable):
        await waiting
    assert time.monotonic() - started < 0.5
    with pytest.raises(MintUnavailable):
        await gw.check(new_ys(1))


async def test_no_time_left_fails_at_once_unless_everything_is_cached(
    fault_mint: FaultMint, gateway: Callable[..., MintGateway]
) -> None:
    gw = gateway()
    spent = new_ys(2)
    for y in spent:
        fault_mint.states[y] = MintState.SPENT
    await gw.check(spent)
    assert await gw.check(spent, deadline_s=0) == dict.fromkeys(spent, MintState.SPENT)
    with pytest.raises(MintDeadlineExceeded):
        await gw.check([*spent, *new_ys(1)], deadline_s=0)
    assert fault_mint.request_count == 1


def test_a_gateway_cannot_be_built_for_a_mint_off_the_allow_list(
    mint_settings: Callable[..., MintSettings],
) -> None:
    with pytest.raises(MintNotAllowed):
        MintGateway("http://127.0.0.1:1", mint_settings("http://127.0.0.1:2"))


async def test_registry_gives_one_gateway_per_mint_and_shares_listeners(
    fault_mint: FaultMint, mint_settings: Callable[..., MintSettings]
) -> None:
    other = "http://127.0.0.1:9"
    gateways = MintGateways(mint_settings(fault_mint.url, other, max_retries=0))
    changes: list[tuple[str, MintHealth]] = []
    gateways.add_health_listener(lambda url, old, new: changes.append((url, new)))
    first = gateways.get(fault_mint.url)
    assert gateways.get(fault_mint.url + "/") is first
    fault_mint.script(Fault.SERVER_ERROR)
    with pytest.raises(Exception, match="HTTP 500"):
        await gateways.check(fault_mint.url, new_ys(1))
    assert changes == [(fault_mint.url, MintHealth.DEGRADED)]
    assert gateways.get(other) is not first
    assert len(gateways) == 2
    await gateways.close()
    assert len(gateways) == 0


async def test_callers_arriving_while_a_request_is_out_join_the_next_one(
    fault_mint: FaultMint, gateway: Callable[..., MintGateway]
) -> None:
    gw = gateway(max_in_flight=1)
    fault_mint.delay_s = 0.2
    first = asyncio.create_task(gw.check(new_ys(2)))
    later = []
    for _ in range(5):
        await asyncio.sleep(0.03)
        later.append(asyncio.create_task(gw.check(new_ys(2))))
    await asyncio.gather(first, *later)
    assert [len(r) for r in fault_mint.checkstate_requests] == [2, 10]


async def test_health_recovers_by_itself_when_the_silence_ends(
    fault_mint: FaultMint, gateway: Callable[..., MintGateway]
) -> None:
    gw = gateway(rate_limit_silence_s=0.3)
    changes: list[tuple[MintHealth, MintHealth]] = []
    gw.add_health_listener(lambda url, old, new: changes.append((old, new)))
    fault_mint.script(Fault.RATE_LIMIT)
    with pytest.raises(MintRateLimited):
        await gw.check(new_ys(1))
    assert changes == [(MintHealth.OK, MintHealth.RATE_LIMITED)]
    await asyncio.sleep(0.5)  # no call, no access: the listener still hears of the recovery
    assert changes == [
        (MintHealth.OK, MintHealth.RATE_LIMITED),
        (MintHealth.RATE_LIMITED, MintHealth.OK),
    ]
