"""Mint gateway vs the naive one-checkstate-per-caller approach, against a real Nutshell mint.

    .venv/bin/python bench/bench_gateway.py [--mint http://127.0.0.1:3338] [--ys 10000]
        [--per-caller 8] [--real 1000] [--repeat 3]
    .venv/bin/python -m bench gateway [--quick]    (through `run`, with the defaults below)

Every variant checks the same Ys (`--ys` in all, `--per-caller` per caller): `--real` of them
are real proofs minted (and some spent) with Nutshell's wallet, the rest random valid Ys (the
mint answers UNSPENT for those, which is fine for throughput). Every answer is verified.

Variants, each run `--repeat` times (median reported), in one run so the ratio is fair:
- naive: every caller posts its own checkstate (no pacing: localhost is exempt from the mint's
  60/min limit; a real remote mint would lock this out after 60 requests), at most
  `--naive-concurrency` in flight, which is the baseline's best setting here;
- gateway: all callers at once through one MintGateway with pacing out of the way (coalescing
  alone);
- gateway-paced: the same with the default budget (40 requests/min, burst 5);
- gateway-staggered: callers arriving evenly over one second (pacing out of the way);
- gateway-paced-staggered: the same arrivals under the default budget.

Prints a table and the ratios; writes JSON to bench/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from devkit.wallet import TOOL as WALLET_TOOL
from streams.core.cashu import y_from_secret
from streams.core.domain import MintState
from streams.core.settings import MintSettings
from streams.mint import MintGateway

if TYPE_CHECKING:
    from bench.common import BenchResult

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


@dataclass
class Run:
    variant: str
    callers: int
    ys: int
    requests: int
    info_requests: int
    elapsed_s: float
    ys_per_s: float
    requests_per_1000_ys: float
    p50_ms: float
    p99_ms: float
    errors: int


def mint_python() -> Path:
    configured = os.environ.get("PROOFRECON_MINT_PYTHON")
    return Path(configured) if configured else REPO / ".stack" / "mint" / "venv" / "bin" / "python"


def real_proofs(mint_url: str, count: int) -> tuple[dict[str, MintState], float]:
    """Mint `count` proofs with Nutshell's wallet; spend a fifth by swap and a tenth elsewhere."""
    if count <= 0:
        return {}, 0.0
    n_swap, n_else = count // 5, count // 10
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-wallet-") as db:
        done = subprocess.run(
            [
                str(mint_python()),
                str(WALLET_TOOL),
                "scenario",
                "--mint",
                mint_url,
                "--db",
                db,
                "--unspent",
                str(count - n_swap - n_else),
                "--spent-by-swap",
                str(n_swap),
                "--spent-elsewhere",
                str(n_else),
                "--amount",
                "2",
            ],
            capture_output=True,
            check=False,
        )
    if done.returncode != 0:
        sys.exit(f"the wallet tool failed:\n{done.stderr.decode(errors='replace')[-2000:]}")
    scene = json.loads(done.stdout)
    truth: dict[str, MintState] = {}
    for key, state in (
        ("unspent", MintState.UNSPENT),
        ("spent_swap", MintState.SPENT),
        ("spent_elsewhere", MintState.SPENT),
    ):
        for proof in scene[key]:
            y = y_from_secret(proof["secret"])
            assert y == proof["Y"], "our Y differs from Nutshell's"
            truth[y] = state
    return truth, time.monotonic() - started


