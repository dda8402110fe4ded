"""Fixtures of the safety regression tests (one test per finding of the 2026-12 safety review).

Most stack tests here share one worker for the whole package (a worker takes 5-10 s to start):
`pipeline_settings`, `worker` and `client` override tests/support/pipeline.py's module-scoped ones.
A module that needs a differently configured worker builds its own (see test_finding_06_20...,
test_finding_07..., test_finding_10..., test_finding_16...).

The shared worker allows, besides the stack's mint, a mint that keeps melts PENDING, a mint nobody
listens on, and the stack's mint spelled `http://localhost:3338` (a host with letters, for the
case variants of finding 11); it signs findings with a key the tests know (finding 18) and allows
one reply topic of the wallet's (finding 2).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devkit.mints import PENDING_ENV, MintServer
from devkit.processes import WorkerProcess
from devkit.wallet import CashuWallet, WalletProof
from streams.core.settings import Settings
from tests.conftest import MINT_URL, build_test_settings, clear_proofrecon_env
from tests.support.pipeline import DOWN_MINT

LOCALHOST_MINT = MINT_URL.replace("127.0.0.1", "localhost")
FINDINGS_KEY = f"safety-findings-key-{uuid.uuid4().hex}"


def reply_topic(settings: Settings) -> str:
    """The wallet's own reply topic on the shared worker's reply allow-list."""
    return settings.topics.preflight_results.replace("preflight-results", "wallet-replies")


@pytest.fixture(scope="package")
def pending_mint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MintServer]:
    with MintServer(tmp_path_factory.mktemp("pending-mint"), env=PENDING_ENV) as server:
        yield server


@pytest.fixture(scope="package")
def pending_proofs(
    pending_mint: MintServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[WalletProof]]:
    wallet = CashuWallet(pending_mint.url, tmp_path_factory.mktemp("pending-wallet"))
    scene = wallet.scenario(unspent=1, pending=2)
    return {"pending": scene.pending, "unspent": scene.unspent}


@pytest.fixture(scope="package")
def pipeline_settings(
    tmp_path_factory: pytest.TempPathFactory, pending_mint: MintServer
) -> Iterator[Settings]:
    run_id = uuid.uuid4().hex[:10]
    results = f"t{run_id}.preflight-results"
    with pytest.MonkeyPatch.context() as mp:
        clear_proofrecon_env(mp)
        yield build_test_settings(
            run_id,
            tmp_path_factory.mktemp("safety") / "data",
            mint={
                "allowlist": [MINT_URL, pending_mint.url, DOWN_MINT, LOCALHOST_MINT],
                "max_retries": 1,
                "default_deadline_ms": 1500,
            },
            sweep={"enabled": False},
            topics={"findings_signing_key": FINDINGS_KEY},
            preflight={"reply_topics": [results.replace("preflight-results", "wallet-replies")]},
        )


@pytest.fixture(scope="package")
def shared_worker(
    pipeline_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    log = tmp_path_factory.mktemp("safety-worker-log") / "worker.log"
    process = WorkerProcess(pipeline_settings, log).start()
    yield process
    process.stop()


@pytest.fixture
def worker(shared_worker: WorkerProcess) -> WorkerProcess:
    """The shared worker, started again if an earlier test left it stopped."""
    if shared_worker.proc is None or shared_worker.proc.poll() is not None:
        shared_worker.start()
    return shared_worker
