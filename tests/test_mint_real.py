"""The gateway against real Nutshell mints, with proofs made and spent by Nutshell's own wallet.

A mint answers UNSPENT for any Y it never saw, so these tests only prove something because some
proofs are really SPENT (by a swap, or by a second wallet redeeming copies) or really PENDING (an
in-flight melt): a wrong Y computation would read them UNSPENT.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from devkit.mints import MintServer
from devkit.wallet import Scenario, WalletProof
from streams.core.cashu import hash_to_curve, y_from_secret
from streams.core.domain import MintState
from streams.core.errors import MintNotAllowed, MintTransportError
from streams.core.settings import MintSettings
from streams.mint import MintGateway, MintGateways

pytestmark = pytest.mark.stack


class RequestCounter:
    """An httpx event hook counting what actually goes on the wire."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    async def __call__(self, request: httpx.Request) -> None:
        self.requests.append((request.method, request.url.path))

    @property
    def checkstates(self) -> int:
        return sum(1 for _, path in self.requests if path == "/v1/checkstate")

    @property
    def hooks(self) -> dict[str, list[Callable[..., Any]]]:
        return {"request": [self]}


@pytest.fixture
async def gateway_for(
    mint_settings: Callable[..., MintSettings],
) -> AsyncIterator[Callable[..., tuple[MintGateway, RequestCounter]]]:
    made: list[MintGateway] = []

    def build(url: str, **fields: Any) -> tuple[MintGateway, RequestCounter]:
        counter = RequestCounter()
        gateway = MintGateway(url, mint_settings(url, **fields), event_hooks=counter.hooks)
        made.append(gateway)
        return gateway, counter

    yield build
    for gateway in made:
        await gateway.close()


def ys_of(proofs: list[WalletProof]) -> list[str]:
    return [y_from_secret(p.secret) for p in proofs]


def random_ys(n: int) -> list[str]:
    return [y_from_secret(os.urandom(16).hex()) for _ in range(n)]


async def test_our_y_is_the_mints_y_and_states_are_exact(
    real_scenario: Scenario, mint_url: str, gateway_for: Callable[..., Any]
) -> None:
    scene = real_scenario
    every = scene.unspent + scene.spent_swap + scene.spent_elsewhere + scene.swap_outputs
    assert [y_from_secret(p.secret) for p in every] == [p.Y for p in every]  # Nutshell agrees

    gateway, counter = gateway_for(mint_url)
    expected = {
        **dict.fromkeys(ys_of(scene.unspent), MintState.UNSPENT),
        **dict.fromkeys(ys_of(scene.swap_outputs), MintState.UNSPENT),
        **dict.fromkeys(ys_of(scene.spent_swap), MintState.SPENT),
        **dict.fromkeys(ys_of(scene.spent_elsewhere), MintState.SPENT),
    }
    assert await gateway.check(list(expected)) == expected
    assert counter.checkstates == 1
    seen = gateway.last_seen(ys_of(scene.spent_swap)[0])
    assert seen is not None
    assert seen.state is MintState.SPENT


async def test_a_wrong_y_silently_reads_unspent(
    real_scenario: Scenario, mint_url: str, gateway_for: Callable[..., Any]
) -> None:
    """Why the Y must be right: hashing the hex-decoded secret names no proof at all."""
    gateway, _ = gateway_for(mint_url)
    spent = real_scenario.spent_swap[0]
    wrong = hash_to_curve(bytes.fromhex(spent.secret)).hex()
    right = y_from_secret(spent.secret)
    assert await gateway.check([wrong, right]) == {
        wrong: MintState.UNSPENT,
        right: MintState.SPENT,
    }


async def test_spent_is_final_and_never_asked_again(
    real_scenario: Scenario, mint_url: str, gateway_for: Callable[..., Any]
) -> None:
    gateway, counter = gateway_for(mint_url)
    spent = ys_of(real_scenario.spent_elsewhere)
    unspent = ys_of(real_scenario.unspent)
    await gateway.check(spent + unspent)
    assert counter.checkstates == 1
    assert await gateway.check(spent) == dict.fromkeys(spent, MintState.SPENT)
    assert counter.checkstates == 1  # from the cache
    assert await gateway.check(unspent) == dict.fromkeys(unspent, MintState.UNSPENT)
    assert counter.checkstates == 2  # UNSPENT can change: asked again