def build_asks(truth: dict[str, MintState], total: int, per_caller: int) -> list[list[str]]:
    ys = list(truth)[:total]
    while len(ys) < total:
        ys.append(y_from_secret(os.urandom(16).hex()))
    return [ys[i : i + per_caller] for i in range(0, total, per_caller)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def timed_calls(
    asks: list[list[str]],
    call: Callable[[list[str]], Awaitable[dict[str, str]]],
    truth: dict[str, MintState],
    stagger_s: float = 0.0,
) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0

    async def one(i: int, ys: list[str]) -> None:
        nonlocal errors
        if stagger_s:
            await asyncio.sleep(stagger_s * i / len(asks))
        started = time.monotonic()
        try:
            answer = await call(ys)
        except Exception as exc:
            errors += 1
            print(f"  caller error: {exc}", file=sys.stderr)
            return
        latencies.append(time.monotonic() - started)
        expected = {y: truth.get(y, MintState.UNSPENT).value for y in ys}
        if {y: str(s) for y, s in answer.items()} != expected:
            raise AssertionError("a caller got a wrong answer")

    started = time.monotonic()
    await asyncio.gather(*(one(i, ys) for i, ys in enumerate(asks)))
    return time.monotonic() - started, latencies, errors


async def run_naive(
    mint_url: str, asks: list[list[str]], truth: dict[str, MintState], concurrency: int
) -> Run:
    """The baseline at its best: requests in flight capped at `concurrency`.

    Uncapped, 1250 requests at once overload both httpx's pool and the mint, and the baseline
    looks several times worse than it need be (measured: ~26 vs ~200 requests/s here).
    """
    requests = 0
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=mint_url, timeout=60) as client:

        async def call(ys: list[str]) -> dict[str, str]:
            nonlocal requests
            async with limit:
                requests += 1
                response = await client.post("/v1/checkstate", json={"Ys": ys})
            response.raise_for_status()
            return {s["Y"]: s["state"] for s in response.json()["states"]}

        elapsed, latencies, errors = await timed_calls(asks, call, truth)
    return summarise("naive", asks, requests, 0, elapsed, latencies, errors)


async def run_gateway(
    variant: str,
    mint_url: str,
    asks: list[list[str]],
    truth: dict[str, MintState],
    *,
    paced: bool,
    stagger_s: float = 0.0,
) -> Run:
    counts = {"/v1/checkstate": 0, "/v1/info": 0}

    async def hook(request: httpx.Request) -> None:
        counts[request.url.path] = counts.get(request.url.path, 0) + 1

    lifted = {"requests_per_minute": 1e6, "burst": 10_000, "limiter_model": "none"}
    pacing: dict[str, Any] = {} if paced else lifted
    settings = MintSettings(
        allowlist=[mint_url], default_deadline_ms=120_000, request_timeout_s=60, **pacing
    )
    gateway = MintGateway(mint_url, settings, event_hooks={"request": [hook]})

    async def call(ys: list[str]) -> dict[str, str]:
        return {y: s.value for y, s in (await gateway.check(ys)).items()}

    try:
        elapsed, latencies, errors = await timed_calls(asks, call, truth, stagger_s)
    finally:
        await gateway.close()
    return summarise(
        variant, asks, counts["/v1/checkstate"], counts["/v1/info"], elapsed, latencies, errors
    )


def summarise(
    variant: str,
    asks: list[list[str]],
    requests: int,
    info_requests: int,
    elapsed: float,
    latencies: list[float],
    errors: int,
) -> Run:
    n_ys = sum(len(a) for a in asks)
    return Run(
        variant=variant,
        callers=len(asks),
        ys=n_ys,
        requests=requests,
        info_requests=info_requests,
        elapsed_s=round(elapsed, 4),
        ys_per_s=round(n_ys / elapsed, 1),
        requests_per_1000_ys=round(requests * 1000 / n_ys, 2),
        p50_ms=round(percentile(latencies, 0.5) * 1000, 2),
        p99_ms=round(percentile(latencies, 0.99) * 1000, 2),
        errors=errors,
    )


