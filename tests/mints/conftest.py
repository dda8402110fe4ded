"""Fixtures of the suite that runs against every mint implementation (tests/mints/impls.py).

- `impls`: both implementations with their proofs, made once per session.
- `mint_impl`: parametrised over them; a test taking it runs once per implementation, with ids
  `[nutshell]` and `[cdk]`.
- `worker`, `client`, `pipeline_settings`: one worker for the whole package (a worker takes
  5-10 s to start), configured with both stack mints, both private mints, and both stack mints
  again under a `localhost` alias whose canary is the *other* implementation's. Every allowed mint
  has a canary, so every answer this worker uses proved that the mint and our hashing agree.
  A module needing another worker (test_sweep_both_mints.py) overrides these.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devkit.processes import WorkerProcess
from streams.core.settings import Settings
from tests.conftest import build_test_settings, clear_proofrecon_env
from tests.mints.impls import (
    CDK,
    IMPLEMENTATIONS,
    NUTSHELL,
    MintImpl,
    OwnMint,
    PrivateCdk,
    alias,
    build_impls,
    other,
    own_mint,
    require_cdk_binary,
    stack_cdk_url,
)


@pytest.fixture(scope="session")
def cdk_stack_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    found = stack_cdk_url()
    if found is not None:
        yield found
        return
    require_cdk_binary()
    private = PrivateCdk(tmp_path_factory.mktemp("stack-cdk")).start()
    try:
        yield private.url
    finally:
        private.remove()


@pytest.fixture(scope="session")
def impls(
    mint_url: str, cdk_stack_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, MintImpl]]:
    require_cdk_binary()
    owns: dict[str, OwnMint] = {}
    try:
        for name in IMPLEMENTATIONS:
            owns[name] = own_mint(name, tmp_path_factory.mktemp(f"own-{name}"))
        urls = {NUTSHELL: mint_url, CDK: cdk_stack_url}
        yield build_impls(urls, owns, tmp_path_factory.mktemp("impl-wallets"))
    finally:
        for own in owns.values():
            own.stop()
            if isinstance(own, PrivateCdk):
                own.remove()


@pytest.fixture(params=IMPLEMENTATIONS)
def mint_impl(request: pytest.FixtureRequest, impls: dict[str, MintImpl]) -> MintImpl:
    return impls[str(request.param)]


@pytest.fixture
def other_impl(mint_impl: MintImpl, impls: dict[str, MintImpl]) -> MintImpl:
    return other(impls, mint_impl)


def both_mints(impls: dict[str, MintImpl]) -> dict[str, Any]:
    """Mint settings of a worker that knows every mint of both implementations."""
    nutshell, cdk = impls[NUTSHELL], impls[CDK]
    canaries = {i.url: i.canary for i in impls.values()}
    canaries.update({i.own.url: i.own_canary for i in impls.values()})
    # The same mints under another name, each with the other implementation's canary: that mint
    # never saw it, answers UNSPENT, and nothing it says may be used.
    canaries[alias(nutshell.url)] = cdk.canary
    canaries[alias(cdk.url)] = nutshell.canary
    return {
        "allowlist": list(canaries),
        "canaries": canaries,
        "max_retries": 1,
        "default_deadline_ms": 3000,
        # The local mints do not rate-limit 127.0.0.1: no limiter to model, a generous bucket.
        "limiter_model": "none",
        "requests_per_minute": 6000,
        "burst": 100,
    }


@pytest.fixture(scope="package")
def pipeline_settings(
    tmp_path_factory: pytest.TempPathFactory, impls: dict[str, MintImpl]
) -> Iterator[Settings]:
    with pytest.MonkeyPatch.context() as mp:
        clear_proofrecon_env(mp)
        yield build_test_settings(
            uuid.uuid4().hex[:10],
            tmp_path_factory.mktemp("mints-worker") / "data",
            mint=both_mints(impls),
            sweep={"enabled": False},
        )


@pytest.fixture(scope="package")
def shared_worker(
    pipeline_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    log = tmp_path_factory.mktemp("mints-worker-log") / "worker.log"
    process = WorkerProcess(pipeline_settings, log).start()
    yield process
    process.stop()


@pytest.fixture
def worker(shared_worker: WorkerProcess) -> WorkerProcess:
    """The shared worker, started again if an earlier test left it stopped."""
    if shared_worker.proc is None or shared_worker.proc.poll() is not None:
        shared_worker.start()
    return shared_worker
