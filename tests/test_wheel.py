"""The wheel holds the product and nothing else, and runs a worker on its own (what the Docker
image does): no dev kit, tests or benchmarks inside, and nothing read from the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from devkit.processes import WorkerProcess
from streams.core.settings import Settings
from tests.conftest import REPO

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        check=True,
    )
    (built,) = out.glob("proofrecon-*.whl")
    return built


def test_the_wheel_holds_no_dev_kit_tests_or_benchmarks(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"streams", "sinks", f"{wheel.name.split('-py3')[0]}.dist-info"}
    assert "sinks/migrations/001_initial.sql" in names  # package data travels with it


def test_a_worker_runs_from_the_wheel(wheel: Path, settings: Settings, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import streams, sinks; print(streams.__file__, sinks.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(REPO) not in where and where.count(str(target)) == 2
    worker = WorkerProcess(settings, tmp_path / "worker.log", extra_env={"PYTHONPATH": str(target)})
    worker.cwd = tmp_path
    try:
        worker.start()
    finally:
        worker.stop()
    assert "Traceback" not in worker.log_text()
