"""Fixtures for the mint gateway's tests. Load with `pytest_plugins = ["tests.support.fixtures"]`.

- `fake_clock`: a monotonic clock tests move by hand (`advance`), for pacing/breaker/silence.
- `mint_settings`: builds MintSettings from explicit values only (PROOFRECON_* env cleared).
- `fault_mint`: a started FaultMint (tests/support/fault_mint.py).
- `real_scenario`: proofs on the stack's mint (127.0.0.1:3338), minted and partly spent once per
  session with Nutshell's wallet: 4 unspent, 3 spent by swap, 3 spent by a second wallet.
- `pending_mint` / `pending_proofs`: a second real mint whose FakeWallet keeps melts PENDING, and
  proofs left PENDING there by an in-flight melt (one per module: starting a mint takes ~5 s).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from devkit.mints import PENDING_ENV, MintServer
from devkit.wallet import CashuWallet, Scenario, WalletProof
from streams.core.settings import MintSettings
from tests.support.clock import FakeClock
from tests.support.fault_mint import FaultMint


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mint_settings(monkeypatch: pytest.MonkeyPatch) -> Callable[..., MintSettings]:
    """`mint_settings(url, **fields)`: settings allowing `url`, nothing read from the env."""
    for key in list(os.environ):
        if key.startswith("PROOFRECON_MINT_"):
            monkeypatch.delenv(key)

    def build(*urls: str, **fields: Any) -> MintSettings:
        fields.setdefault("allowlist", list(urls))
        return MintSettings(**fields)

    return build


@pytest.fixture
async def fault_mint() -> AsyncIterator[FaultMint]:
    async with FaultMint() as mint:
        yield mint


@pytest.fixture(scope="session")
def real_scenario(mint_url: str, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    wallet = CashuWallet(mint_url, tmp_path_factory.mktemp("wallet"))
    return wallet.scenario(unspent=4, spent_by_swap=3, spent_elsewhere=3)


@pytest.fixture(scope="module")
def pending_mint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MintServer]:
    with MintServer(tmp_path_factory.mktemp("pending-mint"), env=PENDING_ENV) as server:
        yield server


@pytest.fixture(scope="module")
def pending_proofs(
    pending_mint: MintServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[WalletProof]]:
    """{"pending": proofs in an in-flight melt, "unspent": proofs of the same mint left alone}."""
    wallet = CashuWallet(pending_mint.url, tmp_path_factory.mktemp("pending-wallet"))
    scene = wallet.scenario(unspent=2, pending=3)
    return {"pending": scene.pending, "unspent": scene.unspent}
