"""A test and demo Cashu wallet built on Nutshell's own wallet library.

Runs under the MINT virtualenv's python (it imports `cashu.wallet`), never the project's:

    .stack/mint/venv/bin/python devkit/cashu_wallet.py scenario --mint URL --db DIR \\
        --unspent 5 --spent-by-swap 3 --spent-elsewhere 2

Every command prints one JSON document on stdout and nothing else (Nutshell's logging goes to
stderr). A proof is printed as {secret, amount, id, C, Y}; Y is computed here with Nutshell's own
hash_to_curve, so a test comparing it with proofrecon's Y checks our hashing against an independent
implementation. Importing cashu is slow (about a second): prefer `scenario`, which does everything
in one process.

Commands:
  mint            mint --count proofs of --amount each (one quote per 1000 outputs, not per proof)
  swap            spend the proofs in --in by swapping them at the mint; prints the new proofs
  redeem-copies   a second wallet redeems copies of --in: SPENT at the mint, unspent in wallet "a"
  melt-pending    melt proofs (--in, or --count freshly minted) with an invoice the mint did not
                  issue; against a mint whose FakeWallet keeps payments PENDING (a Nutshell mint
                  started so, or any CDK mint: the invoice asks CDK's FakeWallet for it) this
                  returns once the mint shows every proof PENDING
  check           the mint's NUT-07 states of the proofs in --in, via Nutshell's wallet
  scenario        mint, then spend some by swap and some from a second wallet (and optionally
                  leave some PENDING), in one process
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

# Nutshell's most outputs per request (mint_max_request_length): larger mints take several quotes.
MAX_OUTPUTS_PER_MINT = 1000
QUOTE_PAID_TIMEOUT_S = 30.0
MELT_TIMEOUT_S = 30.0


def _prepare_environment(db_dir: Path) -> None:
    """Isolate Nutshell's settings before it is imported: they are read once, at import time.

    Nutshell reads a `.env` from the working directory or ~/.cashu; a developer's own file must not
    change what a test does, so we run from the (fresh) database directory with our own CASHU_DIR.
    """
    db_dir.mkdir(parents=True, exist_ok=True)
    # An empty .env here wins over ~/.cashu/.env, which Nutshell would load over our variables.
    (db_dir / ".env").touch()
    os.chdir(db_dir)
    os.environ["CASHU_DIR"] = str(db_dir / "cashu")
    os.environ.setdefault("TOR", "false")
    os.environ.setdefault("LOG_LEVEL", "WARNING")


def _quiet_logging() -> None:
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("LOG_LEVEL", "WARNING"))


def _y_of(secret: str) -> str:
    from cashu.core.crypto.b_dhke import hash_to_curve

    return str(hash_to_curve(secret.encode("utf-8")).format().hex())


def _proof_json(proof: Any) -> dict[str, Any]:
    return {
        "secret": proof.secret,
        "amount": proof.amount,
        "id": proof.id,
        "C": proof.C,
        "Y": _y_of(proof.secret),
    }


def _proofs_from_json(items: list[dict[str, Any]]) -> list[Any]:
    from cashu.core.base import Proof

    return [
        Proof.from_dict({"id": p["id"], "amount": p["amount"], "secret": p["secret"], "C": p["C"]})
        for p in items
    ]


async def _open_wallet(mint_url: str, db_dir: Path, name: str) -> Any:
    from cashu.wallet.wallet import Wallet

    wallet_dir = db_dir / name
    wallet_dir.mkdir(parents=True, exist_ok=True)
    wallet = await Wallet.with_db(url=mint_url, db=str(wallet_dir), name=name)
    await wallet.load_mint()
    return wallet


async def _mint(wallet: Any, count: int, amount: int) -> list[Any]:
    """Mint `count` proofs of `amount` each: one quote per `MAX_OUTPUTS_PER_MINT` outputs."""
    if amount <= 0 or amount & (amount - 1):
        raise SystemExit(f"--amount must be a power of two, not {amount}")
    proofs: list[Any] = []
    remaining = count
    while remaining > 0:
        n = min(remaining, MAX_OUTPUTS_PER_MINT)
        quote = await wallet.request_mint(n * amount)
        proofs.extend(await _mint_paid_quote(wallet, quote.quote, n * amount, [amount] * n))
        remaining -= n
    return proofs


async def _mint_paid_quote(wallet: Any, quote_id: str, total: int, split: list[int]) -> list[Any]:
    # FakeWallet pays a quote by itself, possibly after a delay: retry while it is unpaid.
    deadline = time.monotonic() + QUOTE_PAID_TIMEOUT_S
    while True:
        try:
            return list(await wallet.mint(total, quote_id=quote_id, split=split))
        except Exception as exc:  # Nutshell raises bare Exceptions with the mint's message
            if "paid" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _swap(wallet: Any, proofs: list[Any]) -> list[Any]:
    """Swap `proofs` for new ones at the mint: the inputs become SPENT."""
    keep, send = await wallet.split(proofs, 0)
    return list(keep) + list(send)


async def _redeem_copies(mint_url: str, db_dir: Path, proofs: list[Any]) -> list[Any]:
    """A second wallet redeems copies: SPENT at the mint, still unspent in the first wallet's DB."""
    from cashu.core.base import Proof

    other = await _open_wallet(mint_url, db_dir, "b")
    copies = [Proof.from_dict(p.to_dict()) for p in proofs]
    keep, send = await other.redeem(copies)
    return list(keep) + list(send)


