"""What every benchmark shares: the result type, isolated settings, a worker, load, metrics, output.

A benchmark module exposes `async def run(quick: bool) -> BenchResult`; `python -m bench` runs them
(bench/__main__.py). Every run gets its own topics, consumer group, data dir and web port (like the
tests' `build_test_settings`), so runs never see each other's messages, and deletes its topics at
the end (the broker is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from devkit.mints import free_port
from devkit.processes import WorkerProcess
from devkit.wallet import CashuWallet, Scenario, WalletProof
from streams.client import token_status_event
from streams.core.kafka import client_kwargs, delete_topics
from streams.core.settings import Settings, TopicSettings, load_settings

REPO = Path(__file__).resolve().parents[1]
# Where results land (git-ignored); PROOFRECON_BENCH_RESULTS elsewhere, e.g. for the smoke test.
RESULTS = Path(os.environ.get("PROOFRECON_BENCH_RESULTS") or REPO / "bench" / "results")
LOGS = RESULTS / "logs"
KAFKA = os.environ.get("PROOFRECON_TEST_KAFKA", "127.0.0.1:9092")
STACK_MINT = os.environ.get("PROOFRECON_TEST_MINT", "http://127.0.0.1:3338").rstrip("/")
# Set to a directory to profile every bench worker (one file per worker start; see BenchWorker).
PROFILE_ENV = "PROOFRECON_BENCH_PROFILE_DIR"
PYSPY_ENV = "PROOFRECON_BENCH_PYSPY"
PYSPY_RATE_ENV = "PROOFRECON_BENCH_PYSPY_RATE"
LEDGER_COUNTER = "proofrecon_ledger_proof_updates_total"

# aiokafka warns while a fresh topic elects its leaders; it retries, and the noise hides progress.
logging.getLogger("aiokafka").setLevel(logging.ERROR)

TOPIC_FIELDS = TopicSettings.topic_fields()


# --- results -------------------------------------------------------------------------------------


@dataclass
class BenchResult:
    """One measured figure against its target; `more` holds further rows of the same benchmark.

    `ratio` is always value / baseline (say in `details` what the baseline is). `passed` is None
    when there is no target to meet (an informational figure) or the check was not covered.
    """

    name: str
    metric: str
    value: float | None
    unit: str
    baseline: float | None
    ratio: float | None
    target: str
    passed: bool | None
    details: dict[str, Any] = field(default_factory=dict)
    more: list[BenchResult] = field(default_factory=list)

    def rows(self) -> list[BenchResult]:
        return [self, *self.more]

    @property
    def ok(self) -> bool:
        """False if any row missed its target."""
        return all(row.passed is not False for row in self.rows())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def at_least(value: float | None, threshold: float) -> bool:
    return value is not None and value >= threshold


def at_most(value: float | None, threshold: float) -> bool:
    return value is not None and value <= threshold


def ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or not baseline:
        return None
    return round(value / baseline, 3)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (as bench_gateway.py computes it); 0.0 for no values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def summary_ms(values_s: Sequence[float]) -> dict[str, float | int]:
    """Latency figures in ms from durations in seconds."""
    ms = [v * 1000 for v in values_s]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 0.5), 2),
        "p90_ms": round(percentile(ms, 0.9), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "max_ms": round(max(ms), 2) if ms else 0.0,
        "mean_ms": round(sum(ms) / len(ms), 2) if ms else 0.0,
    }


def machine() -> dict[str, Any]:
    """What a reader needs to judge a figure: the machine, how busy it was, what was overridden."""
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "overrides": cli_overrides(),
    }


def write_json(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(payload, indent=2, default=str))
    return out


def recorded(
    name: str, data: dict[str, Any], result_of: Callable[[dict[str, Any]], BenchResult]
) -> BenchResult:
    """Write one run's data to bench/results/ and return its result, which points at the file."""
    out = write_json(f"bench_{name}", data)
    result = result_of(data)
    result.details["json"] = str(out)
    return result


def fmt_number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def verdict(passed: bool | None) -> str:
    return {True: "PASS", False: "MISS", None: "INFO"}[passed]


