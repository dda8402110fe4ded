"""Spend proofs behind a wallet's back, on command, and say exactly when. Mint venv only.

    <mint venv>/bin/python devkit/spender.py --mint URL --db DIR --count 20

Mints `--count` proofs with Nutshell's wallet ("a") and prints one JSON line `{"ys": [...]}`
(Ys only: the secrets never leave this process). Then, for every line `N` read on stdin, a second
wallet ("b") redeems a copy of proof N (SPENT at the mint, still unspent in wallet "a") and
prints `{"i": N, "started": t0, "finished": t1}` with wall-clock times taken right around the
swap request. An empty line or EOF ends it. Drive it with `devkit.spending.Spender`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

DEVKIT = Path(__file__).resolve().parent


def _emit(out: Any, obj: dict[str, Any]) -> None:
    out.write(json.dumps(obj) + "\n")
    out.flush()


async def _serve(args: argparse.Namespace, out: Any) -> None:
    sys.path.insert(0, str(DEVKIT))
    import cashu_wallet as tool  # type: ignore[import-not-found]  # devkit/, mint venv only
    from cashu.core.base import Proof

    tool._prepare_environment(args.db)
    tool._quiet_logging()
    wallet = await tool._open_wallet(args.mint, args.db, "a")
    other = await tool._open_wallet(args.mint, args.db, "b")
    proofs = await tool._mint(wallet, args.count, 8)
    _emit(out, {"ys": [tool._y_of(p.secret) for p in proofs]})
    loop = asyncio.get_running_loop()
    while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
        i = int(line)
        copy = Proof.from_dict(proofs[i].to_dict())
        started = time.time()
        await other.redeem([copy])
        _emit(out, {"i": i, "started": started, "finished": time.time()})


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mint", required=True)
    parser.add_argument("--db", required=True, type=Path)
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()
    args.db = args.db.resolve()
    out = sys.stdout
    sys.stdout = sys.stderr  # whatever Nutshell prints must not corrupt our JSON lines
    asyncio.run(_serve(args, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
