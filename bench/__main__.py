"""Run the benchmarks: `python -m bench [--quick] [NAME ...]` (`make bench` runs them all).

    .venv/bin/python -m bench                    # every bench/bench_*.py, full size
    .venv/bin/python -m bench --quick ingest latency

NAME is a module's name with or without its `bench_` prefix. Each module exposes
`async def run(quick: bool) -> BenchResult`; they run one after another (they would only measure
each other on a 2-core machine). Each prints its table as it finishes and a summary follows.
bench/results/ (git-ignored) gets summary-<time>.json with this run's results, and summary.json
keeps the latest result of every benchmark. A benchmark that fails to run is reported as an error
row and the others still run.

Exit status: 0 when every benchmark ran, 1 when one could not run; with --strict, also 1 when a
target was missed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
import time
import traceback
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

from bench.common import (
    RESULTS,
    BenchResult,
    add_set_option,
    format_table,
    machine,
    say,
    set_overrides,
)

BENCH_DIR = Path(__file__).resolve().parent
Runner = Callable[[bool], Coroutine[Any, Any, BenchResult]]


def discover() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def select(names: list[str], available: list[str]) -> list[str]:
    wanted = [n.removeprefix("bench_") for n in names] or available
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; available: {', '.join(available)}")
    return wanted


def load(name: str) -> Runner | None:
    module = importlib.import_module(f"bench.bench_{name}")
    runner = getattr(module, "run", None)
    return cast(Runner, runner) if callable(runner) else None


def error_result(name: str, message: str) -> BenchResult:
    return BenchResult(name, "(did not run)", None, "", None, None, "-", False, {"error": message})


def run_one(name: str, quick: bool) -> tuple[BenchResult, bool]:
    """The benchmark's result, and whether it ran at all."""
    try:
        runner = load(name)
    except Exception:
        return error_result(name, traceback.format_exc(limit=5)), False
    if runner is None:
        return error_result(name, f"bench_{name}.py has no `async def run(quick)`"), False
    started = time.monotonic()
    try:
        result = asyncio.run(runner(quick))
    except (Exception, SystemExit):
        say(f"{name} failed:\n{traceback.format_exc()}")
        return error_result(name, traceback.format_exc(limit=8)), False
    result.details["elapsed_s"] = round(time.monotonic() - started, 1)
    return result, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller, shorter runs")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    add_set_option(parser)
    args = parser.parse_args(argv)
    set_overrides(args.set)
    names = select(args.names, discover())
    results: list[BenchResult] = []
    all_ran = True
    for name in names:
        say(f"running {name}{' (quick)' if args.quick else ''}")
        result, ran = run_one(name, args.quick)
        all_ran &= ran
        results.append(result)
        print(format_table([result]), flush=True)
        print(flush=True)
    print("summary", "(quick)" if args.quick else "")
    print(format_table(results))
    out = write_summary(results, args.quick)
    print(f"\nwritten to {out}")
    missed = any(not r.ok for r in results)
    return 0 if all_ran and not (args.strict and missed) else 1


def write_summary(results: list[BenchResult], quick: bool) -> Path:
    """This run to summary-<time>.json; summary.json keeps the latest result of every benchmark.

    Merged, not overwritten: `python -m bench sink` must not erase the other benchmarks' latest
    figures (several people run benchmarks on one machine).
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    run = {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": quick,
        "command": " ".join(sys.argv),
        "machine": machine(),
    }
    entries: list[dict[str, Any]] = [{**run, "result": r.to_json()} for r in results]
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"summary-{stamp}.json").write_text(json.dumps(entries, indent=2, default=str))
    out = RESULTS / "summary.json"
    latest = _read_latest(out)
    latest.update({entry["result"]["name"]: entry for entry in entries})
    out.write_text(json.dumps({"latest": latest}, indent=2, default=str))
    return out


def _read_latest(path: Path) -> dict[str, Any]:
    try:
        latest = json.loads(path.read_text()).get("latest", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return latest if isinstance(latest, dict) else {}


if __name__ == "__main__":
    sys.exit(main())
