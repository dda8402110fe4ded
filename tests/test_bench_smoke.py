"""`make bench` keeps working: the harness runs one quick benchmark against the real stack and
writes well-formed results. Never a timing: figures are the benchmarks' business (bench/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devkit.processes import REPO

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]


def test_the_harness_runs_a_quick_benchmark_and_writes_its_results(tmp_path: Path) -> None:
    env = {**os.environ, "PROOFRECON_BENCH_RESULTS": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "gateway"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "summary" in done.stdout
    latest = json.loads((tmp_path / "summary.json").read_text())["latest"]
    assert set(latest) == {"gateway"}
    entry = latest["gateway"]
    assert entry["quick"] is True
    result = entry["result"]
    assert result["name"] == "gateway" and "error" not in result["details"]
    for row in [result, *result["more"]]:
        assert isinstance(row["value"], int | float) and row["unit"] and row["target"] is not None
    assert list(tmp_path.glob("summary-*.json"))