def median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.elapsed_s)[len(runs) // 2]


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as probe:
        (await probe.get(f"{args.mint}/v1/info")).raise_for_status()
    print(f"minting {args.real} real proofs with Nutshell's wallet ...", file=sys.stderr)
    truth, mint_s = real_proofs(args.mint, args.real)
    asks = build_asks(truth, args.ys, args.per_caller)
    variants: dict[str, Callable[[], Awaitable[Run]]] = {
        "naive": lambda: run_naive(args.mint, asks, truth, args.naive_concurrency),
        "gateway": lambda: run_gateway("gateway", args.mint, asks, truth, paced=False),
        "gateway-paced": lambda: run_gateway("gateway-paced", args.mint, asks, truth, paced=True),
        "gateway-staggered": lambda: run_gateway(
            "gateway-staggered", args.mint, asks, truth, paced=False, stagger_s=1.0
        ),
        "gateway-paced-staggered": lambda: run_gateway(
            "gateway-paced-staggered", args.mint, asks, truth, paced=True, stagger_s=1.0
        ),
    }
    all_runs: dict[str, list[Run]] = {name: [] for name in variants}
    for _ in range(args.repeat):
        for name, run in variants.items():  # interleaved, so drift hits every variant alike
            all_runs[name].append(await run())
    medians = {name: median_run(runs) for name, runs in all_runs.items()}
    naive, gateway = medians["naive"], medians["gateway"]
    ratios = {
        "ys_per_s_gateway_over_naive": round(gateway.ys_per_s / naive.ys_per_s, 2),
        "ys_per_s_paced_gateway_over_naive": round(
            medians["gateway-paced"].ys_per_s / naive.ys_per_s, 2
        ),
        "requests_naive_over_gateway": round(naive.requests / max(1, gateway.requests), 1),
        "requests_naive_over_staggered_gateway": round(
            naive.requests / max(1, medians["gateway-staggered"].requests), 1
        ),
    }
    return {
        "bench": "gateway",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mint": args.mint,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "params": {
            "ys": args.ys,
            "per_caller": args.per_caller,
            "real_proofs": len(truth),
            "repeat": args.repeat,
            "naive_concurrency": args.naive_concurrency,
        },
        "real_proofs_mint_s": round(mint_s, 2),
        "medians": {name: asdict(run) for name, run in medians.items()},
        "runs": {name: [asdict(r) for r in runs] for name, runs in all_runs.items()},
        "ratios": ratios,
    }


def print_table(result: dict[str, Any]) -> None:
    cols = [
        ("variant", 25),
        ("callers", 8),
        ("ys", 7),
        ("requests", 9),
        ("requests_per_1000_ys", 11),
        ("elapsed_s", 10),
        ("ys_per_s", 10),
        ("p50_ms", 9),
        ("p99_ms", 9),
        ("errors", 7),
    ]
    header = {"requests_per_1000_ys": "req/1k Ys"}
    print("".join(header.get(name, name).ljust(width) for name, width in cols))
    for run in result["medians"].values():
        print("".join(str(run[name]).ljust(width) for name, width in cols))
    print()
    for name, value in result["ratios"].items():
        print(f"{name}: {value}")


def write_result(result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench_gateway-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2))
    return out


async def run(quick: bool) -> BenchResult:
    """`python -m bench gateway`: the script's measurements as a BenchResult (see bench.common).

    The value is the worst requests per 1,000 Ys among the variants under the default budget
    (gateway-paced, gateway-paced-staggered): the configuration the target is about. With the
    budget lifted, staggered callers cost a request per gather window (see details). The
    baseline is the naive approach's. Quick: 2,000 Ys (200 real), one repeat.
    """
    # Imported here: the script also runs as `python bench/bench_gateway.py`, without the package.
    from bench.common import STACK_MINT, BenchResult, at_most, ratio

    args = argparse.Namespace(
        mint=STACK_MINT,
        ys=2_000 if quick else 10_000,
        per_caller=8,
        real=200 if quick else 1000,
        repeat=1 if quick else 2,
        naive_concurrency=8,
    )
    result = await main_async(args)
    print_table(result)
    out = write_result(result)
    medians = result["medians"]
    worst = max(run["requests_per_1000_ys"] for v, run in medians.items() if "paced" in v)
    naive = medians["naive"]["requests_per_1000_ys"]
    errors = sum(run["errors"] for run in medians.values())
    return BenchResult(
        name="gateway",
        metric="mint requests per 1,000 proofs, concurrent melts",
        value=worst,
        unit="req",
        baseline=naive,
        ratio=ratio(worst, naive),
        target="<= 5 req",
        passed=at_most(worst, 5) and errors == 0,
        details={**result, "json": str(out), "baseline_is": "naive: one checkstate per caller"},
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mint", default="http://127.0.0.1:3338")
    parser.add_argument("--ys", type=int, default=10_000)
    parser.add_argument("--per-caller", type=int, default=8)
    parser.add_argument("--real", type=int, default=1000, help="real proofs among the Ys")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--naive-concurrency", type=int, default=8, help="naive requests in flight at once"
    )
    args = parser.parse_args()
    args.mint = args.mint.rstrip("/")
    result = asyncio.run(main_async(args))
    print_table(result)
    out = write_result(result)
    print(f"\nwritten to {out.relative_to(REPO)}")
    return 1 if any(run["errors"] for run in result["medians"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
