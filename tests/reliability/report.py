"""The campaign's table: per fault, how it was injected, how often, the load during it, and what
happened to the requests sent while it lasted (answered, lost, conflicting)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from devkit.verifier import Report
from tests.reliability.faults import Phase


def phase_row(
    phase: Phase, report: Report, melts: dict[str, Any], token_rate: float
) -> dict[str, Any]:
    assert report.outputs is not None
    answers = report.outputs.answers
    sent = [rid for rid, m in melts.items() if phase.start <= m.sent_at < phase.end]
    answered = [rid for rid in sent if rid in answers]
    conflicting = [
        rid for rid in answered if len({(a["verdict"], a.get("code")) for a in answers[rid]}) > 1
    ]
    seconds = max(phase.end - phase.start, 1e-9)
    return {
        "fault": phase.fault,
        "injected": phase.injected,
        "times": phase.times,
        "seconds": round(seconds, 1),
        "melts_per_s": round(len(sent) / seconds, 1),
        "token_events_per_s": token_rate,
        "sent": len(sent),
        "answered": len(answered),
        "lost": len(sent) - len(answered),
        "conflicting": len(conflicting),
        "answered_twice": sum(1 for rid in answered if len(answers[rid]) > 1),
        **phase.figures,
    }


def markdown(rows: list[dict[str, Any]], duplicate_rows: int | None) -> str:
    head = (
        "| fault | injected | times | load during it | requests answered / lost / conflicting "
        "| answered twice | duplicate rows |\n|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        load = f"{r['melts_per_s']} melts/s, {r['token_events_per_s']} token events/s"
        outcome = f"{r['answered']} / {r['lost']} / {r['conflicting']}"
        dupes = "-" if duplicate_rows is None else str(duplicate_rows)
        lines.append(
            f"| {r['fault']} | {r['injected']} | {r['times']} | {load} | {outcome} "
            f"| {r['answered_twice']} | {dupes} |"
        )
    return "\n".join(lines)


def write_artifact(directory: Path, scale: str, data: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"reliability-{scale}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(data, indent=2, default=str))
    return out
