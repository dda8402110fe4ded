"""A wallet with real proofs: devkit/cashu_wallet.py (Nutshell's wallet) run with the mint's own
virtualenv python, its JSON parsed. Used by the demo, the tests and the benchmarks.

    wallet = CashuWallet(mint_url, tmp_path / "wallet")
    scene = wallet.scenario(unspent=3, spent_by_swap=2, spent_elsewhere=2)
    scene.unspent[0].secret, scene.unspent[0].Y   # Y as Nutshell computes it

Calls block (a subprocess); from async tests use `await asyncio.to_thread(wallet.scenario, ...)`.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TOOL = Path(__file__).resolve().parent / "cashu_wallet.py"


def mint_python() -> Path:
    """The python of the mint's own virtualenv (Nutshell's pins never touch the project's)."""
    configured = os.environ.get("PROOFRECON_MINT_PYTHON")
    return Path(configured) if configured else REPO / ".stack" / "mint" / "venv" / "bin" / "python"


@dataclass(frozen=True)
class WalletProof:
    secret: str
    amount: int
    keyset_id: str
    C: str
    Y: str  # computed by Nutshell's hash_to_curve: an independent check of ours

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> WalletProof:
        return cls(item["secret"], int(item["amount"]), item["id"], item["C"], item["Y"])

    def to_json(self) -> dict[str, Any]:
        return {
            "secret": self.secret,
            "amount": self.amount,
            "id": self.keyset_id,
            "C": self.C,
            "Y": self.Y,
        }


@dataclass(frozen=True)
class Scenario:
    unspent: list[WalletProof]
    spent_swap: list[WalletProof]
    spent_elsewhere: list[WalletProof]
    swap_outputs: list[WalletProof]
    pending: list[WalletProof] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)


class WalletToolError(RuntimeError):
    pass


class CashuWallet:
    """One wallet directory ("a" and, for redeem-copies, "b") against one mint."""

    def __init__(self, mint_url: str, db_dir: Path, *, timeout_s: float = 600.0) -> None:
        self.mint_url = mint_url
        self.db_dir = Path(db_dir)
        self.timeout_s = timeout_s

    def _run(self, *args: str) -> Any:
        cmd = [str(mint_python()), str(TOOL), args[0], "--mint", self.mint_url, "--db"]
        cmd += [str(self.db_dir), *args[1:]]
        # Our own tool, with arguments we built: no shell, nothing from untrusted input.
        done = subprocess.run(cmd, capture_output=True, timeout=self.timeout_s, check=False)  # noqa: S603
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace")[-3000:]
            raise WalletToolError(f"cashu_wallet {args[0]} exited {done.returncode}:\n{tail}")
        return json.loads(done.stdout)

    def _with_input(self, command: str, proofs: Sequence[WalletProof], *extra: str) -> Any:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump([p.to_json() for p in proofs], f)
            path = f.name
        try:
            return self._run(command, "--in", path, *extra)
        finally:
            Path(path).unlink(missing_ok=True)

    def mint(self, count: int, amount: int = 8) -> list[WalletProof]:
        out = self._run("mint", "--count", str(count), "--amount", str(amount))
        return [WalletProof.from_json(p) for p in out]

    def swap(self, proofs: Sequence[WalletProof]) -> list[WalletProof]:
        return [WalletProof.from_json(p) for p in self._with_input("swap", proofs)]

    def redeem_copies(self, proofs: Sequence[WalletProof]) -> list[WalletProof]:
        return [WalletProof.from_json(p) for p in self._with_input("redeem-copies", proofs)]

    def check(self, proofs: Sequence[WalletProof]) -> dict[str, str]:
        """States by Y as Nutshell's own wallet reads them (an independent NUT-07 client)."""
        return dict(self._with_input("check", proofs))

    def melt_pending(self, count: int = 1, amount: int = 8) -> list[WalletProof]:
        """Mint `count` proofs and leave them PENDING in a melt (needs a PENDING-backend mint)."""
        out = self._run("melt-pending", "--count", str(count), "--amount", str(amount))
        return [WalletProof.from_json(p) for p in out["pending"]]

    def scenario(
        self,
        *,
        unspent: int = 0,
        spent_by_swap: int = 0,
        spent_elsewhere: int = 0,
        pending: int = 0,
        amount: int = 8,
    ) -> Scenario:
        out = self._run(
            "scenario",
            "--unspent",
            str(unspent),
            "--spent-by-swap",
            str(spent_by_swap),
            "--spent-elsewhere",
            str(spent_elsewhere),
            "--pending",
            str(pending),
            "--amount",
            str(amount),
        )

        def proofs(key: str) -> list[WalletProof]:
            return [WalletProof.from_json(p) for p in out.get(key, [])]

        return Scenario(
            unspent=proofs("unspent"),
            spent_swap=proofs("spent_swap"),
            spent_elsewhere=proofs("spent_elsewhere"),
            swap_outputs=proofs("swap_outputs"),
            pending=proofs("pending"),
            timings_s=dict(out.get("timings_s", {})),
        )
