"""CDK's cdk-mintd beside Nutshell (`make stack-up MINTS=nutshell,cdk`): a second mint codebase.

Which CDK mint: $PROOFRECON_TEST_CDK_MINT (the Makefile sets it when MINTS includes cdk), else the
default stack's running one (`stack.sh url cdk`), else a private one started from the cdk-mintd
that stack.sh built into the machine's cache. Skipped only when none of these exists (a first
`make stack-up MINTS=nutshell,cdk` builds cdk-mintd, which takes about ten minutes).

Nutshell's own wallet (devkit/cashu_wallet.py, in the mint's virtualenv) mints and swaps against it,
so the proofs and their Ys come from an implementation independent of both the mint and ours.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from devkit.wallet import mint_python
from stack.harness import REPO, StackScript, cdk_binary, cdk_version
from streams.core.cashu import y_from_secret
from streams.core.domain import MintState
from streams.mint.nut17 import (
    Notification,
    Response,
    new_sub_id,
    parse_message,
    subscribe_request,
    supports_proof_state,
    ws_url,
)

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(180)]

WALLET = REPO / "devkit" / "cashu_wallet.py"


@pytest.fixture(scope="module")
def cdk_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("PROOFRECON_TEST_CDK_MINT", "").strip()
    if configured:
        yield configured.rstrip("/")
        return
    found = StackScript.default().run("url", "cdk", check=False)
    if found.returncode == 0:
        yield found.stdout.strip()
        return
    if cdk_binary() is None:
        pytest.skip(
            f"no CDK mint: `make stack-up MINTS=nutshell,cdk` builds cdk-mintd {cdk_version()} "
            "once and starts it, or set PROOFRECON_TEST_CDK_MINT"
        )
    stack = StackScript.private(Path(tmp_path_factory.mktemp("cdk")))
    try:
        stack.run("up", "cdk", timeout=120)
        yield stack.run("url", "cdk").stdout.strip()
    finally:
        stack.remove()


def _wallet(*args: str) -> Any:
    """Run one devkit/cashu_wallet.py command with Nutshell's python; its JSON answer."""
    python = mint_python()
    assert python.exists(), f"no Nutshell virtualenv at {python}: run `make stack-up` once"
    done = subprocess.run(
        [str(python), str(WALLET), *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def _states(url: str, ys: list[str]) -> dict[str, str]:
    response = httpx.post(f"{url}/v1/checkstate", json={"Ys": ys}, timeout=10)
    response.raise_for_status()
    states = response.json()["states"]
    assert [s["Y"] for s in states] == ys
    return {s["Y"]: s["state"] for s in states}


def test_cdk_info_advertises_nut07_and_nut17(cdk_url: str) -> None:
    info = httpx.get(f"{cdk_url}/v1/info", timeout=10).json()
    assert info["version"] == f"cdk-mintd/{cdk_version()}"
    assert info["nuts"]["7"]["supported"] is True
    assert supports_proof_state(info)
    keysets = httpx.get(f"{cdk_url}/v1/keysets", timeout=10).json()["keysets"]
    assert [k["input_fee_ppk"] for k in keysets if k["active"]] == [0]


def test_cdk_checkstate_answers_batch(cdk_url: str) -> None:
    ys = [y_from_secret(f"proofrecon-cdk-test-{i}") for i in range(50)]
    # Secrets nobody minted: UNSPENT, as on Nutshell.
    assert set(_states(cdk_url, ys).values()) == {"UNSPENT"}


def test_nutshell_wallet_mints_and_spends_against_cdk(cdk_url: str, tmp_path: Path) -> None:
    out = _wallet(
        "scenario",
        *("--mint", cdk_url, "--db", str(tmp_path / "wallet")),
        *("--unspent", "3", "--spent-by-swap", "2", "--spent-elsewhere", "2"),
    )
    groups = {"unspent": "UNSPENT", "spent_swap": "SPENT", "spent_elsewhere": "SPENT"}
    expected = {p["Y"]: state for key, state in groups.items() for p in out[key]}
    assert len(expected) == 7
    for key in groups:
        for proof in out[key]:
            assert y_from_secret(proof["secret"]) == proof["Y"]
    assert _states(cdk_url, list(expected)) == expected


async def test_cdk_pushes_proof_states_over_nut17(cdk_url: str, tmp_path: Path) -> None:
    """A subscription sees a swap as PENDING then SPENT, read by our strict NUT-17 parser.

    Unlike Nutshell, CDK 0.18.3 sends no initial state for a Y it has no record of (a proof it
    signed but never saw spent); it does for a Y it knows (SPENT or PENDING).
    """
    db = str(tmp_path / "wallet")
    proofs = _wallet("mint", "--mint", cdk_url, "--db", db, "--count", "2", "--amount", "8")
    (tmp_path / "proofs.json").write_text(json.dumps(proofs))
    ys = {p["Y"] for p in proofs}
    sub_id = new_sub_id(random.Random())

    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(cdk_url)) as ws:

        async def receive(timeout: float) -> Any:
            message = await asyncio.wait_for(ws.receive(), timeout)
            return parse_message(message.data)

        await ws.send_str(subscribe_request(1, sub_id, sorted(ys)))
        assert await receive(10) == Response(id=1, sub_id=sub_id)
        with pytest.raises(TimeoutError):
            await receive(1.0)

        swap = await asyncio.create_subprocess_exec(
            str(mint_python()),
            *(str(WALLET), "swap", "--mint", cdk_url, "--db", db),
            *("--in", str(tmp_path / "proofs.json")),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        seen: dict[str, list[MintState]] = {y: [] for y in ys}
        async with asyncio.timeout(30):
            while any(MintState.SPENT not in states for states in seen.values()):
                message = await receive(30)
                assert isinstance(message, Notification), message
                assert message.sub_id == sub_id
                seen[message.y].append(message.state)
        _, stderr = await swap.communicate()
        assert swap.returncode == 0, stderr.decode()[-2000:]

    assert all(states[-1] == MintState.SPENT for states in seen.values()), seen
    reopened = await asyncio.to_thread(_states, cdk_url, sorted(ys))
    assert set(reopened.values()) == {"SPENT"}
