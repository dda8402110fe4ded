"""End-to-end fixtures: a worker subprocess per test module, a wallet's view of it, helpers.

A module can override `pipeline_overrides` to configure its worker differently.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from devkit.mints import MintServer, free_port
from devkit.processes import WorkerProcess, read_topic
from devkit.wallet import WalletProof
from streams.client import PreflightClient, TokenStatusPublisher, token_status_event
from streams.core.contracts import MeltRequest, PreflightResult, parse_melt_request
from streams.core.settings import Settings
from tests.conftest import MINT_URL, build_test_settings, clear_proofrecon_env

# An allow-listed mint nobody listens on: its truth can never be had.
DOWN_MINT = f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def pipeline_overrides() -> dict[str, Any]:
    """Settings overrides for this module's worker (themes as in `load_settings`)."""
    return {"sweep": {"enabled": False}}


@pytest.fixture(scope="module")
def pipeline_settings(
    tmp_path_factory: pytest.TempPathFactory,
    pending_mint: MintServer,
    pipeline_overrides: dict[str, Any],
) -> Iterator[Settings]:
    overrides = dict(pipeline_overrides)
    mint = {
        "allowlist": [MINT_URL, pending_mint.url, DOWN_MINT],
        "max_retries": 1,
        "default_deadline_ms": 1500,
        # The local mints do not rate-limit 127.0.0.1: no limiter to model, a generous bucket
        # (so the background shares of sweep and validate are not squeezed by test traffic).
        "limiter_model": "none",
        "requests_per_minute": 6000,
        "burst": 100,
        **overrides.pop("mint", {}),
    }
    with pytest.MonkeyPatch.context() as mp:
        clear_proofrecon_env(mp)
        yield build_test_settings(
            uuid.uuid4().hex[:10],
            tmp_path_factory.mktemp("pipeline") / "data",
            mint=mint,
            **overrides,
        )


@pytest.fixture(scope="module")
def worker(
    pipeline_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    log = tmp_path_factory.mktemp("worker-log") / "worker.log"
    process = WorkerProcess(pipeline_settings, log).start()
    yield process
    process.stop()


@pytest.fixture
async def client(
    pipeline_settings: Settings, worker: WorkerProcess
) -> AsyncIterator[PreflightClient]:
    async with PreflightClient(pipeline_settings) as c:
        yield c


def npub() -> str:
    return f"npub1{uuid.uuid4().hex}"


def ref(proof: WalletProof, *, by_secret: bool = False) -> dict[str, Any]:
    key = {"secret": proof.secret} if by_secret else {"Y": proof.Y}
    return {**key, "amount": proof.amount, "keyset_id": proof.keyset_id}


async def publish_token(
    settings: Settings,
    worker: WorkerProcess,
    owner: str,
    proofs: list[WalletProof],
    status: str,
    *,
    token_id: str | None = None,
    version: int = 1,
    mint_url: str = MINT_URL,
    wait: bool = True,
) -> str:
    token_id = token_id or f"tok-{uuid.uuid4().hex[:8]}"
    refs = [ref(p, by_secret=True) for p in proofs]
    event = token_status_event(owner, token_id, mint_url, status, refs, version=version)
    async with TokenStatusPublisher(settings) as publisher:
        await publisher.publish(event)
    if wait:
        await ledger_shows(worker, owner, proofs, status)
    return token_id


def melt(
    owner: str, proofs: list[WalletProof], mint_url: str = MINT_URL, **extra: Any
) -> MeltRequest:
    body = {
        "request_id": f"req-{uuid.uuid4().hex}",
        "npub": owner,
        "mint_url": mint_url,
        "proofs": [ref(p) for p in proofs],
        "requested_at": datetime.now(UTC).isoformat(),
        **extra,
    }
    return parse_melt_request(json.dumps(body).encode())


async def ask(client: PreflightClient, request: MeltRequest) -> PreflightResult:
    return await client.preflight(request, timeout=30)


async def discrepancies_of(settings: Settings, owner: str, count: int) -> list[dict[str, Any]]:
    records = await read_topic(
        settings,
        settings.topics.discrepancies,
        until=lambda rs: sum(r["npub"] == owner for r in rs) >= count,
    )
    return [r for r in records if r["npub"] == owner]


async def ledger_shows(
    worker: WorkerProcess, owner: str, proofs: list[WalletProof], status: str
) -> None:
    """Token events and melts travel on different topics: wait until the ledger has applied it."""
    async with httpx.AsyncClient(base_url=worker.url, timeout=5) as http:
        for _ in range(150):
            views = [
                (await http.get(f"/v1/proofs/{p.Y}", params={"npub": owner})).json() for p in proofs
            ]
            if all(v["ledger"] and v["ledger"]["status"] == status for v in views):
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"the ledger never showed {status}")
