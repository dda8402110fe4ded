"""Finding 12 (medium): the sweep rebuilt its index synchronously on the event loop, on a timer.

At 7262b21 `Sweeper.round` re-read the whole tokens table every 30 rounds (5 minutes) without ever
yielding: seconds per million proofs with every preflight, heartbeat and web request stalled. The
index is now rebuilt only after a recovery, in slices that let other tasks run, and `round` never
rebuilds.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streams.core.settings import load_settings
from streams.recon.ledger import ProofIndex, token_key, token_rows
from streams.recon.sweep_index import SweepIndex
from streams.worker.agents.sweep import Sweeper
from streams.worker.metrics import Metrics
from tests.conftest import clear_proofrecon_env

MINT = "http://127.0.0.1:3338"
TOKENS = 20_000


def _runtime(monkeypatch: pytest.MonkeyPatch, tokens: dict[str, Any]) -> Any:
    clear_proofrecon_env(monkeypatch)
    index = ProofIndex()
    index.rebuild(token_rows(tokens.items()))
    return SimpleNamespace(
        settings=load_settings(),
        tokens=tokens,
        proof_index=index,
        metrics=Metrics(CollectorRegistry()),
        emit=None,  # a rebuild emits nothing
    )


def _tokens(count: int) -> dict[str, Any]:
    """Token rows as the tokens table holds them, one proof each (Ys need not be points here)."""
    return {
        token_key(f"npub1u{i % 97}", f"tok-{i}"): {
            "version": 1,
            "status": "unspent",
            "mint_url": MINT,
            "updated_at": "2026-12-01T00:00:00+00:00",
            "proofs": [[f"02{i:064x}", 8, "00ab"]],
            "seq": i,
        }
        for i in range(count)
    }


async def test_finding_12_a_rebuild_over_many_tokens_lets_other_tasks_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = _runtime(monkeypatch, _tokens(TOKENS))
    index = SweepIndex()
    sweeper = Sweeper(runtime, index)
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = ticks
    await sweeper.rebuild()
    during = ticks - start
    done.set()
    await task
    # The rebuild gave the loop back several times (one tick per slice), and missed nothing.
    assert during >= 3, during
    assert len(index) == TOKENS and index.mints() == [MINT]


async def test_finding_12_sweep_rounds_never_rebuild(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = _runtime(monkeypatch, _tokens(10))
    sweeper = Sweeper(runtime, SweepIndex())
    rebuilds = 0

    def counting_rebuild() -> Any:  # counts the call itself, awaited or not
        nonlocal rebuilds
        rebuilds += 1
        return asyncio.sleep(0)

    monkeypatch.setattr(sweeper, "rebuild", counting_rebuild)
    for _ in range(61):  # two of the old 30-round periods, and a first round
        assert await sweeper.round() == 0
    assert rebuilds == 0
