"""The live proof-state watch (NUT-17) in a running worker, against real Nutshell mints.

- A proof the DB holds as unspent, redeemed by another wallet: DB_UNSPENT_MINT_SPENT with
  `source: subscription` within 5 s, the sweep disabled.
- A real melt PENDING at the mint while the DB says pending, then SPENT (the mint restarts with a
  backend that settles it): the watch reconnects, re-snapshots, and DB_PENDING_MINT_SPENT and its
  MARK_SPENT correction are emitted.
- A mint down when the worker starts: watched once it answers, the ledger's proofs with it.
- The HTTP budget spent: a melt of watched proofs is answered from live state under `fallback`
  (truth "live"), and BLOCKED / MINT_UNAVAILABLE under `never`.
(Subscribe messages spread over messages and connections within the mint's WebSocket limit:
tests/test_mint_watch_real.py, against the real limiter.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devkit.mints import PENDING_ENV, MintServer
from devkit.processes import WorkerProcess, fixes_of, read_topic
from streams.client import PreflightClient, TokenStatusPublisher, token_status_event
from streams.core.settings import Settings
from tests.conftest import MINT_URL, build_test_settings, clear_proofrecon_env
from tests.support.pipeline import melt, npub
from tests.support.watch_support import Spender, WatchWallet

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]


def _settings(tmp: Path, allowlist: list[str], **overrides: Any) -> Settings:
    with pytest.MonkeyPatch.context() as mp:
        clear_proofrecon_env(mp)
        mint = {"allowlist": allowlist, "max_retries": 1, "default_deadline_ms": 1500}
        mint.update(overrides.pop("mint", {}))
        watch = {"snapshot_interval_s": 600.0, "messages_per_minute": 600.0}
        watch.update(overrides.pop("watch", {}))
        return build_test_settings(
            uuid.uuid4().hex[:10],
            tmp / "data",
            mint=mint,
            sweep={"enabled": False},
            watch=watch,
            **overrides,
        )


@pytest.fixture(scope="module")
def watch_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    tmp = tmp_path_factory.mktemp("live-watch")
    settings = _settings(tmp, [MINT_URL])
    worker = WorkerProcess(settings, tmp / "worker.log").start()
    yield worker
    worker.stop()


async def _publish(settings: Settings, owner: str, ys: list[str], status: str, **kw: Any) -> str:
    token_id: str = kw.pop("token_id", f"tok-{uuid.uuid4().hex[:8]}")
    proofs = [{"Y": y, "amount": 8, "keyset_id": "00ad268c4d1f5826"} for y in ys]
    event = token_status_event(owner, token_id, kw.pop("mint_url", MINT_URL), status, proofs, **kw)
    async with TokenStatusPublisher(settings) as publisher:
        await publisher.publish(event)
    return token_id


async def _until_watched(
    worker: WorkerProcess, owner: str, ys: list[str], fresh: bool, timeout_s: float = 30
) -> None:
    """Until the worker's live watch has every Y subscribed (and, if asked, fresh)."""
    async with httpx.AsyncClient(base_url=worker.url, timeout=5) as http:
        for _ in range(int(timeout_s * 10)):
            views = [
                (await http.get(f"/v1/proofs/{y}", params={"npub": owner})).json()["live"]
                for y in ys
            ]
            if all(v and v["watched"] and (v["fresh"] or not fresh) for v in views):
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"not watched: {views}")


async def _events(settings: Settings, owner: str, wanted: str, timeout: float) -> list[Any]:
    records = await read_topic(
        settings,
        settings.topics.discrepancies,
        until=lambda rs: any(r["npub"] == owner and r["type"] == wanted for r in rs),
        timeout=timeout,
    )
    return [r for r in records if r["npub"] == owner and r["type"] == wanted]


async def test_a_proof_spent_behind_the_wallets_back_is_seen_live(
    watch_worker: WorkerProcess, tmp_path: Path
) -> None:
    settings = watch_worker.settings
    owner = npub()
    spender = await asyncio.to_thread(Spender, MINT_URL, tmp_path / "spender", 2)
    with spender:
        await _publish(settings, owner, spender.ys, "unspent")
        await _until_watched(watch_worker, owner, spender.ys, fresh=True)
        await asyncio.to_thread(spender.spend, 0)
        # Within 5 s of the spend, with no sweep and no snapshot due.
        found = await _events(settings, owner, "DB_UNSPENT_MINT_SPENT", timeout=5)
        (event,) = found
    assert (event["Y"], event["source"], event["severity"]) == (
        spender.ys[0],
        "subscription",
        "HIGH",
    )
    corrections = await read_topic(
        settings,
        settings.topics.corrections,
        until=lambda rs: any(r["npub"] == owner for r in rs),
    )
    assert [c["Ys"] for c in fixes_of(corrections, owner)] == [[spender.ys[0]]]


