"""The verifier of a fault campaign: reads every output topic from the start, asks the mints and
the workers, reads ClickHouse, and checks the invariants. One line per invariant, then
`ALL INVARIANTS HOLD` or `INVARIANTS FAILED: <names>`.

    evidence = Evidence(settings, melts=book.melts, fault_windows=..., truth=..., worker_urls=...)
    report = await verify(evidence)            # the sink stopped first: chDB is one process
    print(report.text())

The invariants:

- answered: every melt request with a readable request_id has at least one verdict;
- agreed: all verdicts of one request are the same (the load keeps a request's proofs unchanged
  between its possible replays: see devkit/load.py);
- correct: each verdict is the one its class calls for, or a BLOCK on unknown truth
  (MINT_UNAVAILABLE, DEADLINE_EXCEEDED) while the mint was faulty;
- never_cleared_spent: no melt holding a proof the mint reports SPENT or PENDING was cleared
  (the mint is asked directly, not through the fault proxy);
- never_cleared_blind: no melt at the faulty mint was cleared while it was down, slow, limiting or
  answering garbage;
- corrected: every HIGH and every pending→spent discrepancy opened has its correction;
- dead_letters: every invalid request, and nothing valid, is on the dead-letter topic;
- clickhouse_unique, clickhouse_hourly, clickhouse_complete: no id twice in any table, the hourly
  tables count exactly the distinct events, every event on a topic is in its table;
- ledger_changelog, ledger_workers: the tokens table (its changelog) and every worker's view of
  every proof equal a replay of `wallet.token-status`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from devkit.load import CLASSES, UNKNOWN_TRUTH_CODES, MeltClass, SentMelt
from devkit.verify_state import (
    Record,
    changelog_state,
    clickhouse_counts,
    committed_offsets,
    compare_changelog,
    compare_views,
    ever_listed,
    read_topic,
    replay_ledger,
    worker_views,
)
from streams.core.contracts import extract_request_id
from streams.core.settings import Settings, load_settings

# An answer stamped this soon after a fault began may rest on the mint's last honest reply.
FAULT_GRACE_S = 1.0
SINK_KINDS = ("discrepancies", "preflight_results", "corrections", "proof_checks")
SINK_IDS = {
    "discrepancies": "event_id",
    "preflight_results": "request_id",
    "corrections": "command_id",
    "proof_checks": "event_id",
}


@dataclass(frozen=True)
class FaultWindow:
    fault: str
    start: float  # unix seconds
    end: float
    recovered: float = 0.0  # when the pipeline cleared again (a breaker closes after the fault)


@dataclass
class Evidence:
    settings: Settings  # the workers' (topics, Kafka) and the sink's (its chDB path)
    melts: dict[str, SentMelt]  # what the load sent, by request_id
    truth: dict[str, str]  # Y -> state, asked of the real mints after the run
    fault_windows: list[FaultWindow]  # when the proxied mint was faulty
    faulty_mint: str  # the proxy's URL (the mint URL the faults apply to)
    worker_urls: list[str]
    clickhouse: bool = True


@dataclass
class Invariant:
    name: str
    holds: bool
    summary: str
    examples: list[str] = field(default_factory=list)

    def line(self) -> str:
        mark = "ok  " if self.holds else "FAIL"
        tail = f"  e.g. {'; '.join(self.examples[:3])}" if not self.holds and self.examples else ""
        return f"{mark} {self.name:<22} {self.summary}{tail}"


@dataclass
class Report:
    invariants: list[Invariant]
    figures: dict[str, Any]
    outputs: Outputs | None = None  # what was read, for the caller's own tables

    @property
    def holds(self) -> bool:
        return all(i.holds for i in self.invariants)

    def text(self) -> str:
        lines = [i.line() for i in self.invariants]
        failed = [i.name for i in self.invariants if not i.holds]
        lines.append(
            "ALL INVARIANTS HOLD" if not failed else f"INVARIANTS FAILED: {', '.join(failed)}"
        )
        return "\n".join(lines)


def check(name: str, bad: list[str], summary: str) -> Invariant:
    return Invariant(name, not bad, summary if not bad else f"{summary}; {len(bad)} wrong", bad[:5])


# --- the answers ---------------------------------------------------------------------------------


@dataclass
class Outputs:
    requests: list[Record]
    answers: dict[str, list[dict[str, Any]]]  # request_id -> every answer, in topic order
    discrepancies: list[dict[str, Any]]
    corrections: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]
    topic_ids: dict[str, set[str]]  # sink kind -> the distinct ids the sink has consumed
    token_status: list[Record]
    tokens_changelog: list[Record]


async def read_outputs(settings: Settings) -> Outputs:
    """Everything on the topics; the ids the sink is accountable for are those below the offsets
    its group committed (the workers go on writing sweep results after the sink stopped)."""
    t = settings.topics
    names = {kind: getattr(t, kind) for kind in SINK_KINDS}
    changelog = f"{settings.kafka.app_id}-tokens-changelog"
    read = await asyncio.gather(
        *(read_topic(settings, name) for name in names.values()),
        read_topic(settings, t.melt_requests),
        read_topic(settings, t.dead_letter),
        read_topic(settings, t.token_status),
        read_topic(settings, changelog),
    )
    sink_group = f"{settings.kafka.app_id}-clickhouse-sink"
    done = await asyncio.gather(
        *(committed_offsets(settings, sink_group, n) for n in names.values())
    )
    sunk = {
        kind: {
            str(r.json()[SINK_IDS[kind]]) for r in records if r.offset < upto.get(r.partition, 0)
        }
        for kind, records, upto in zip(names, read, done, strict=False)
    }
    by_kind = {
        kind: [r.json() for r in records] for kind, records in zip(names, read, strict=False)
    }
    answers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for answer in by_kind["preflight_results"]:
        answers[answer["request_id"]].append(answer)
    return Outputs(
        requests=read[4],
        answers=dict(answers),
        discrepancies=by_kind["discrepancies"],
        corrections=by_kind["corrections"],
        dead_letters=[r.json() for r in read[5]],
        topic_ids=sunk,
        token_status=read[6],
        tokens_changelog=read[7],
    )


def _unix(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def _faulty_at(evidence: Evidence, melt: SentMelt, stamp: str) -> bool:
    if melt.mint_url != evidence.faulty_mint:
        return False
    at = _unix(stamp)
    return any(w.start + FAULT_GRACE_S <= at <= w.end for w in evidence.fault_windows)


def _near_fault(evidence: Evidence, stamp: str, margin: float = 2.0) -> bool:
    """Within a fault window or before the pipeline cleared again after it. Each worker has its
    own circuit breaker: one opened during the fault fails fast for up to a cooldown after it,
    however soon another worker answered the campaign's probe (a 429 silence likewise ends only
    after the fault has)."""
    at = _unix(stamp)
    cooldown = evidence.settings.mint.breaker_cooldown_s + margin
    return any(
        w.start <= at <= max(w.end + cooldown, w.recovered + margin) for w in evidence.fault_windows
    )


def check_answers(evidence: Evidence, out: Outputs) -> list[Invariant]:
    named = {rid for r in out.requests if (rid := extract_request_id(r.value or b"")) is not None}
    unanswered = sorted(named - set(out.answers))
    not_on_topic = sorted(set(evidence.melts) - named)
    conflicting = [
        rid
        for rid, answers in out.answers.items()
        if len({(a["verdict"], a.get("code")) for a in answers}) > 1
    ]
    replayed = sum(1 for a in out.answers.values() if len(a) > 1)
    return [
        check(
            "answered",
            unanswered + [f"{r} never reached the topic" for r in not_on_topic],
            f"{len(named)} requests with a request_id, {len(named) - len(unanswered)} answered",
        ),
        check(
            "agreed",
            conflicting,
            f"{replayed} answered more than once, {len(conflicting)} with different verdicts",
        ),
        _check_correct(evidence, out),
    ]


def _check_correct(evidence: Evidence, out: Outputs) -> Invariant:
    wrong, blind, stray = [], 0, 0
    for rid, answers in out.answers.items():
        melt = evidence.melts.get(rid)
        if melt is None:
            continue
        spec = CLASSES[MeltClass(melt.melt_class)]
        for answer in answers:
            got = (answer["verdict"], answer.get("code"))
            if got == (spec.verdict, spec.code):
                continue
            if got[0] == "BLOCKED" and got[1] in UNKNOWN_TRUTH_CODES:
                blind += 1
                if _near_fault(evidence, answer["answered_at"]):
                    continue
                stray += 1
            wrong.append(f"{rid} ({melt.melt_class}): {got[0]}/{got[1]} at {answer['answered_at']}")
    summary = f"{blind} blocked on unknown truth ({stray} of them away from any mint fault)"
    return check("correct", wrong, f"every verdict its class's; {summary}")


def check_safety(evidence: Evidence, out: Outputs) -> list[Invariant]:
    spent, blind, cleared = [], [], 0
    for rid, answers in out.answers.items():
        melt = evidence.melts.get(rid)
        for answer in answers:
            if answer["verdict"] == "BLOCKED":
                continue
            cleared += 1
            if melt is None:
                spent.append(f"{rid}: cleared, but the load never sent it")
                continue
            states = {evidence.truth.get(y, "UNKNOWN") for y in melt.ys}
            if states & {"SPENT", "PENDING", "UNKNOWN"}:
                spent.append(f"{rid}: cleared holding {sorted(states)}")
            if _faulty_at(evidence, melt, answer["answered_at"]):
                blind.append(f"{rid}: cleared at {answer['answered_at']} while the mint was faulty")
    faults = ", ".join(sorted({w.fault for w in evidence.fault_windows})) or "none"
    return [
        check("never_cleared_spent", spent, f"{cleared} clearances, none on a SPENT/PENDING proof"),
        check(
            "never_cleared_blind", blind, f"no clearance at the mint during its faults ({faults})"
        ),
    ]


def check_corrections(out: Outputs) -> Invariant:
    corrected = {eid for c in out.corrections for eid in c["discrepancy_event_ids"]}
    due = [
        d
        for d in out.discrepancies
        if d.get("lifecycle", "OPENED") == "OPENED"
        and (d["severity"] == "HIGH" or d["type"] == "DB_PENDING_MINT_SPENT")
    ]
    missing = [
        f"{d['event_id']} ({d['type']}, {d['source']})"
        for d in due
        if d["event_id"] not in corrected
    ]
    opened = len({d["event_id"] for d in due})
    return check(
        "corrected", missing, f"{opened} HIGH or pending→spent discrepancies, each corrected"
    )


def check_dead_letters(evidence: Evidence, out: Outputs) -> Invariant:
    at = {(r.partition, r.offset): extract_request_id(r.value or b"") for r in out.requests}
    topic = evidence.settings.topics.melt_requests
    parked = {
        rid
        for d in out.dead_letters
        if d["source_topic"] == topic
        if (rid := at.get((d["partition"], d["offset"]))) is not None
    }
    invalid = {rid for rid, m in evidence.melts.items() if m.melt_class == MeltClass.INVALID}
    missing = [f"{rid} not dead-lettered" for rid in sorted(invalid - parked)]
    wrong = [
        f"{rid} (valid) dead-lettered" for rid in sorted((parked - invalid) & set(evidence.melts))
    ]
    return check(
        "dead_letters", missing + wrong, f"{len(invalid)} invalid requests parked, no valid one"
    )


# --- the ledger and ClickHouse -------------------------------------------------------------------


async def check_ledger(evidence: Evidence, out: Outputs) -> list[Invariant]:
    replay = replay_ledger(out.token_status)
    changelog = changelog_state(out.tokens_changelog)
    stored_wrong = compare_changelog(replay, changelog)
    expected = replay.proof_views()
    for key in ever_listed(out.token_status) - set(expected):
        expected[key] = None
    seen = await worker_views(evidence.worker_urls, expected)
    views_wrong = compare_views(expected, seen)
    applied = f"{replay.applied} applied, {replay.ignored} stale ignored"
    return [
        check(
            "ledger_changelog",
            stored_wrong,
            f"{len(replay.tokens)} tokens stored as a replay of {len(out.token_status)} events "
            f"({applied}) builds them",
        ),
        check(
            "ledger_workers",
            views_wrong,
            f"{len(expected)} proofs, each seen by its owner as replayed",
        ),
    ]


def check_clickhouse(evidence: Evidence, out: Outputs) -> tuple[list[Invariant], dict[str, Any]]:
    counts = clickhouse_counts(evidence.settings)
    tables, hourly = counts["tables"], counts["hourly"]
    dupes = [
        f"{t['table']}: {t['rows'] - len(t['ids'])} ids twice"
        for t in tables.values()
        if t["rows"] != len(t["ids"])
    ]
    lost = [
        f"{kind}: {len(out.topic_ids[kind] - tables[kind]['ids'])} of "
        f"{len(out.topic_ids[kind])} missing"
        for kind in SINK_KINDS
        if out.topic_ids[kind] - tables[kind]["ids"]
    ]
    rows = {kind: tables[kind]["rows"] for kind in SINK_KINDS}
    expected_hourly = {
        "discrepancy_hourly": rows["discrepancies"],
        "proof_checks_hourly": rows["proof_checks"],
        "preflight_hourly": rows["preflight_results"],
        "severity_hourly": hourly["discrepancy_hourly_opened"],
        "severity_hourly_proofs": 3 * hourly["proof_checks_raw_proofs"],
        "proof_checks_hourly_proofs": hourly["proof_checks_raw_proofs"],
    }
    off = [
        f"{name}: {hourly[name]} ≠ {want}"
        for name, want in expected_hourly.items()
        if hourly[name] != want
    ]
    total = sum(rows.values())
    figures = {
        "rows": rows,
        "duplicate_rows": sum(t["rows"] - len(t["ids"]) for t in tables.values()),
    }
    return [
        check("clickhouse_unique", dupes, f"{total} rows in 4 tables, no id twice"),
        check("clickhouse_hourly", off, "hourly tables count exactly the distinct events"),
        check("clickhouse_complete", lost, "every event on the output topics is in ClickHouse"),
    ], figures


# --- all of it -----------------------------------------------------------------------------------


async def verify(evidence: Evidence) -> Report:
    out = await read_outputs(evidence.settings)
    invariants = check_answers(evidence, out)
    invariants += check_safety(evidence, out)
    invariants += [check_corrections(out), check_dead_letters(evidence, out)]
    invariants += await check_ledger(evidence, out)
    figures: dict[str, Any] = {
        "requests": len(out.requests),
        "answers": sum(len(a) for a in out.answers.values()),
        "answered_more_than_once": sum(1 for a in out.answers.values() if len(a) > 1),
        "discrepancies": len(out.discrepancies),
        "corrections": len(out.corrections),
        "dead_letters": len(out.dead_letters),
        "token_events": len(out.token_status),
    }
    if evidence.clickhouse:
        stored, ch = await asyncio.to_thread(check_clickhouse, evidence, out)
        invariants += stored
        figures["clickhouse"] = ch
    return Report(invariants, figures, out)


# --- the command line: verify a campaign again from its evidence file -----------------------------


def evidence_to_json(evidence: Evidence, env: dict[str, str]) -> dict[str, Any]:
    return {
        "env": env,
        "melts": [m.__dict__ for m in evidence.melts.values()],
        "truth": evidence.truth,
        "fault_windows": [w.__dict__ for w in evidence.fault_windows],
        "faulty_mint": evidence.faulty_mint,
        "worker_urls": evidence.worker_urls,
    }


def evidence_from_json(
    data: dict[str, Any], make_settings: Callable[[dict[str, str]], Settings]
) -> Evidence:
    melts = {m["request_id"]: SentMelt(**m) for m in data["melts"]}
    windows = [FaultWindow(**w) for w in data["fault_windows"]]
    return Evidence(
        make_settings(data["env"]),
        melts,
        data["truth"],
        windows,
        data["faulty_mint"],
        data["worker_urls"],
    )


def _settings_from_env(env: dict[str, str]) -> Settings:
    import os

    os.environ.update(env)
    return load_settings()


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("evidence", type=Path, help="the campaign's evidence JSON")
    parser.add_argument("--no-clickhouse", action="store_true", help="skip the ClickHouse checks")
    args = parser.parse_args(list(argv) if argv is not None else None)
    evidence = evidence_from_json(json.loads(args.evidence.read_text()), _settings_from_env)
    evidence.clickhouse = not args.no_clickhouse
    report = asyncio.run(verify(evidence))
    print(report.text())
    return 0 if report.holds else 1


if __name__ == "__main__":
    sys.exit(main())
