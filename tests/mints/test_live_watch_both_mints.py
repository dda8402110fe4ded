"""The worker's live watch (NUT-17) against each mint implementation, end to end.

- A proof the DB holds as unspent, redeemed by another wallet: DB_UNSPENT_MINT_SPENT with
  `source: subscription`, the sweep off and no snapshot due.
- A real melt going PENDING at the mint while the DB says unspent: DB_UNSPENT_MINT_PENDING, pushed.
- The HTTP budget spent: a melt of watched unspent proofs is answered from live state (truth
  "live"). At CDK that live UNSPENT rests on the watch's checkstate snapshot alone, since CDK
  pushes nothing for a proof it never saw spent or pending.

Each group has a worker of its own (module-scoped), configured with both mints.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devkit.processes import WorkerProcess, read_topic
from streams.client import PreflightClient
from streams.core.settings import Settings
from tests.conftest import build_test_settings, clear_proofrecon_env
from tests.mints.conftest import both_mints
from tests.mints.impls import MintImpl
from tests.support.pipeline import melt, npub, publish_token

pytestmark = [pytest.mark.stack, pytest.mark.timeout(240)]

# Subscribes go out at once; no periodic snapshot during a test (the post-subscribe one only).
FAST_WATCH = {"snapshot_interval_s": 600.0, "messages_per_minute": 600.0}
# The gateway's own model of the mint's limiter: 10 requests, then a quiet minute (per mint).
# Background requests (the watch's snapshots) may use 3 of them while 7 are left; at CDK they
# are what makes an unspent proof's live state known. (With a budget of 3, a background request
# fits only into an untouched window: CDK's watched unspent proofs then stay unknown until a
# quiet minute has passed, and their melts BLOCK meanwhile, fail closed.)
TIGHT_BUDGET = {
    "limiter_model": "elastic",
    "limiter_limit": 10,
    "limiter_margin": 0.0,
    "requests_per_minute": 600.0,
    "burst": 10,
}


def _worker(tmp: Path, impls: dict[str, MintImpl], **mint: Any) -> WorkerProcess:
    with pytest.MonkeyPatch.context() as mp:
        clear_proofrecon_env(mp)
        settings = build_test_settings(
            uuid.uuid4().hex[:10],
            tmp / "data",
            mint={**both_mints(impls), **mint},
            sweep={"enabled": False},
            watch=FAST_WATCH,
        )
    return WorkerProcess(settings, tmp / "worker.log").start()


@pytest.fixture(scope="module")
def watch_worker(
    tmp_path_factory: pytest.TempPathFactory, impls: dict[str, MintImpl]
) -> Iterator[WorkerProcess]:
    worker = _worker(tmp_path_factory.mktemp("live-watch"), impls)
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def tight_worker(
    tmp_path_factory: pytest.TempPathFactory, impls: dict[str, MintImpl]
) -> Iterator[WorkerProcess]:
    worker = _worker(tmp_path_factory.mktemp("live-watch-tight"), impls, **TIGHT_BUDGET)
    yield worker
    worker.stop()


async def until_watched(worker: WorkerProcess, owner: str, ys: list[str]) -> None:
    """Until the worker's live watch has every Y subscribed and its state confirmed."""
    views: list[Any] = []
    async with httpx.AsyncClient(base_url=worker.url, timeout=5) as http:
        for _ in range(600):
            views = [
                (await http.get(f"/v1/proofs/{y}", params={"npub": owner})).json()["live"]
                for y in ys
            ]
            if all(v and v["watched"] and v["fresh"] for v in views):
                return
            await asyncio.sleep(0.1)
        metrics = (await http.get("/metrics")).text.splitlines()
    watch = [line for line in metrics if line.startswith("proofrecon_watch")]
    raise AssertionError(f"not watched and fresh: {views}\n" + "\n".join(watch))


async def events_of(settings: Settings, owner: str, wanted: str) -> list[dict[str, Any]]:
    records = await read_topic(
        settings,
        settings.topics.discrepancies,
        until=lambda rs: any(r["npub"] == owner and r["type"] == wanted for r in rs),
        timeout=60,
    )
    return [r for r in records if r["npub"] == owner and r["type"] == wanted]


async def test_a_proof_spent_behind_the_wallets_back_is_seen_live(
    mint_impl: MintImpl, watch_worker: WorkerProcess, tmp_path: Path
) -> None:
    settings = watch_worker.settings
    owner = npub()
    wallet = mint_impl.wallet(tmp_path / "wallet")
    proofs = await asyncio.to_thread(wallet.mint, 2)
    await publish_token(settings, watch_worker, owner, proofs, "unspent", mint_url=mint_impl.url)
    await until_watched(watch_worker, owner, [p.Y for p in proofs])

    await asyncio.to_thread(wallet.redeem_copies, proofs[:1])

    found = await events_of(settings, owner, "DB_UNSPENT_MINT_SPENT")
    assert {(e["Y"], e["source"], e["severity"], e["mint_url"]) for e in found} == {
        (proofs[0].Y, "subscription", "HIGH", mint_impl.url)
    }


async def test_a_real_melt_going_pending_is_seen_live(
    mint_impl: MintImpl, watch_worker: WorkerProcess, tmp_path: Path
) -> None:
    settings = watch_worker.settings
    owner, own = npub(), mint_impl.own.url
    wallet = mint_impl.wallet(tmp_path / "wallet", own=True)
    proofs = await asyncio.to_thread(wallet.mint, 2)
    await publish_token(settings, watch_worker, owner, proofs, "unspent", mint_url=own)
    await until_watched(watch_worker, owner, [p.Y for p in proofs])

    await asyncio.to_thread(wallet.melt, proofs[:1])

    found = await events_of(settings, owner, "DB_UNSPENT_MINT_PENDING")
    assert {(e["Y"], e["source"], e["action"], e["mint_url"]) for e in found} == {
        (proofs[0].Y, "subscription", "MONITOR", own)
    }


async def test_with_the_budget_spent_a_melt_of_watched_proofs_is_answered_from_live_state(
    mint_impl: MintImpl, tight_worker: WorkerProcess, tmp_path: Path
) -> None:
    settings = tight_worker.settings
    owner = npub()
    wallet = mint_impl.wallet(tmp_path / "wallet")
    proofs = await asyncio.to_thread(wallet.mint, 2)
    others = await asyncio.to_thread(wallet.mint, 12)
    await publish_token(settings, tight_worker, owner, proofs, "unspent", mint_url=mint_impl.url)
    await until_watched(tight_worker, owner, [p.Y for p in proofs])
    async with PreflightClient(settings) as client:
        spent = None
        for proof in others:  # each melt of a proof nobody watches costs a request
            spent = await client.preflight(
                melt(npub(), [proof], mint_url=mint_impl.url), timeout=30
            )
            if spent.code == "MINT_UNAVAILABLE":
                break
        assert spent is not None and spent.code == "MINT_UNAVAILABLE"  # the budget is gone
        answer = await client.preflight(melt(owner, proofs, mint_url=mint_impl.url), timeout=30)
    assert (answer.verdict, answer.code) == ("CLEARED", None)
    assert answer.truth is not None and answer.truth.value == "live"
