"""Where a melt's truth comes from (streams.worker.agents.truth), decision by decision.

The gateway and the live watch are replaced by small stand-ins here: the question is only which
of their answers MintTruth takes, and these rules are what keeps a melt from clearing on stale or
late truth. The real paths are in tests/test_live_watch.py."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from streams.core.domain import BlockCode, MintState, Source, Truth
from streams.core.errors import MintDeadlineExceeded, MintUnavailable
from streams.worker.agents.truth import MintTruth

MINT = "http://mint.test"
YS = ["02" + "11" * 32, "03" + "22" * 32]
LIVE = {y: MintState.UNSPENT for y in YS}


class Gateway:
    """Answers after `delay_s` with `result` (states, or an exception to raise)."""

    def __init__(self, result: dict[str, MintState] | Exception, delay_s: float = 0.0) -> None:
        self.result, self.delay_s, self.asked = result, delay_s, 0

    async def check(
        self, ys: Sequence[str], *, deadline_s: float, source: Source
    ) -> dict[str, MintState]:
        self.asked += 1
        await asyncio.sleep(self.delay_s)
        if isinstance(self.result, Exception):
            raise self.result
        return {y: self.result[y] for y in ys}


def _truth(policy: str, gateway: Gateway, live: dict[str, MintState]) -> MintTruth:
    runtime: Any = SimpleNamespace(
        settings=SimpleNamespace(preflight=SimpleNamespace(live_state=policy)),
        live=SimpleNamespace(fresh_states=lambda url, ys: {y: live[y] for y in ys if y in live}),
        gateways=SimpleNamespace(get=lambda url: gateway),
    )
    return MintTruth(runtime)


async def test_the_mint_answering_in_time_decides_under_fallback() -> None:
    spent = {y: MintState.SPENT for y in YS}
    truth = _truth("fallback", Gateway(spent), LIVE)
    assert await truth.states(MINT, YS, 1.0) == (spent, Truth.CHECKSTATE)


async def test_fresh_live_state_stands_in_for_a_mint_that_cannot_be_asked() -> None:
    truth = _truth("fallback", Gateway(MintUnavailable("budget spent", mint_url=MINT)), LIVE)
    assert await truth.states(MINT, YS, 1.0) == (LIVE, Truth.LIVE)


async def test_live_state_never_stands_in_once_the_deadline_has_passed() -> None:
    late = Gateway(MintDeadlineExceeded("too late", mint_url=MINT), delay_s=0.05)
    truth = _truth("fallback", late, LIVE)
    assert await truth.states(MINT, YS, 0.01) == BlockCode.DEADLINE_EXCEEDED


async def test_live_state_stands_in_when_the_gateway_gives_up_before_the_deadline() -> None:
    early = Gateway(MintDeadlineExceeded("cannot make it", mint_url=MINT))
    truth = _truth("fallback", early, LIVE)
    assert await truth.states(MINT, YS, 5.0) == (LIVE, Truth.LIVE)


async def test_one_proof_without_fresh_live_state_blocks() -> None:
    partial = {YS[0]: MintState.UNSPENT}
    truth = _truth("fallback", Gateway(MintUnavailable("down", mint_url=MINT)), partial)
    assert await truth.states(MINT, YS, 1.0) == BlockCode.MINT_UNAVAILABLE


async def test_never_ignores_live_state() -> None:
    truth = _truth("never", Gateway(MintUnavailable("down", mint_url=MINT)), LIVE)
    assert await truth.states(MINT, YS, 1.0) == BlockCode.MINT_UNAVAILABLE


async def test_prefer_asks_the_mint_only_for_proofs_without_fresh_live_state() -> None:
    gateway = Gateway({YS[1]: MintState.SPENT})
    truth = _truth("prefer", gateway, {YS[0]: MintState.UNSPENT})
    states = await truth.states(MINT, YS, 1.0)
    assert states == ({YS[0]: MintState.UNSPENT, YS[1]: MintState.SPENT}, Truth.MIXED)
    assert gateway.asked == 1