async def test_200_concurrent_callers_share_at_most_3_requests(
    real_scenario: Scenario, mint_url: str, gateway_for: Callable[..., Any]
) -> None:
    scene = real_scenario
    truth = {
        **dict.fromkeys(ys_of(scene.unspent), MintState.UNSPENT),
        **dict.fromkeys(ys_of(scene.spent_swap + scene.spent_elsewhere), MintState.SPENT),
    }
    real = list(truth)
    filler = random_ys(200 * 7)
    truth.update(dict.fromkeys(filler, MintState.UNSPENT))
    # Each caller: one real proof (shared with other callers) and seven of its own.
    asks = [[real[i % len(real)], *filler[i * 7 : (i + 1) * 7]] for i in range(200)]

    gateway, counter = gateway_for(mint_url)
    answers = await asyncio.gather(*(gateway.check(ys) for ys in asks))
    for ys, answer in zip(asks, answers, strict=True):
        assert answer == {y: truth[y] for y in ys}
    assert len(counter.requests) <= 3, counter.requests  # 1410 distinct Ys: 2 checkstates + info
    assert counter.checkstates == 2


async def test_pending_proofs_of_an_in_flight_melt_read_pending(
    pending_mint: MintServer,
    pending_proofs: dict[str, list[WalletProof]],
    gateway_for: Callable[..., Any],
) -> None:
    gateway, counter = gateway_for(pending_mint.url)
    pending, unspent = ys_of(pending_proofs["pending"]), ys_of(pending_proofs["unspent"])
    expected = {
        **dict.fromkeys(pending, MintState.PENDING),
        **dict.fromkeys(unspent, MintState.UNSPENT),
    }
    assert await gateway.check(pending + unspent) == expected
    await gateway.check(pending)
    assert counter.checkstates == 2  # PENDING can go either way: never cached


def test_urls_off_the_allow_list_are_refused_without_a_request(
    mint_url: str, mint_settings: Callable[..., MintSettings]
) -> None:
    counter = RequestCounter()
    gateways = MintGateways(mint_settings(mint_url), event_hooks=counter.hooks)
    host_port = mint_url.split("://", 1)[1]
    for url in (
        "http://127.0.0.1:3339",
        f"https://{host_port}",
        f"{mint_url}.evil.example",
        f"http://evil.example@{host_port}",
        f"{mint_url}/other-mint",
        f"ftp://{host_port}",
        "",
    ):
        with pytest.raises(MintNotAllowed):
            gateways.get(url)
        with pytest.raises(MintNotAllowed):
            asyncio.run(gateways.check(url, random_ys(1)))
    assert len(gateways) == 0
    assert counter.requests == []
    # Spelling variants of an allowed URL all reach the same gateway.
    assert gateways.get(f"  {mint_url.upper()}/ ") is gateways.get(mint_url)
    assert len(gateways) == 1
    asyncio.run(gateways.close())


async def test_a_stopped_mint_fails_fast_and_its_restart_is_picked_up(
    pending_mint: MintServer,
    pending_proofs: dict[str, list[WalletProof]],
    gateway_for: Callable[..., Any],
) -> None:
    # Last in this module: it restarts the module's pending mint.
    gateway, _ = gateway_for(pending_mint.url, max_retries=1, retry_backoff_s=0.05)
    pending = ys_of(pending_proofs["pending"])
    pending_mint.stop()
    started = time.monotonic()
    with pytest.raises(MintTransportError):
        await gateway.check(pending, deadline_s=2)
    assert time.monotonic() - started < 1.0
    await asyncio.to_thread(pending_mint.start)
    # The melt is still in flight after the restart: the proofs stay PENDING.
    assert await gateway.check(pending) == dict.fromkeys(pending, MintState.PENDING)
