"""A replicated Kafka cluster and a fleet of `proofrecon worker` processes on it, for the fault
campaign (tests/reliability/) and the scaling benchmark (bench/bench_scaling.py).

    cluster = KafkaCluster.open(scratch)        # the stack's 3-node cluster, or a private one
    fleet = WorkerFleet([settings_0, settings_1, settings_2], logs)
    fleet.start()
    fleet.kill(1); fleet.restart(1)             # kill -9, then the supervisor's restart
    fleet.freeze(2); ...; fleet.thaw(2)         # SIGSTOP / SIGCONT: a zombie
    cluster.kill(3); ...; cluster.start(3)      # one Kafka node, SIGKILL, back later

The cluster is the local stack's (`make stack-up KAFKA_NODES=3`) when it runs and
PROOFRECON_RELIABILITY_PRIVATE_CLUSTER is not set; otherwise a private one on free ports under a
scratch directory, removed by `close()`. A private one never disturbs anyone else's cluster.
PROOFRECON_RELIABILITY_CLUSTER_DIR names a private cluster's state dir that is kept running
between runs (started when it is not up, never removed): for repeated runs during development.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from devkit.mints import free_port
from devkit.processes import REPO, WorkerProcess
from streams.core.settings import Settings

# stack/ (the stack engineer's scripts) is outside mypy's packages; loaded by name, it stays so.
StackScript: Any = importlib.import_module("stack.harness").StackScript

PRIVATE_ENV = "PROOFRECON_RELIABILITY_PRIVATE_CLUSTER"
KEPT_DIR_ENV = "PROOFRECON_RELIABILITY_CLUSTER_DIR"
CLUSTER_SIZE = 3


class KafkaCluster:
    """Three KRaft nodes (each broker and controller), RF 3, min ISR 2, driven by stack.sh."""

    def __init__(self, stack: Any, bootstrap: str, *, owned: bool = False) -> None:
        self.stack = stack
        self.bootstrap = bootstrap
        self.owned = owned  # a private cluster this object started and removes

    @classmethod
    def open(cls, scratch: Path) -> KafkaCluster:
        kept = os.environ.get(KEPT_DIR_ENV)
        if kept:
            stack = StackScript.private(Path(kept))
            stack.run("up", "cluster", timeout=600)
            return cls(stack, stack.run("bootstrap", "cluster").stdout.strip())
        default = StackScript.default()
        if not os.environ.get(PRIVATE_ENV):
            found = default.run("bootstrap", "cluster", check=False)
            if found.returncode == 0:
                return cls(default, found.stdout.strip())
        stack = StackScript.private(scratch)
        try:
            stack.run("up", "cluster", timeout=600)
            return cls(stack, stack.run("bootstrap", "cluster").stdout.strip(), owned=True)
        except Exception:
            stack.remove()
            raise

    @property
    def private(self) -> bool:
        return bool(self.stack.private)

    def kill(self, node: int) -> None:
        """SIGKILL one node (returns once the process is gone)."""
        self.stack.run("kafka-node", "kill", str(node), timeout=60)

    def start(self, node: int) -> None:
        """Start one node; returns once it is registered with the cluster again."""
        self.stack.run("kafka-node", "start", str(node), timeout=600)

    def node_pids(self) -> dict[int, int]:
        """Node -> the pid of its JVM, for those running (stack.sh keeps them in pid files)."""
        state = self.stack.state_dir or Path(
            os.environ.get("PROOFRECON_STACK_DIR") or REPO / ".stack"
        )
        pids = {}
        for node in range(1, CLUSTER_SIZE + 1):
            pid_file = Path(state) / "cluster" / f"node-{node}" / "kafka.pid"
            if pid_file.is_file():
                pids[node] = int(pid_file.read_text().strip())
        return pids

    def close(self) -> None:
        """Remove a private cluster started here; leave the stack's own (or a kept one) alone."""
        if self.owned:
            self.stack.remove()

    async def wait_in_sync(self, topics: Iterable[str], timeout: float = 120.0) -> float:
        """Wait until every partition of `topics` has all three replicas in sync; seconds taken."""
        wanted = sorted(set(topics))
        started = time.monotonic()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10_000)
        await admin.start()
        try:
            while time.monotonic() - started < timeout:
                if await _all_in_sync(admin, wanted):
                    return time.monotonic() - started
                await asyncio.sleep(0.5)
        finally:
            await admin.close()
        raise TimeoutError(f"replicas of {len(wanted)} topics not in sync within {timeout} s")


async def _all_in_sync(admin: AIOKafkaAdminClient, topics: list[str]) -> bool:
    try:
        described = await admin.describe_topics(topics)
    except KafkaError:
        return False  # the node asked may be the one that is down
    for topic in described:
        if topic["error_code"] != 0:
            return False
        if any(len(p["isr"]) < CLUSTER_SIZE for p in topic["partitions"]):
            return False
    return True


async def list_topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        return sorted(await admin.list_topics())
    finally:
        await admin.close()


# --- workers -------------------------------------------------------------------------------------


