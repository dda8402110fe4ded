"""Spend proofs behind a wallet's back, on command, and know exactly when (devkit/spender.py).

    with Spender(mint_url, db_dir, count=20) as spender:
        ys = spender.ys          # the Ys of the proofs it minted (their secrets stay there)
        spend = spender.spend(0) # another wallet redeems proof 0: SPENT at the mint
        spend.started, spend.finished  # wall clock right around the swap request

Used by the NUT-17 watch tests and the detection-delay benchmark.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from devkit.wallet import mint_python

SPENDER = Path(__file__).with_name("spender.py")


@dataclass(frozen=True)
class Spend:
    i: int
    started: float  # wall clock, right before the swap request
    finished: float  # wall clock, right after its answer


class Spender:
    """Drives tests/support/spender.py: proofs minted there, spent on command (Ys only here)."""

    def __init__(self, mint_url: str, db_dir: Path, count: int) -> None:
        cmd = [str(mint_python()), str(SPENDER), "--mint", mint_url, "--db", str(db_dir)]
        self._process = subprocess.Popen(  # noqa: S603 - the mint venv runs our own script
            [*cmd, "--count", str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.ys: list[str] = self._read()["ys"]

    def _read(self) -> Any:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the spender exited early")
        return json.loads(line)

    def spend(self, i: int) -> Spend:
        assert self._process.stdin is not None
        self._process.stdin.write(f"{i}\n")
        self._process.stdin.flush()
        done = self._read()
        return Spend(done["i"], done["started"], done["finished"])

    def close(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()

    def __enter__(self) -> Spender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