# CDK's FakeWallet takes a payment's outcome from the invoice's description, read as its
# FakeInvoiceDescription (cdk-fake-wallet 0.18): this one keeps the melt PENDING. Nutshell's
# FakeWallet ignores the description; its outcome is the mint's FAKEWALLET_* settings.
_CDK_PENDING_DESCRIPTION = json.dumps(
    {
        "pay_invoice_state": "PENDING",
        "check_payment_state": "PENDING",
        "pay_err": False,
        "check_err": False,
    }
)


def _foreign_invoice(amount_sat: int) -> str:
    """A bolt11 invoice the mint did not issue, so a melt pays out through its backend.

    It carries the feature bits BOLT 11 makes mandatory (var_onion_optin, payment_secret): CDK's
    parser (LDK's) refuses an invoice without them as InvalidFeatures; Nutshell does not care.
    """
    from bolt11 import (
        Bolt11,
        Feature,
        Features,
        FeatureState,
        MilliSatoshi,
        TagChar,
        Tags,
        encode,
    )
    from coincurve import PrivateKey

    tags = Tags()
    tags.add(TagChar.payment_hash, os.urandom(32).hex())
    tags.add(TagChar.payment_secret, os.urandom(32).hex())
    tags.add(TagChar.description, _CDK_PENDING_DESCRIPTION)
    tags.add(TagChar.expire_time, 3600)
    required = {f: FeatureState.required for f in (Feature.var_onion_optin, Feature.payment_secret)}
    tags.add(TagChar.features, Features.from_feature_list(required))
    invoice = Bolt11(
        currency="bc",
        amount_msat=MilliSatoshi(amount_sat * 1000),
        date=int(time.time()),
        tags=tags,
    )
    return str(encode(invoice, PrivateKey().to_hex()))


async def _states(wallet: Any, proofs: list[Any]) -> dict[str, str]:
    answer = await wallet.check_proof_state(proofs)
    return {
        s.Y: str(s.state.value if hasattr(s.state, "value") else s.state) for s in answer.states
    }


async def _melt_pending(wallet: Any, proofs: list[Any]) -> dict[str, Any]:
    """Start a melt of all `proofs` and return once the mint shows every one of them PENDING.

    The melt's amount is what the proofs can pay after input fees and the fee reserve. Nutshell's
    `melt` has no timeout of its own, so it runs as a task we bound; against a mint that settles
    payments the proofs end SPENT, not PENDING, and we fail loudly.
    """
    total = sum(p.amount for p in proofs)
    input_fees = wallet.get_fees_for_proofs(proofs)
    amount = total - input_fees - 2
    for _ in range(5):
        if amount < 1:
            raise SystemExit(f"proofs worth {total} sat cannot pay a melt's fees")
        invoice = _foreign_invoice(amount)
        quote = await wallet.melt_quote(invoice)
        if quote.amount + quote.fee_reserve + input_fees <= total:
            break
        amount = total - input_fees - quote.fee_reserve
    else:
        raise SystemExit("could not find a melt amount the proofs can pay")

    melt = asyncio.create_task(wallet.melt(proofs, invoice, quote.fee_reserve, quote.quote))
    deadline = time.monotonic() + MELT_TIMEOUT_S
    states: dict[str, str] = {}
    try:
        while time.monotonic() < deadline:
            states = await _states(wallet, proofs)
            if states and all(s == "PENDING" for s in states.values()):
                return {"quote": quote.quote, "amount": quote.amount, "states": states}
            if melt.done() and melt.exception() is not None:
                raise SystemExit(f"melt failed: {melt.exception()}")
            if melt.done() and states and all(s == "SPENT" for s in states.values()):
                raise SystemExit(
                    "the mint settled the melt: start a Nutshell mint with "
                    "FAKEWALLET_PAY_INVOICE_STATE=PENDING and FAKEWALLET_PAYMENT_STATE=PENDING to "
                    "keep proofs PENDING (CDK's FakeWallet keeps this invoice's melt PENDING)"
                )
            await asyncio.sleep(0.1)
        raise SystemExit(
            f"proofs never became PENDING (last states: {sorted(set(states.values()))})"
        )
    finally:
        if not melt.done():
            # The mint already holds the proofs as PENDING; the wallet's side of it is irrelevant.
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(melt, timeout=1)
        if not melt.done():
            melt.cancel()