def member_settings(base: Settings, index: int, data_root: Path, *, static: bool) -> Settings:
    """Worker `index` of a group: its own data dir and web port; with `static`, its own stable
    group.instance.id (PROOFRECON_KAFKA_INSTANCE_ID), as a host name would give it."""
    kafka = base.kafka.model_copy(
        update={"instance_id": f"{base.kafka.app_id}-worker-{index}" if static else None}
    )
    web = base.web.model_copy(update={"port": free_port()})
    return base.model_copy(
        update={"data_dir": data_root / f"worker-{index}", "kafka": kafka, "web": web}
    )


@dataclass
class Member:
    """One worker slot: its process, whether it is meant to be down, what happened to it."""

    index: int
    process: WorkerProcess
    meant_down: bool = False
    frozen: bool = False
    starts: int = 0
    unplanned_exits: list[int] = field(default_factory=list)
    cpu_before: float = 0.0  # CPU seconds of earlier incarnations (a restart starts from zero)
    cpu_last: float = 0.0  # the last sample of this incarnation's CPU seconds


class WorkerFleet:
    """Workers of one consumer group, each in its own process, and a supervisor's restarts."""

    def __init__(
        self,
        settings: Sequence[Settings],
        log_dir: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        # The supervisor runs beside the faults (in another thread): one change at a time.
        self._lock = threading.RLock()
        self.members = [
            Member(i, WorkerProcess(s, log_dir / f"worker-{i}.log", extra_env))
            for i, s in enumerate(settings)
        ]

    def __len__(self) -> int:
        return len(self.members)

    def process(self, index: int) -> WorkerProcess:
        return self.members[index].process

    @property
    def urls(self) -> list[str]:
        return [m.process.url for m in self.members]

    def start(self, timeout: float = 180.0) -> None:
        """Launch every worker side by side, then wait until each is ready."""
        for member in self.members:
            self._launch(member)
        for member in self.members:
            member.process.wait_ready(timeout)

    def _launch(self, member: Member) -> None:
        with self._lock:
            self.sample_cpu()
            member.cpu_before += member.cpu_last
            member.cpu_last = 0.0
            member.process.launch()
            member.starts += 1
            member.frozen = False
            member.meant_down = False

    def kill(self, index: int) -> None:
        with self._lock:
            self.sample_cpu()
            member = self.members[index]
            member.meant_down = True
        member.process.kill()

    def stop(self, index: int) -> None:
        """SIGTERM and wait for the exit (a graceful stop)."""
        member = self.members[index]
        with self._lock:
            member.meant_down = True
        self.thaw(index)
        member.process.stop()

    def restart(self, index: int, *, wait: bool = True, timeout: float = 180.0) -> None:
        member = self.members[index]
        self._launch(member)
        if wait:
            member.process.wait_ready(timeout)

    def freeze(self, index: int) -> None:
        """SIGSTOP: the process keeps its sockets but does nothing, as in a long GC or VM pause."""
        member = self.members[index]
        assert member.process.proc is not None
        member.process.proc.send_signal(signal.SIGSTOP)
        member.frozen = True

    def thaw(self, index: int) -> None:
        member = self.members[index]
        if member.frozen and member.process.proc is not None:
            member.process.proc.send_signal(signal.SIGCONT)
        member.frozen = False

    def supervise(self) -> list[int]:
        """Restart every worker that exited without being told to (as systemd or Kubernetes
        would); returns their indexes. Call it now and then."""
        restarted = []
        with self._lock:
            for member in self.members:
                proc = member.process.proc
                if member.meant_down or proc is None or proc.poll() is None:
                    continue
                member.unplanned_exits.append(proc.returncode)
                self._launch(member)
                restarted.append(member.index)
        return restarted

    def stop_all(self) -> None:
        with self._lock:
            for member in self.members:
                member.meant_down = True
        for member in self.members:
            self.thaw(member.index)
        for member in self.members:
            member.process.stop()

    def sample_cpu(self) -> None:
        """Record each live worker's CPU time (a killed one's last sample is what it used)."""
        for member in self.members:
            proc = member.process.proc
            if proc is not None and proc.poll() is None:
                member.cpu_last = max(member.cpu_last, process_cpu_seconds(proc.pid))

    def cpu_seconds(self, index: int) -> float:
        """CPU seconds used by every incarnation of worker `index`, as last sampled."""
        self.sample_cpu()
        member = self.members[index]
        return member.cpu_before + member.cpu_last


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) of a live process; 0.0 once it is gone. Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def replication(bootstrap: str, topics: list[str]) -> dict[str, tuple[int, int]]:
    """Topic -> (replicas of its partitions, at least; its effective min.insync.replicas, the
    broker's default included)."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
        replicas = {t["topic"]: min(len(p["replicas"]) for p in t["partitions"]) for t in described}
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in topics]
        min_isr: dict[str, int] = {}
        for response in await admin.describe_configs(resources):
            for resource in response.to_object()["resources"]:
                for entry in resource["config_entries"]:
                    if entry["config_names"] == "min.insync.replicas":
                        min_isr[resource["resource_name"]] = int(entry["config_value"])
        return {name: (replicas.get(name, 0), min_isr.get(name, 0)) for name in topics}
    finally:
        await admin.close()
