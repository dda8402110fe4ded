"""docker-compose.yml stays valid for users with Docker (no engine is needed to parse it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _compose(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is needed (Debian package; `make sysdeps` installs it)"
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_compose_file_is_valid() -> None:
    result = _compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_has_the_whole_stack() -> None:
    services = set(_compose("config", "--services").stdout.split())
    assert services == {"kafka", "clickhouse", "mint", "worker", "grafana"}


def test_validator_rejects_unknown_keys(tmp_path: Path) -> None:
    text = (REPO / "docker-compose.yml").read_text()
    # Build contexts resolve relative to the file, so the copies get the directories they name;
    # the intact copy must pass, or the broken one could fail for the wrong reason.
    for name, body in (
        ("intact", text),
        (
            "broken",
            text.replace("  kafka:\n    image:", "  kafka:\n    imagee: typo\n    image:", 1),
        ),
    ):
        (tmp_path / name / "stack" / "mint").mkdir(parents=True)
        (tmp_path / name / "docker-compose.yml").write_text(body)
    assert _compose("config", "-q", cwd=tmp_path / "intact").returncode == 0
    broken = _compose("config", "-q", cwd=tmp_path / "broken")
    assert broken.returncode != 0
    assert "imagee" in broken.stderr


def test_grafana_is_provisioned() -> None:
    provisioning = REPO / "deploy" / "grafana" / "provisioning"
    datasource = (provisioning / "datasources" / "clickhouse.yml").read_text()
    assert "grafana-clickhouse-datasource" in datasource
    assert (provisioning / "dashboards" / "proofrecon.yml").is_file()
