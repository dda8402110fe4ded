"""The verifier's stateful checks: the ledger against a replay of `wallet.token-status`, and
ClickHouse against the output topics. `devkit.verifier` runs them with the rest.

Everything here reads what the system left behind, never what the load believes it sent: the
ledger replay is computed from the topic itself, with the product's own pure ledger functions
(`apply_token_event`, `ProofIndex`), exactly as a fresh worker would build it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from devkit.processes import REPO, process_env
from streams.core.contracts import parse_token_status
from streams.core.errors import ContractError
from streams.core.kafka import client_kwargs
from streams.core.settings import Settings, load_settings
from streams.recon.ledger import ProofIndex, TokenRecord, apply_token_event, split_key, token_key


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    def json(self) -> Any:
        try:
            return json.loads(self.value) if self.value else None
        except ValueError:
            return None


async def read_topic(settings: Settings, topic: str) -> list[Record]:
    """Every record of `topic` from its start up to its end as of now, in partition order."""
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings.kafka),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer._client.force_metadata_update()  # a topic created a moment ago
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()
            ]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Record] = []
        while await _behind(consumer, ends):
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, items in batch.items():
                records += [
                    Record(tp.partition, r.offset, r.key, r.value)
                    for r in items
                    if r.offset < ends[tp]
                ]
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False


async def committed_offsets(settings: Settings, group: str, topic: str) -> dict[int, int]:
    """Partition -> the offset `group` committed on `topic` (absent: nothing committed)."""
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings.kafka), group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        offsets = {}
        for partition in sorted(partitions):
            committed = await consumer.committed(TopicPartition(topic, partition))
            if committed is not None:
                offsets[partition] = committed
        return offsets
    finally:
        await consumer.stop()


# --- the ledger ----------------------------------------------------------------------------------


@dataclass
class LedgerReplay:
    """The tokens table a fresh worker would build from `wallet.token-status`."""

    tokens: dict[str, TokenRecord] = field(default_factory=dict)  # npub|token_id -> record
    applied: int = 0
    ignored: int = 0
    invalid: int = 0

    def rows(self) -> Iterable[tuple[str, dict[str, Any]]]:
        return ((key, token.to_dict()) for key, token in self.tokens.items())

    def proof_views(self) -> dict[tuple[str, str], dict[str, Any] | None]:
        """(npub, Y) -> the ledger's record of the proof, for every Y any token ever listed."""
        index = ProofIndex()
        index.rebuild(self.rows())
        views: dict[tuple[str, str], dict[str, Any] | None] = {}
        for key, token in self.tokens.items():
            npub, _ = split_key(key)
            for y in token.ys or ():
                views[(npub, y)] = None
        for npub, y in list(views):
            owner = index.token_of(npub, y)
            record = self.tokens[token_key(npub, owner)].proof(owner, y) if owner else None
            views[(npub, y)] = record.to_dict() if record else None
        return views


def replay_ledger(records: Iterable[Record]) -> LedgerReplay:
    replay = LedgerReplay()
    for record in records:
        try:
            event = parse_token_status(record.value or b"")
        except ContractError:
            replay.invalid += 1
            continue
        if record.key != event.npub.encode():
            replay.invalid += 1  # the worker dead-letters it: never in the ledger
            continue
        key = token_key(event.npub, event.token_id)
        update = apply_token_event(event, replay.tokens.get(key), seq=record.offset)
        if update.ignored or update.token is None:
            replay.ignored += 1
            continue
        replay.tokens[key] = update.token
        replay.applied += 1
    return replay


def ever_listed(records: Iterable[Record]) -> set[tuple[str, str]]:
    """Every (npub, Y) a token-status event listed: deleted tokens' proofs must read as absent."""
    listed: set[tuple[str, str]] = set()
    for record in records:
        try:
            event = parse_token_status(record.value or b"")
        except ContractError:
            continue
        listed.update((event.npub, p.y) for p in event.proofs)
    return listed


# Not a token: the ledger's position in its partition of wallet.token-status (a row per partition).
POSITION_KEY_PREFIX = "\x00"


def changelog_state(records: Iterable[Record]) -> dict[str, dict[str, Any]]:
    """The tokens changelog compacted by hand: the last value of every token key (deletes drop
    it); the ledger's position rows are left out."""
    state: dict[str, dict[str, Any]] = {}
    for record in records:
        key = json.loads(record.key) if record.key else None
        if not isinstance(key, str) or key.startswith(POSITION_KEY_PREFIX):
            continue
        value = record.json()
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return state


def ledger_positions(records: Iterable[Record]) -> dict[int, int]:
    """Partition -> the offset of the last wallet.token-status event the ledger applied there,
    as its changelog says (the tokens table's partitions are the topic's)."""
    positions: dict[int, int] = {}
    for record in records:
        key = json.loads(record.key) if record.key else None
        value = record.json()
        if isinstance(key, str) and key.startswith(POSITION_KEY_PREFIX) and isinstance(value, dict):
            positions[record.partition] = int(value.get("offset", -1))
    return positions


