"""The gateway against a real Nutshell mint with its rate limiter on: never a 429.

Nutshell 0.20.2's limiter (slowapi, "fixed-window-elastic-expiry") counts every request of a
client IP, allowed or refused, and forgets the count only after a whole minute without one; a
client pacing below the limit is still locked out once it has sent `limit` requests without such
a pause. Localhost is exempt, but the mint trusts X-Forwarded-For from 127.0.0.1, so the gateway
is made a remote client with `request_headers`. The limit is lowered to 10/minute (its window is
fixed at one minute) so that two sessions and a forced quiet fit in about two minutes.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from devkit.mints import MintServer
from devkit.wallet import CashuWallet
from streams.core.cashu import y_from_secret
from streams.core.domain import MintState
from streams.core.errors import MintRateLimited
from streams.core.settings import MintSettings
from streams.mint import MintGateway

pytestmark = [pytest.mark.stack, pytest.mark.slow]

LIMIT_PER_MINUTE = 10
LIMITED_ENV = {
    "MINT_RATE_LIMIT": "true",
    "MINT_GLOBAL_RATE_LIMIT_PER_MINUTE": str(LIMIT_PER_MINUTE),
}
CALLERS = 200
SPACING_S = 0.5  # 200 callers over 100 s: a session, a forced quiet, and the next session
PROMPT_S = 0.3  # a caller refused for budget hears so at once, not at its deadline


def random_ys(n: int) -> list[str]:
    return [y_from_secret(os.urandom(16).hex()) for _ in range(n)]


@pytest.fixture(scope="module")
def limited_mint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MintServer]:
    with MintServer(tmp_path_factory.mktemp("limited-mint"), env=LIMITED_ENV) as server:
        yield server


@pytest.mark.timeout(240)
async def test_default_pacing_never_meets_a_429_from_nutshells_elastic_limiter(
    limited_mint: MintServer, tmp_path: Path, mint_settings: Callable[..., MintSettings]
) -> None:
    url = limited_mint.url
    # Real proofs (the wallet talks from 127.0.0.1: exempt from the limiter).
    scene = await asyncio.to_thread(
        CashuWallet(url, tmp_path / "wallet").scenario, unspent=3, spent_by_swap=3
    )
    spent = [p.Y for p in scene.spent_swap]
    unspent = [p.Y for p in scene.unspent]

    # The limiter is on: a client that sends 11 requests at once gets 429 for the 11th.
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        probe = [
            (
                await http.post(
                    "/v1/checkstate",
                    json={"Ys": random_ys(1)},
                    headers={"X-Forwarded-For": "198.51.100.1"},
                )
            ).status_code
            for _ in range(LIMIT_PER_MINUTE + 1)
        ]
    assert probe == [200] * LIMIT_PER_MINUTE + [429]

    statuses: Counter[int] = Counter()

    async def on_response(response: httpx.Response) -> None:
        statuses[response.status_code] += 1

    settings = mint_settings(
        url,
        limiter_limit=LIMIT_PER_MINUTE,  # the mint's setting; everything else is the default
        request_headers={url: {"X-Forwarded-For": "198.51.100.2"}},
    )
    gateway = MintGateway(url, settings, event_hooks={"response": [on_response]})
    truth = {**dict.fromkeys(spent, MintState.SPENT), **dict.fromkeys(unspent, MintState.UNSPENT)}
    outcomes: list[tuple[float, str, float]] = []  # (started at, outcome, seconds)
    start = time.monotonic()

    async def caller(i: int) -> None:
        await asyncio.sleep(i * SPACING_S)
        cache_only = i % 10 == 9 and i > 40  # by then the spent proofs are known SPENT
        if cache_only:
            ys = spent[:2]
        else:
            ys = [spent[i % len(spent)], unspent[i % len(unspent)], *random_ys(1)]
        began = time.monotonic()
        try:
            states = await gateway.check(ys)
        except MintRateLimited:
            outcome = "rate_limited"
        except Exception as exc:  # any other error is a failure of this test
            outcome = f"error:{type(exc).__name__}"
        else:
            expected = {y: truth.get(y, MintState.UNSPENT) for y in ys}
            outcome = ("cache" if cache_only else "truth") if states == expected else "WRONG"
        outcomes.append((began - start, outcome, time.monotonic() - began))

    try:
        await asyncio.gather(*(caller(i) for i in range(CALLERS)))
    finally:
        await gateway.close()

    kinds = Counter(outcome for _, outcome, _ in outcomes)
    print(f"callers: {dict(kinds)}; the mint answered the gateway: {dict(statuses)}")
    assert statuses[429] == 0, statuses
    assert set(kinds) <= {"truth", "cache", "rate_limited"}, kinds
    assert kinds["cache"] == sum(1 for i in range(CALLERS) if i % 10 == 9 and i > 40)
    # Refusals are prompt: fail closed at once, never a caller left waiting for its deadline.
    assert all(took < PROMPT_S for _, outcome, took in outcomes if outcome == "rate_limited")
    # Two sessions answered callers: before the forced quiet and after it.
    answered_at = [at for at, outcome, _ in outcomes if outcome == "truth"]
    assert min(answered_at) < 5
    assert max(answered_at) > 70
    assert statuses[200] <= 2 * LIMIT_PER_MINUTE  # one budget per session, never the limit
