"""The mint implementations the suite runs against, and real proofs at each.

`MintImpl` is one implementation (Nutshell, CDK's cdk-mintd): the local stack's mint of that kind
with proofs minted and spent there by Nutshell's wallet library (devkit/wallet.py: mint, swap,
redeem copies from a second wallet), a canary (a Y known SPENT there), and a private mint of the
same kind (`own`) that tests may stop and start and where melts stay PENDING.

How a melt is kept PENDING differs: a Nutshell mint is started with its FakeWallet set to
PENDING (FAKEWALLET_PAY_INVOICE_STATE / FAKEWALLET_PAYMENT_STATE); CDK's FakeWallet reads the
outcome from the invoice's description, which devkit/cashu_wallet.py always sets, so any CDK mint
keeps such a melt PENDING.

Which CDK mint is the stack's: $PROOFRECON_TEST_CDK_MINT (the Makefile sets it for `make test`),
else the default stack's running one (`stack/stack.sh url cdk`), else a private one started from
the cdk-mintd that stack.sh built into the machine's cache. Without any, the suite fails with a
hint: a suite that skips its second mint proves nothing about it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import httpx
import pytest

from devkit.mints import PENDING_ENV, MintServer
from devkit.wallet import CashuWallet, Scenario, WalletProof
from stack.harness import StackScript, cdk_binary, cdk_version

NUTSHELL = "nutshell"
CDK = "cdk"
IMPLEMENTATIONS = (NUTSHELL, CDK)


class OwnMint(Protocol):
    """A private mint of one implementation: same URL, database and keys across stop/start."""

    url: str

    def start(self) -> object: ...

    def stop(self) -> None: ...


class PrivateCdk:
    """cdk-mintd under a private stack state dir, on a free port (stack/stack.sh up|down cdk)."""

    def __init__(self, state_dir: Path) -> None:
        self.stack = StackScript.private(state_dir)
        self.url = f"http://127.0.0.1:{self.stack.env['PROOFRECON_STACK_CDK_PORT']}"

    def start(self) -> PrivateCdk:
        self.stack.run("up", "cdk", timeout=180)
        return self

    def stop(self) -> None:
        self.stack.run("down", "cdk", timeout=120)

    def remove(self) -> None:
        self.stack.remove()


class Wallet(CashuWallet):
    def melt(self, proofs: Sequence[WalletProof]) -> None:
        """Melt `proofs`; returns once the mint shows them PENDING (the melt stays in flight at
        the private mints: a Nutshell one started so, and CDK's FakeWallet asked to)."""
        self._with_input("melt-pending", proofs)


@dataclass(frozen=True)
class MintImpl:
    name: str  # NUTSHELL or CDK
    version: str  # as the mint's /v1/info says, e.g. "Nutshell/0.20.2", "cdk-mintd/0.18.3"
    url: str  # the local stack's mint of this implementation
    scene: Scenario  # proofs at `url`: 4 unspent, 3 spent by swap, 3 spent by another wallet
    canary: str  # a Y known SPENT at `url` (not one of `scene`'s)
    own: OwnMint  # a private mint of this implementation
    own_scene: Scenario  # proofs at `own`: 3 unspent, 3 PENDING in an in-flight melt
    own_canary: str  # a Y known SPENT at `own`

    def wallet(self, db_dir: Path, *, own: bool = False) -> Wallet:
        """Nutshell's wallet against this mint (or its private one)."""
        return Wallet(self.own.url if own else self.url, db_dir)

    def __str__(self) -> str:
        return self.name


def stack_cdk_url() -> str | None:
    """The CDK mint of the local stack, if one is configured or running."""
    configured = os.environ.get("PROOFRECON_TEST_CDK_MINT", "").strip()
    if configured:
        return configured.rstrip("/")
    found = StackScript.default().run("url", "cdk", check=False)
    return found.stdout.strip() if found.returncode == 0 else None


def require_cdk_binary() -> None:
    if cdk_binary() is None:
        pytest.fail(
            f"no cdk-mintd {cdk_version()}: `make stack-up MINTS=nutshell,cdk` (or `make test`) "
            "builds it once (about ten minutes) and starts it"
        )


def version_of(url: str) -> str:
    info = httpx.get(f"{url}/v1/info", timeout=10)
    info.raise_for_status()
    return str(info.json()["version"])


def own_mint(name: str, state_dir: Path) -> OwnMint:
    if name == NUTSHELL:
        return MintServer(state_dir, env=PENDING_ENV).start()
    return PrivateCdk(state_dir).start()


def build_impl(name: str, url: str, own: OwnMint, workdir: Path) -> MintImpl:
    """Mint and spend the proofs of one implementation (about 5-10 s, most of it the wallet)."""
    scene = CashuWallet(url, workdir / "stack-wallet").scenario(
        unspent=4, spent_by_swap=4, spent_elsewhere=3
    )
    own_scene = CashuWallet(own.url, workdir / "own-wallet").scenario(
        unspent=3, spent_by_swap=1, pending=3
    )
    return MintImpl(
        name=name,
        version=version_of(url),
        url=url,
        scene=replace(scene, spent_swap=scene.spent_swap[:-1]),
        canary=scene.spent_swap[-1].Y,
        own=own,
        own_scene=replace(own_scene, spent_swap=[]),
        own_canary=own_scene.spent_swap[0].Y,
    )


def build_impls(
    urls: dict[str, str], owns: dict[str, OwnMint], workdir: Path
) -> dict[str, MintImpl]:
    """Both implementations' proofs, made side by side."""
    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        futures = {
            name: pool.submit(build_impl, name, url, owns[name], workdir / name)
            for name, url in urls.items()
        }
        return {name: future.result() for name, future in futures.items()}


def other(impls: dict[str, MintImpl], impl: MintImpl) -> MintImpl:
    """The other implementation."""
    (found,) = (i for i in impls.values() if i.name != impl.name)
    return found


def alias(url: str) -> str:
    """The same mint under another spelling (`localhost`): a URL of its own for the gateway, the
    allow-list and the canaries."""
    return url.replace("127.0.0.1", "localhost")