def format_table(results: Iterable[BenchResult]) -> str:
    header = ("bench", "metric", "target", "measured", "baseline", "ratio", "")
    lines = [header]
    for result in results:
        for row in result.rows():
            lines.append(
                (
                    row.name,
                    row.metric,
                    row.target,
                    f"{fmt_number(row.value)} {row.unit}".strip(),
                    f"{fmt_number(row.baseline)} {row.unit}".strip() if row.baseline else "-",
                    f"{row.ratio:.3g}x" if row.ratio is not None else "-",
                    verdict(row.passed),
                )
            )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines
    )


def say(message: str) -> None:
    """Progress goes to stderr, so stdout keeps only the tables."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- isolated settings ---------------------------------------------------------------------------


# Settings overrides from the command line (`--set theme.field=value`), applied over each
# benchmark's own: for experiments such as `--set preflight.batch_within_ms=50`.
_OVERRIDES: dict[str, dict[str, Any]] = {}


def set_overrides(pairs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Parse `theme.field=value` pairs (values as JSON when they parse, else strings)."""
    _OVERRIDES.clear()
    for pair in pairs:
        path, sep, raw = pair.partition("=")
        theme, dot, name = path.partition(".")
        if not sep or not dot:
            raise SystemExit(f"--set wants theme.field=value, not {pair!r}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        _OVERRIDES.setdefault(theme, {})[name] = value
    return dict(_OVERRIDES)


def cli_overrides() -> dict[str, dict[str, Any]]:
    return {theme: dict(values) for theme, values in _OVERRIDES.items()}


def add_set_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="THEME.FIELD=VALUE",
        help="override a worker setting, e.g. preflight.batch_within_ms=50 (repeatable)",
    )


def new_run_id() -> str:
    return uuid.uuid4().hex[:10]


def clear_proofrecon_env() -> None:
    """A developer's PROOFRECON_* variables must not change what a benchmark measures."""
    for key in list(os.environ):
        keep = ("PROOFRECON_TEST_", "PROOFRECON_BENCH_", "PROOFRECON_MINT_PYTHON")
        if key.startswith("PROOFRECON_") and not key.startswith(keep):
            del os.environ[key]


def topic_prefix(run_id: str) -> str:
    return f"b{run_id}."


def bench_settings(run_id: str, data_dir: Path, **extra: Any) -> Settings:
    """Settings of one run: own topics, consumer group, data dir and web port (sweep off)."""
    clear_proofrecon_env()
    topics = {f: f"{topic_prefix(run_id)}{f.replace('_', '-')}" for f in TOPIC_FIELDS}
    topics.update(extra.pop("topics", {}))
    themes: dict[str, Any] = {
        "topics": topics,
        "kafka": {"bootstrap_servers": KAFKA, "app_id": f"proofrecon-bench-{run_id}"},
        "mint": {"allowlist": [STACK_MINT]},
        "web": {"port": free_port()},
        # The sweep would spend mint budget and CPU in the background of what is measured.
        "sweep": {"enabled": False},
    }
    for layer in (extra.pop("themes", {}), _OVERRIDES):
        for theme, values in layer.items():
            themes.setdefault(theme, {}).update(values)
    return load_settings(data_dir=data_dir, **themes, **extra)


@contextlib.contextmanager
def scratch_dir(name: str) -> Iterator[Path]:
    """A temporary directory for one run (kept if PROOFRECON_BENCH_KEEP is set)."""
    path = Path(tempfile.mkdtemp(prefix=f"proofrecon-bench-{name}-"))
    try:
        yield path
    finally:
        if not os.environ.get("PROOFRECON_BENCH_KEEP"):
            shutil.rmtree(path, ignore_errors=True)


async def check_stack(mint_url: str = STACK_MINT) -> None:
    """Fail early, with the fix, when the local stack is down."""
    host, port = KAFKA.rsplit(":", 1)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 3)
        writer.close()
    except (OSError, TimeoutError):
        raise SystemExit(f"Kafka at {KAFKA} is not reachable: run `make stack-up`") from None
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            (await http.get(f"{mint_url}/v1/info")).raise_for_status()
    except httpx.HTTPError:
        raise SystemExit(f"the mint at {mint_url} is not reachable: run `make stack-up`") from None


# --- Kafka ---------------------------------------------------------------------------------------