def compare_changelog(replay: LedgerReplay, changelog: dict[str, dict[str, Any]]) -> list[str]:
    """Keys where the stored table differs from the replay (empty: they are equal)."""
    expected = {key: token.to_dict() for key, token in replay.tokens.items()}
    wrong = [k for k in expected if changelog.get(k) != expected[k]]
    wrong += [k for k in changelog if k not in expected]
    return wrong


async def worker_views(
    urls: list[str], keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], list[dict[str, Any] | None]]:
    """Each worker's GET /v1/proofs/{Y}?npub= ledger view of every (npub, Y)."""
    views: dict[tuple[str, str], list[dict[str, Any] | None]] = {}
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(timeout=15) as http:

        async def view(url: str, npub: str, y: str) -> dict[str, Any] | None:
            async with limit:
                response = await http.get(f"{url}/v1/proofs/{y}", params={"npub": npub})
                response.raise_for_status()
                ledger: dict[str, Any] | None = response.json()["ledger"]
                return ledger

        for npub, y in keys:
            views[(npub, y)] = list(await asyncio.gather(*(view(u, npub, y) for u in urls)))
    return views


def compare_views(
    expected: dict[tuple[str, str], dict[str, Any] | None],
    seen: dict[tuple[str, str], list[dict[str, Any] | None]],
) -> list[str]:
    """Proofs some worker shows otherwise than the replay. Exactly the owner of the npub's
    partition knows a proof; every other worker answers null."""
    wrong = []
    for key, want in expected.items():
        known = [v for v in seen.get(key, []) if v is not None]
        if (want is None and known) or (want is not None and known != [want]):
            wrong.append(f"{key[0][:12]}…/{key[1][:12]}…: want {want}, workers {known}")
    return wrong


# --- ClickHouse ----------------------------------------------------------------------------------


def clickhouse_counts(settings: Settings) -> dict[str, Any]:
    """Rows and ids of every raw table, and the hourly sums, read by a child process: embedded
    ClickHouse is one path per process, and the caller (a test session) may have opened another.

    Call only once no process holds the chDB path (stop the sink first).
    """
    done = subprocess.run(
        [sys.executable, "-m", "devkit.verify_state", "clickhouse"],
        env=process_env(settings),
        capture_output=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise RuntimeError(f"reading ClickHouse failed:\n{done.stderr.decode()[-3000:]}")
    counts: dict[str, Any] = json.loads(done.stdout)
    for table in counts["tables"].values():
        table["ids"] = set(table["ids"])
    return counts


def _read_clickhouse(settings: Settings) -> dict[str, Any]:
    from sinks.clickhouse import ClickHouseStore
    from sinks.rows import SPECS

    store = ClickHouseStore(settings, name="reliability-verifier")
    try:
        tables: dict[str, Any] = {}
        for kind, spec in SPECS.items():
            table, key = store.table(spec.table), spec.id_field
            rows = store.query(f"SELECT {key} AS id FROM {table}")  # noqa: S608 - our names
            ids = [str(r["id"]) for r in rows]
            tables[kind] = {"table": spec.table, "rows": len(ids), "ids": ids}
        return {"tables": tables, "hourly": _hourly_sums(store)}
    finally:
        store.close()


def _hourly_sums(store: Any) -> dict[str, int]:
    queries = {
        "discrepancy_hourly": "SELECT sum(discrepancies) + sum(resolved) AS n FROM {t}",
        "discrepancy_hourly_opened": "SELECT sum(discrepancies) AS n FROM {t}",
        "proof_checks_hourly": "SELECT sum(checks) AS n FROM {t}",
        "proof_checks_hourly_proofs": "SELECT sum(proofs_checked) AS n FROM {t}",
        "preflight_hourly": "SELECT sum(answers) AS n FROM {t}",
        "severity_hourly": "SELECT sum(discrepancies) AS n FROM {t}",
        "severity_hourly_proofs": "SELECT sum(proofs_checked) AS n FROM {t}",
    }
    sums = {}
    for name, sql in queries.items():
        table = store.table(name.removesuffix("_opened").removesuffix("_proofs"))
        sums[name] = int(store.query(sql.format(t=table))[0]["n"] or 0)
    raw = store.table("proof_checks")
    sums["proof_checks_raw_proofs"] = int(
        store.query(f"SELECT sum(proofs_checked) AS n FROM {raw}")[0]["n"] or 0  # noqa: S608
    )
    return sums


if __name__ == "__main__" and sys.argv[1:] == ["clickhouse"]:
    print(json.dumps(_read_clickhouse(load_settings())))