def _read_proofs(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text())
    if isinstance(data, dict) and "proofs" in data:
        data = data["proofs"]
    if not isinstance(data, list):
        raise SystemExit(f"{path}: expected a JSON list of proofs")
    return data


async def _run(args: argparse.Namespace) -> Any:
    db_dir: Path = args.db
    wallet = await _open_wallet(args.mint, db_dir, "a")
    if args.command == "mint":
        return [_proof_json(p) for p in await _mint(wallet, args.count, args.amount)]
    if args.command == "swap":
        proofs = _proofs_from_json(_read_proofs(args.input))
        return [_proof_json(p) for p in await _swap(wallet, proofs)]
    if args.command == "redeem-copies":
        proofs = _proofs_from_json(_read_proofs(args.input))
        return [_proof_json(p) for p in await _redeem_copies(args.mint, db_dir, proofs)]
    if args.command == "check":
        return await _states(wallet, _proofs_from_json(_read_proofs(args.input)))
    if args.command == "melt-pending":
        if args.input is not None:
            proofs = _proofs_from_json(_read_proofs(args.input))
        else:
            proofs = await _mint(wallet, args.count, args.amount)
        melt = await _melt_pending(wallet, proofs)
        return {"pending": [_proof_json(p) for p in proofs], "melt": melt}
    if args.command == "scenario":
        return await _scenario(wallet, args)
    raise SystemExit(f"unknown command {args.command}")


async def _scenario(wallet: Any, args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    n_unspent, n_swap, n_else, n_pending = (
        args.unspent,
        args.spent_by_swap,
        args.spent_elsewhere,
        args.pending,
    )
    minted = await _mint(wallet, n_unspent + n_swap + n_else + n_pending, args.amount)
    minted_s = time.monotonic() - started
    unspent = minted[:n_unspent]
    to_swap = minted[n_unspent : n_unspent + n_swap]
    elsewhere = minted[n_unspent + n_swap : n_unspent + n_swap + n_else]
    to_melt = minted[n_unspent + n_swap + n_else :]
    swap_outputs = await _swap(wallet, to_swap) if to_swap else []
    if elsewhere:
        await _redeem_copies(args.mint, args.db, elsewhere)
    result: dict[str, Any] = {
        "mint_url": args.mint,
        "unspent": [_proof_json(p) for p in unspent],
        "spent_swap": [_proof_json(p) for p in to_swap],
        "spent_elsewhere": [_proof_json(p) for p in elsewhere],
        "swap_outputs": [_proof_json(p) for p in swap_outputs],
    }
    if to_melt:
        await _melt_pending(wallet, to_melt)
        result["pending"] = [_proof_json(p) for p in to_melt]
    result["timings_s"] = {
        "mint": round(minted_s, 3),
        "total": round(time.monotonic() - started, 3),
    }
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--mint", required=True, help="mint URL, e.g. http://127.0.0.1:3338")
        p.add_argument("--db", required=True, type=Path, help="directory for the wallets' DBs")
        return p

    p = common("mint", "mint proofs")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--amount", type=int, default=8, help="sat per proof (a power of two)")
    for name, text in (
        ("swap", "spend proofs by swapping them"),
        ("redeem-copies", "a second wallet redeems copies of the proofs"),
        ("check", "the mint's states of the proofs"),
    ):
        p = common(name, text)
        p.add_argument("--in", dest="input", type=Path, required=True, help="JSON list of proofs")
    p = common("melt-pending", "leave proofs PENDING in an in-flight melt")
    p.add_argument("--in", dest="input", type=Path, default=None, help="JSON list of proofs")
    p.add_argument("--count", type=int, default=1, help="proofs to mint when --in is not given")
    p.add_argument("--amount", type=int, default=8)
    p = common("scenario", "mint, then spend some proofs by swap and some from another wallet")
    p.add_argument("--unspent", type=int, default=0)
    p.add_argument("--spent-by-swap", type=int, default=0)
    p.add_argument("--spent-elsewhere", type=int, default=0)
    p.add_argument("--pending", type=int, default=0, help="needs a mint that keeps melts PENDING")
    p.add_argument("--amount", type=int, default=8)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.db = args.db.resolve()
    args.mint = args.mint.rstrip("/")
    for name in ("input",):
        if getattr(args, name, None) is not None:
            setattr(args, name, getattr(args, name).resolve())
    _prepare_environment(args.db)
    _quiet_logging()
    real_stdout = sys.stdout
    # Anything Nutshell prints must not corrupt the one JSON document on stdout.
    sys.stdout = sys.stderr
    try:
        result = asyncio.run(_run(args))
    finally:
        sys.stdout = real_stdout
    json.dump(result, real_stdout)
    real_stdout.write("\n")
    real_stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