async def create_topics(settings: Settings, names: Sequence[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(**client_kwargs(settings.kafka), request_timeout_ms=15_000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        await admin.close()


async def delete_run_topics(settings: Settings, run_id: str) -> None:
    """Delete this run's topics and Faust's internal ones (named after the run's app id)."""
    prefixes = (topic_prefix(run_id), settings.kafka.app_id)
    try:
        await delete_topics(settings.kafka, lambda name: name.startswith(prefixes))
    except Exception as exc:  # cleanup is a courtesy to the shared broker, never a failure
        say(f"could not delete the run's topics: {exc}")


@contextlib.asynccontextmanager
async def producer(settings: Settings, **options: Any) -> AsyncIterator[AIOKafkaProducer]:
    prod = AIOKafkaProducer(**client_kwargs(settings.kafka), **options)
    await prod.start()
    try:
        yield prod
    finally:
        await prod.stop()


async def produce_all(
    settings: Settings, topic: str, records: Iterable[tuple[bytes | None, bytes]]
) -> int:
    """Publish `records` (key, value) as fast as the producer batches them; returns the count."""
    count = 0
    options = {"linger_ms": 20, "max_batch_size": 512 * 1024, "acks": 1}
    async with producer(settings, **options) as prod:
        futures = []
        for key, value in records:
            futures.append(await prod.send(topic, key=key, value=value))
            count += 1
        await prod.flush()
        await asyncio.gather(*futures)
    return count


# --- load ----------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    sent: int
    elapsed_s: float
    max_lag_ms: float  # how far the sender fell behind its schedule (a busy driver lowers load)

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s else 0.0


async def open_loop(
    rate: float, duration_s: float, fire: Callable[[int], Coroutine[Any, Any, None]]
) -> LoadReport:
    """Start `fire(i)` at t0 + i/rate without waiting for earlier calls to finish.

    Open loop: a slow answer never lowers the offered rate, so latencies are not flattered by
    the client backing off (coordinated omission). Returns once every call has finished.
    """
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    started = loop.time()
    max_lag = 0.0
    total = int(rate * duration_s)
    for i in range(total):
        due = started + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        max_lag = max(max_lag, loop.time() - due)
        task = asyncio.create_task(fire(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    elapsed = loop.time() - started
    await asyncio.gather(*list(tasks))
    return LoadReport(total, elapsed, round(max_lag * 1000, 1))


# --- the worker ----------------------------------------------------------------------------------


class BenchWorker(WorkerProcess):
    """`proofrecon worker` in a subprocess, optionally profiled (PROOFRECON_BENCH_PROFILE_DIR).

    With PROOFRECON_BENCH_PYSPY (a py-spy binary; the dev extras install one in the venv) the
    worker runs under `py-spy record` from its first instruction (start-up and recovery
    included), every thread, into collapsed stacks (PROOFRECON_BENCH_PYSPY_RATE samples/s,
    default 100); without it the worker runs under cProfile, which sees only the main thread and
    counts each coroutine resumption as a call. Its log goes to bench/results/logs/ (git-ignored).
    `pid` is the worker's own process either way.
    """

    def __init__(self, settings: Settings, name: str) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        super().__init__(settings, LOGS / f"{name}-{settings.kafka.app_id}.log")
        self.name = name
        self.starts = 0

    def argv(self) -> list[str]:
        command = [sys.executable, "-m", "streams.cli.main", self.command]
        if not os.environ.get(PROFILE_ENV):
            return super().argv()
        out = self._profile_out()
        py_spy = os.environ.get(PYSPY_ENV)
        if py_spy:
            rate = os.environ.get(PYSPY_RATE_ENV, "100")
            record = [py_spy, "record", "--rate", rate, "--format", "raw", "--nonblocking"]
            return [*record, "-o", f"{out}.txt", "--", *command]
        return [sys.executable, "-m", "cProfile", "-o", f"{out}.prof", *command[1:]]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        if not os.environ.get(PYSPY_ENV) or not os.environ.get(PROFILE_ENV):
            return self.proc.pid
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return int(children.split()[0])  # the worker, py-spy's only child

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is not None and self.proc.poll() is None and self.pid != self.proc.pid:
            os.kill(self.pid, sig)  # the worker: py-spy writes its profile once it exits
            with contextlib.suppress(subprocess.TimeoutExpired):
                return self.proc.wait(timeout)
        return super().stop(sig, timeout)

    def _profile_out(self) -> Path:
        return Path(os.environ[PROFILE_ENV]) / f"{self.name}-{self.starts}"

    def start(self, timeout: float = 120.0) -> Self:
        if os.environ.get(PROFILE_ENV):
            self.starts += 1
            self._profile_out().parent.mkdir(parents=True, exist_ok=True)
            say(f"worker profiled into {self._profile_out()}.*")
        return super().start(timeout)


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, name: str) -> AsyncIterator[BenchWorker]:
    worker = BenchWorker(settings, name)
    await asyncio.to_thread(worker.start)
    try:
        yield worker
    finally:
        await asyncio.to_thread(worker.stop)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process used so far; Linux /proc only.

    On a shared machine a rate swings with the neighbours' load, CPU per unit of work much less.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def metric_total(http: httpx.AsyncClient, url: str, sample: str) -> float | None:
    """Sum of every labelled sample named `sample` at `url`/metrics; None if the worker is down."""
    try:
        response = await http.get(f"{url}/metrics")
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    total = 0.0
    for family in text_string_to_metric_families(response.text):
        total += sum(s.value for s in family.samples if s.name == sample)
    return total


async def wait_metric(url: str, sample: str, target: float, timeout: float) -> float:
    """Poll `sample` until it reaches `target`; returns the value (raises after `timeout`)."""
    deadline = time.monotonic() + timeout
    value: float | None = None
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() < deadline:
            value = await metric_total(http, url, sample)
            if value is not None and value >= target:
                return value
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{sample} reached {value}, not {target}, within {timeout} s")


# --- wallet data ---------------------------------------------------------------------------------


def npub() -> str:
    return f"npub1{uuid.uuid4().hex}{uuid.uuid4().hex[:26]}"  # a bech32 npub's length (63)


Token = tuple[str, list[WalletProof]]


def tokens_of(proofs: Sequence[WalletProof], size: int) -> list[Token]:
    """One owner (npub) per whole token of `size` proofs; a melt spends one whole token."""
    chunks = [list(proofs[i : i + size]) for i in range(0, len(proofs), size)]
    return [(npub(), chunk) for chunk in chunks if len(chunk) == size]


def proof_ref(proof: WalletProof) -> dict[str, Any]:
    return {"Y": proof.Y, "amount": proof.amount, "keyset_id": proof.keyset_id}


def token_event(
    owner: str,
    token_id: str,
    mint_url: str,
    proofs: list[dict[str, Any]],
    *,
    status: str = "unspent",
    version: int = 1,
) -> bytes:
    """A `wallet.token-status` event as a wallet's outbox relay would publish it."""
    event = token_status_event(
        owner, token_id, mint_url, status, proofs, version=version, transaction_type="receive"
    )
    return json.dumps(event).encode()


def melt_request(
    owner: str, mint_url: str, proofs: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    return {
        "request_id": f"req-{uuid.uuid4().hex}",
        "npub": owner,
        "mint_url": mint_url,
        "proofs": proofs,
        "requested_at": datetime.now(UTC).isoformat(),
        **extra,
    }


def real_scenario(mint_url: str, *, unspent: int, spent_elsewhere: int = 0) -> Scenario:
    """Real proofs minted (and some spent from a second wallet) with Nutshell's wallet."""
    with tempfile.TemporaryDirectory(prefix="proofrecon-bench-wallet-") as db:
        wallet = CashuWallet(mint_url, Path(db))
        return wallet.scenario(unspent=unspent, spent_elsewhere=spent_elsewhere, amount=2)


async def record_tokens(
    settings: Settings,
    worker: WorkerProcess,
    tokens: Sequence[tuple[str, str, list[WalletProof]]],
    mint_url: str,
) -> None:
    """Publish (npub, status, proofs) tokens and wait until a fresh worker's ledger applied them."""
    records = []
    for owner, status, proofs in tokens:
        token_id = f"tok-{uuid.uuid4().hex[:12]}"
        refs = [proof_ref(p) for p in proofs]
        records.append(
            (owner.encode(), token_event(owner, token_id, mint_url, refs, status=status))
        )
    await produce_all(settings, settings.topics.token_status, records)
    total = sum(len(proofs) for _, _, proofs in tokens)
    await wait_metric(worker.url, LEDGER_COUNTER, total, timeout=60)
