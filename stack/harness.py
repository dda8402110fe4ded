"""Drive `stack/stack.sh` from tests: the default stack, or a private one in a temp state dir.

A private stack has its own state dir and free 127.0.0.1 ports, so a test can start, kill and
remove Kafka nodes or mints without touching the default stack (`.stack/`, :9092, :3338) that the
rest of the suite uses. It reuses the default stack's resolved Kafka jars when there are some.

    stack = StackScript.private(tmp_path)
    stack.run("up", "cluster")
    bootstrap = stack.run("bootstrap").stdout.strip()
    ...
    stack.run("down")
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "stack" / "stack.sh"
DEFAULT_STATE = REPO / ".stack"
BASH = shutil.which("bash") or "/bin/bash"

# Each private stack asks for these ports (the cluster's two are the first of three in a row).
_PORT_VARIABLES = (
    "PROOFRECON_STACK_KAFKA_PORT",
    "PROOFRECON_STACK_CONTROLLER_PORT",
    "PROOFRECON_STACK_SCRAM_PORT",
    "PROOFRECON_STACK_MINT_PORT",
    "PROOFRECON_STACK_CDK_PORT",
)
_CLUSTER_VARIABLES = ("PROOFRECON_STACK_CLUSTER_PORT", "PROOFRECON_STACK_CLUSTER_CONTROLLER_PORT")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_block(size: int, taken: set[int]) -> int:
    """The first of `size` consecutive free ports (none in `taken`), from 20000-59999."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - size)
        block = range(base, base + size)
        if not taken.intersection(block) and all(_port_free(p) for p in block):
            taken.update(block)
            return base
    raise RuntimeError("no block of free ports found")


class StackScript:
    """`stack/stack.sh` with one state dir and one set of ports."""

    def __init__(self, env: Mapping[str, str], state_dir: Path | None = None) -> None:
        self.env = dict(env)
        self.state_dir = state_dir
        self.private = state_dir is not None

    @classmethod
    def default(cls) -> StackScript:
        """The developer's stack (.stack/ and the default ports, or whatever the env says)."""
        return cls(os.environ)

    @classmethod
    def private(cls, state_dir: Path) -> StackScript:
        """A stack of its own under `state_dir`, on free ports."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROOFRECON_STACK_")}
        env.pop("KAFKA_NODES", None)
        env.pop("MINTS", None)
        env["PROOFRECON_STACK_DIR"] = str(state_dir)
        taken: set[int] = set()
        for name in _PORT_VARIABLES:
            env[name] = str(free_port_block(1, taken))
        for name in _CLUSTER_VARIABLES:
            env[name] = str(free_port_block(3, taken))
        libs = DEFAULT_STATE / "kafka" / "libs"
        if (libs / ".resolved").is_file():
            env["PROOFRECON_STACK_KAFKA_LIBS"] = str(libs)
        return cls(env, state_dir)

    def run(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(  # noqa: S603 - our own script, arguments built here
            [BASH, str(SCRIPT), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"stack.sh {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr[-3000:]}"
            )
        return result

    def remove(self) -> None:
        """Stop everything this private stack runs and delete its state dir."""
        if not self.private:
            raise RuntimeError("only a private stack is removed")
        self.run("down", check=False, timeout=120)
        assert self.state_dir is not None
        shutil.rmtree(self.state_dir, ignore_errors=True)


def cdk_version() -> str:
    """The cdk-mintd version stack.sh builds (its CDK_VERSION)."""
    for line in SCRIPT.read_text().splitlines():
        if line.startswith("CDK_VERSION="):
            return line.split("=", 1)[1].strip()
    raise RuntimeError("no CDK_VERSION in stack.sh")


def cdk_binary() -> Path | None:
    """The cdk-mintd that stack.sh built into the machine's cache, if it is the pinned version."""
    cache = os.environ.get("PROOFRECON_CACHE_DIR") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "proofrecon"
    )
    binary = Path(cache) / "cdk" / "bin" / "cdk-mintd"
    if not binary.is_file():
        return None
    version = subprocess.run(  # noqa: S603 - the binary stack.sh built
        [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.split()
    return binary if version[-1:] == [cdk_version()] else None