@pytest.fixture
async def pending_world(tmp_path: Path) -> AsyncIterator[tuple[MintServer, list[str]]]:
    """A private mint with one proof PENDING in a real melt, one unspent; yields (mint, Ys)."""
    mint = MintServer(tmp_path / "mint", env=PENDING_ENV).start()
    try:
        wallet = WatchWallet(mint.url, tmp_path / "wallet")
        proofs = await asyncio.to_thread(wallet.mint, 2)
        await asyncio.to_thread(wallet.melt, proofs[:1])
        yield mint, [proofs[0].Y, proofs[1].Y]
    finally:
        await asyncio.to_thread(mint.stop)


async def test_a_pending_melt_settling_while_the_mint_restarts_is_seen_and_corrected(
    pending_world: tuple[MintServer, list[str]], tmp_path: Path
) -> None:
    mint, (pending, unspent) = pending_world
    settings = _settings(
        tmp_path, [mint.url], watch={"snapshot_interval_s": 600.0, "messages_per_minute": 600.0}
    )
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        owner = npub()
        token = await _publish(settings, owner, [pending], "pending", mint_url=mint.url)
        await _publish(settings, owner, [unspent], "unspent", mint_url=mint.url)
        await _until_watched(worker, owner, [pending, unspent], fresh=True)
        await asyncio.to_thread(mint.stop)
        settled = {**PENDING_ENV, "FAKEWALLET_PAYMENT_STATE": "SETTLED"}
        mint = MintServer(mint.data_dir, env=settled, port=mint.port)
        await asyncio.to_thread(mint.start)  # settles the pending melt as it starts
        (event,) = await _events(settings, owner, "DB_PENDING_MINT_SPENT", timeout=60)
        assert (event["Y"], event["source"], event["action"]) == (
            pending,
            "subscription",
            "MARK_SPENT",
        )
        corrections = await read_topic(
            settings,
            settings.topics.corrections,
            until=lambda rs: any(r["npub"] == owner for r in rs),
        )
        (fix,) = fixes_of(corrections, owner)
        assert (fix["token_id"], fix["set_status"], fix["Ys"]) == (token, "spent", [pending])
    finally:
        worker.stop()
        await asyncio.to_thread(mint.stop)


async def test_a_mint_down_when_the_worker_starts_is_watched_once_it_answers(
    tmp_path: Path,
) -> None:
    # Proofs minted, then the mint stopped: the worker starts without it, the token arrives.
    mint = MintServer(tmp_path / "mint").start()
    wallet = WatchWallet(mint.url, tmp_path / "wallet")
    proofs = await asyncio.to_thread(wallet.mint, 2)
    ys = [p.Y for p in proofs]
    await asyncio.to_thread(mint.stop)
    settings = _settings(tmp_path, [mint.url])
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        owner = npub()
        await _publish(settings, owner, ys, "unspent", mint_url=mint.url)
        mint = MintServer(mint.data_dir, port=mint.port)
        await asyncio.to_thread(mint.start)
        # Asked again 15 s after the start: watched, the ledger's proofs included, and fresh.
        await _until_watched(worker, owner, ys, fresh=True, timeout_s=60)
    finally:
        worker.stop()
        await asyncio.to_thread(mint.stop)


# --- the HTTP budget spent ---------------------------------------------------------------------

# The gateway's own model of the mint's limiter: 3 requests, then a quiet minute.
TIGHT_BUDGET = {
    "limiter_model": "elastic",
    "limiter_limit": 3,
    "limiter_margin": 0.0,
    "requests_per_minute": 600.0,
    "burst": 10,
}


@pytest.mark.parametrize(("policy", "verdict", "truth"), [
    ("fallback", ("CLEARED", None), "live"),
    ("never", ("BLOCKED", "MINT_UNAVAILABLE"), None),
])  # fmt: skip
async def test_with_the_budget_spent_a_melt_of_watched_proofs_follows_the_policy(
    tmp_path: Path, policy: str, verdict: tuple[str, str | None], truth: str | None
) -> None:
    settings = _settings(tmp_path, [MINT_URL], mint=TIGHT_BUDGET, preflight={"live_state": policy})
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        owner = npub()
        wallet = WatchWallet(MINT_URL, tmp_path / "wallet")
        proofs = await asyncio.to_thread(wallet.mint, 2)
        await _publish(settings, owner, [p.Y for p in proofs], "unspent")
        await _until_watched(worker, owner, [p.Y for p in proofs], fresh=True)
        async with PreflightClient(settings) as client:
            others = await asyncio.to_thread(wallet.mint, 4)
            spent = None
            for proof in others:  # each melt of a proof nobody watches costs a request
                spent = await client.preflight(melt(npub(), [proof]), timeout=30)
                if spent.code == "MINT_UNAVAILABLE":
                    break
            assert spent is not None and spent.code == "MINT_UNAVAILABLE"  # the budget is gone
            answer = await client.preflight(melt(owner, proofs), timeout=30)
        assert (answer.verdict, answer.code) == verdict
        assert (answer.truth.value if answer.truth else None) == truth
    finally:
        worker.stop()
