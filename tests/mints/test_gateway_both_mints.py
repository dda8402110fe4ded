"""The mint gateway against each real implementation (Nutshell, CDK's cdk-mintd): one code path,
whatever the mint says in its own way.

A mint answers UNSPENT for any Y it never saw, so the states prove something only because some
proofs are really SPENT (swapped, or redeemed by a second wallet) or PENDING (an in-flight melt).
Where the two mints answer differently on the wire, the test says how each does, and that the
gateway reads both the same.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from streams.core.cashu import y_from_secret
from streams.core.domain import MintState
from streams.core.errors import CanaryMismatch, MintProtocolError
from streams.core.settings import MintSettings
from streams.mint import MintGateway, NullObserver, RequestOutcome
from tests.mints.impls import CDK, NUTSHELL, MintImpl

pytestmark = [pytest.mark.stack, pytest.mark.timeout(120)]

# How each mint refuses a checkstate of 1001 Ys (both allow 1000): (HTTP status, media type).
TOO_LONG_ON_THE_WIRE = {NUTSHELL: (422, "application/json"), CDK: (400, "application/json")}
# How each refuses a Y of the wrong length: Nutshell's FastAPI validation error is JSON, CDK's
# axum extractor answers in plain text. Neither is "too long", and neither may be read as such.
MALFORMED_ON_THE_WIRE = {NUTSHELL: (422, "application/json"), CDK: (422, "text/plain")}


@dataclass
class Wire:
    """What went over the wire: each checkstate's size and outcome, and each answer's status."""

    exchanges: list[tuple[int, RequestOutcome]] = field(default_factory=list)
    answers: list[tuple[str, int, str]] = field(default_factory=list)  # path, status, media

    async def on_response(self, response: httpx.Response) -> None:
        media = response.headers.get("content-type", "").split(";")[0].strip()
        self.answers.append((response.request.url.path, response.status_code, media))

    def checkstate_answers(self) -> list[tuple[int, str]]:
        return [(s, m) for path, s, m in self.answers if path == "/v1/checkstate"]


class WireObserver(NullObserver):
    def __init__(self, wire: Wire) -> None:
        self.wire = wire

    def request_finished(
        self, mint_url: str, *, ys: int, outcome: RequestOutcome, latency_s: float
    ) -> None:
        self.wire.exchanges.append((ys, outcome))


@pytest.fixture
async def gateway_for(
    mint_settings: Callable[..., MintSettings],
) -> AsyncIterator[Callable[..., tuple[MintGateway, Wire]]]:
    made: list[MintGateway] = []

    def build(url: str, **fields: Any) -> tuple[MintGateway, Wire]:
        wire = Wire()
        # The local mints do not rate-limit 127.0.0.1: only a generous bucket paces.
        fields = {"limiter_model": "none", "requests_per_minute": 6000, "burst": 100, **fields}
        gateway = MintGateway(
            url,
            mint_settings(url, **fields),
            observer=WireObserver(wire),
            event_hooks={"response": [wire.on_response]},
        )
        made.append(gateway)
        return gateway, wire

    yield build
    for gateway in made:
        await gateway.close()


def random_ys(n: int) -> list[str]:
    return [y_from_secret(os.urandom(16).hex()) for _ in range(n)]


def truth_of(impl: MintImpl) -> dict[str, MintState]:
    """Every proof of the stack mint's scene with the state the mint must report."""
    scene = impl.scene
    return {
        **{p.Y: MintState.UNSPENT for p in scene.unspent + scene.swap_outputs},
        **{p.Y: MintState.SPENT for p in scene.spent_swap + scene.spent_elsewhere},
        impl.canary: MintState.SPENT,
    }


async def test_our_y_is_the_mints_y_and_its_states_are_exact(
    mint_impl: MintImpl, gateway_for: Callable[..., Any]
) -> None:
    scene = mint_impl.scene
    every = scene.unspent + scene.spent_swap + scene.spent_elsewhere + scene.swap_outputs
    assert [y_from_secret(p.secret) for p in every] == [p.Y for p in every]  # Nutshell's hashing
    gateway, wire = gateway_for(mint_impl.url)
    truth = truth_of(mint_impl)
    assert await gateway.check(list(truth)) == truth
    assert wire.exchanges == [(len(truth), RequestOutcome.OK)]


async def test_pending_proofs_of_an_in_flight_melt_read_pending_and_are_asked_again(
    mint_impl: MintImpl, gateway_for: Callable[..., Any]
) -> None:
    gateway, wire = gateway_for(mint_impl.own.url)
    pending = [p.Y for p in mint_impl.own_scene.pending]
    unspent = [p.Y for p in mint_impl.own_scene.unspent]
    expected = {
        **dict.fromkeys(pending, MintState.PENDING),
        **dict.fromkeys(unspent, MintState.UNSPENT),
    }
    assert await gateway.check(pending + unspent) == expected
    assert await gateway.check(pending) == dict.fromkeys(pending, MintState.PENDING)
    assert len(wire.exchanges) == 2  # PENDING can still go either way: never cached


