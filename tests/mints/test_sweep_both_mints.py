"""The sweep at each mint implementation: proofs the wallet DB calls unspent, spent behind its
back at Nutshell and at CDK, are found by the sweep alone (no melt asks) and corrected.

This module has a worker of its own: the sweep runs every half second, and with the package's
worker it would find the other modules' mismatches before their melts do. Its live watch is off,
so what is found here was found by the sweep.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devkit.processes import WorkerProcess, read_topic
from streams.core.settings import Settings
from tests.conftest import build_test_settings, clear_proofrecon_env
from tests.mints.conftest import both_mints
from tests.mints.impls import MintImpl
from tests.support.pipeline import npub, publish_token

pytestmark = [pytest.mark.stack, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def pipeline_settings(
    tmp_path_factory: pytest.TempPathFactory, impls: dict[str, MintImpl]
) -> Iterator[Settings]:
    with pytest.MonkeyPatch.context() as mp:
        clear_proofrecon_env(mp)
        yield build_test_settings(
            uuid.uuid4().hex[:10],
            tmp_path_factory.mktemp("sweep-worker") / "data",
            mint=both_mints(impls),
            sweep={"enabled": True, "interval_s": 0.5, "min_age_s": 0.0},
            watch={"enabled": False},  # only the sweep looks here: the live watch would race it
        )


@pytest.fixture(scope="module")
def shared_worker(
    pipeline_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    log = tmp_path_factory.mktemp("sweep-worker-log") / "worker.log"
    process = WorkerProcess(pipeline_settings, log).start()
    yield process
    process.stop()


async def test_the_sweep_finds_proofs_spent_behind_the_wallets_back(
    mint_impl: MintImpl, worker: WorkerProcess, pipeline_settings: Settings
) -> None:
    owner = npub()
    spent = mint_impl.scene.spent_elsewhere[:2]
    clean = mint_impl.scene.unspent[:2]
    pending = mint_impl.own_scene.pending[:1]
    token = await publish_token(
        pipeline_settings, worker, owner, spent + clean, "unspent", mint_url=mint_impl.url
    )
    await publish_token(
        pipeline_settings, worker, owner, pending, "unspent", mint_url=mint_impl.own.url
    )

    def mine(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in records if r["npub"] == owner]

    events = await read_topic(
        pipeline_settings,
        pipeline_settings.topics.discrepancies,
        until=lambda rs: len(mine(rs)) >= 3,
        timeout=60,
    )
    assert {(e["Y"], e["type"], e["source"], e["mint_url"]) for e in mine(events)} == {
        *((p.Y, "DB_UNSPENT_MINT_SPENT", "sweep", mint_impl.url) for p in spent),
        (pending[0].Y, "DB_UNSPENT_MINT_PENDING", "sweep", mint_impl.own.url),
    }
    corrections = await read_topic(
        pipeline_settings,
        pipeline_settings.topics.corrections,
        until=lambda rs: bool(mine(rs)),
    )
    (fix,) = mine(corrections)
    assert fix["token_id"] == token and fix["set_status"] == "spent"
    assert sorted(fix["Ys"]) == sorted(p.Y for p in spent)
    # Later rounds see the same mismatches but do not report them again while they are open.
    again = await read_topic(pipeline_settings, pipeline_settings.topics.discrepancies, idle=3)
    assert len(mine(again)) == 3