async def test_1001_ys_are_refused_as_too_long_then_halved_and_all_answered(
    mint_impl: MintImpl, gateway_for: Callable[..., Any]
) -> None:
    """Both mints take at most 1000 Ys; each says so in its own way (Nutshell: 422 with a
    pydantic too_long detail; CDK: 400 with Cashu code 11014). The gateway is configured for
    more and sends its first request before /v1/info has told it the limit."""
    gateway, wire = gateway_for(mint_impl.url, max_batch_size=2000)
    truth = truth_of(mint_impl)
    truth.update(dict.fromkeys(random_ys(1001 - len(truth)), MintState.UNSPENT))

    assert await gateway.check(list(truth), deadline_s=30) == truth

    assert wire.exchanges[0] == (1001, RequestOutcome.TOO_LONG)
    assert wire.checkstate_answers()[0] == TOO_LONG_ON_THE_WIRE[mint_impl.name]
    rest = wire.exchanges[1:]
    assert {outcome for _, outcome in rest} == {RequestOutcome.OK}
    assert sum(n for n, _ in rest) == 1001 and max(n for n, _ in rest) <= 500
    assert gateway.effective_limit == 500


async def test_the_advertised_limit_is_read_and_no_request_exceeds_it(
    mint_impl: MintImpl, gateway_for: Callable[..., Any]
) -> None:
    """Nutshell advertises it as NUT-29's max_batch_size, CDK as NUT-06's max_array_length."""
    gateway, wire = gateway_for(mint_impl.url, max_batch_size=5000)
    await gateway.check(random_ys(3))
    async with asyncio.timeout(10):
        while gateway.advertised_limit is None:  # /v1/info is read in the background
            await asyncio.sleep(0.05)
            await gateway.check(random_ys(1))
    assert gateway.advertised_limit == 1000 == gateway.effective_limit

    truth = truth_of(mint_impl)
    truth.update(dict.fromkeys(random_ys(2500 - len(truth)), MintState.UNSPENT))
    wire.exchanges.clear()
    assert await gateway.check(list(truth), deadline_s=30) == truth
    assert sorted(n for n, _ in wire.exchanges) == [500, 1000, 1000]
    assert {outcome for _, outcome in wire.exchanges} == {RequestOutcome.OK}


async def test_a_malformed_y_is_an_untrusted_answer_and_never_shortens_requests(
    mint_impl: MintImpl, gateway_for: Callable[..., Any]
) -> None:
    gateway, wire = gateway_for(mint_impl.url)
    malformed = "02" + "0" * 64 + "ab"  # 34 bytes: no mint can read it as a point
    ys = [*random_ys(9), malformed]
    with pytest.raises(MintProtocolError):
        await gateway.check(ys)
    assert wire.exchanges == [(10, RequestOutcome.PROTOCOL_ERROR)]  # not retried, not halved
    assert wire.checkstate_answers() == [MALFORMED_ON_THE_WIRE[mint_impl.name]]
    assert gateway.effective_limit == 1000
    # The gateway goes on: the next good request is answered.
    good = [p.Y for p in mint_impl.scene.spent_elsewhere]
    assert await gateway.check(good) == dict.fromkeys(good, MintState.SPENT)


async def test_a_y_off_the_curve_nutshell_reads_unspent_cdk_refuses(
    mint_impl: MintImpl, gateway_for: Callable[..., Any]
) -> None:
    """Nutshell never parses a Y (any 66 hex characters read UNSPENT); CDK parses each as a point
    and refuses the request in plain text. Either way nothing true comes back, which is why the
    worker refuses such a Y at its edge (INVALID_REQUEST) and never sends it."""
    gateway, wire = gateway_for(mint_impl.url)
    off_curve = "02" + "f" * 64
    if mint_impl.name == NUTSHELL:
        assert await gateway.check([off_curve]) == {off_curve: MintState.UNSPENT}
    else:
        with pytest.raises(MintProtocolError):
            await gateway.check([off_curve])
        assert wire.checkstate_answers() == [(422, "text/plain")]
    assert gateway.effective_limit == 1000


async def test_the_canary_rides_along_and_another_mints_canary_refuses_every_answer(
    mint_impl: MintImpl, other_impl: MintImpl, gateway_for: Callable[..., Any]
) -> None:
    proofs = [p.Y for p in mint_impl.scene.unspent]
    own, wire = gateway_for(mint_impl.url, canaries={mint_impl.url: mint_impl.canary})
    assert await own.check(proofs) == dict.fromkeys(proofs, MintState.UNSPENT)
    assert wire.exchanges == [(len(proofs) + 1, RequestOutcome.OK)]  # the canary took a slot

    # A Y SPENT at the other implementation's mint: this one never saw it and says UNSPENT.
    foreign, wire = gateway_for(mint_impl.url, canaries={mint_impl.url: other_impl.canary})
    with pytest.raises(CanaryMismatch):
        await foreign.check(proofs)
    assert wire.exchanges == [(len(proofs) + 1, RequestOutcome.CANARY_MISMATCH)]
