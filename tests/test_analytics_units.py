"""Analytics' pure parts: `since` parsing, parameter checks, SQL parameters, CLI tables, report."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sinks.analytics.commands import HOURLY_COLUMNS, format_table
from sinks.analytics.queries import (
    AnalyticsQueryError,
    check_limit,
    check_mint,
    check_severity,
    export_query,
    hourly_query,
    resolve_since,
)
from sinks.analytics.report import render_report

NOW = datetime(2026, 3, 10, 14, 37, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", datetime(2026, 3, 9, 14, tzinfo=UTC)),
        ("90m", datetime(2026, 3, 10, 13, tzinfo=UTC)),
        ("7d", datetime(2026, 3, 3, 14, tzinfo=UTC)),
        ("2w", datetime(2026, 2, 24, 14, tzinfo=UTC)),
        ("2026-03-01T05:20:00Z", datetime(2026, 3, 1, 5, tzinfo=UTC)),
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
        (None, datetime(2026, 3, 9, 14, tzinfo=UTC)),
    ],
)
def test_since(text: str | None, expected: datetime) -> None:
    assert resolve_since(text, NOW) == expected


@pytest.mark.parametrize("bad", ["yesterday", "24", "h", "-5h", "1e3h", "24h; DROP TABLE x"])
def test_bad_since(bad: str) -> None:
    with pytest.raises(AnalyticsQueryError):
        resolve_since(bad, NOW)


def test_parameter_checks() -> None:
    assert check_mint(" https://mint.example/ ") == "https://mint.example"
    assert check_mint("") is None and check_severity(None) is None
    assert check_severity("high") == "HIGH"
    assert check_limit("5") == 5
    for call in (
        lambda: check_mint("ftp://x"),
        lambda: check_mint("http://a b"),
        lambda: check_severity("CRITICAL"),
        lambda: check_limit("0"),
        lambda: check_limit("x"),
        lambda: export_query("proofrecon", "system.users", NOW),
    ):
        with pytest.raises(AnalyticsQueryError):
            call()


def test_filter_values_are_bound_never_pasted() -> None:
    mint = "https://m.example/'; DROP TABLE proofrecon.discrepancies; --"
    query = hourly_query("proofrecon", NOW, mint, "HIGH")
    assert mint not in query.sql and "DROP" not in query.sql
    assert query.params == {"since": NOW, "mint_url": mint, "severity": "HIGH"}
    assert "{mint_url:String}" in query.sql and "{severity:String}" in query.sql


def test_format_table_aligns_numbers() -> None:
    rows = [
        {
            "hour": "2026-03-10T13:00:00Z",
            "mint_url": "https://a",
            "severity": "HIGH",
            "discrepancies": 3,
            "proofs_checked": 1200,
            "rate_per_1k": 2.5,
        },
        {
            "hour": "2026-03-10T13:00:00Z",
            "mint_url": "https://a",
            "severity": "LOW",
            "discrepancies": 0,
            "proofs_checked": 0,
            "rate_per_1k": None,
        },
    ]
    lines = format_table(rows, HOURLY_COLUMNS).splitlines()
    assert lines[0].split() == [
        "hour",
        "mint",
        "severity",
        "discrepancies",
        "proofs",
        "checked",
        "rate",
        "per",
        "1,000",
    ]
    assert lines[1].startswith("2026-03-10 13:00Z") and lines[1].endswith("2.5")
    assert lines[2].endswith("-")


def test_report_escapes_and_draws() -> None:
    evil = "https://x/<script>alert(1)</script>"
    hour = "2026-03-10T13:00:00Z"
    html = render_report(
        hourly={
            "since": hour,
            "rows": [
                {
                    "hour": hour,
                    "mint_url": evil,
                    "severity": "HIGH",
                    "discrepancies": 2,
                    "proofs_checked": 100,
                    "rate_per_1k": 20.0,
                }
            ],
        },
        blocked={
            "rows": [
                {"hour": hour, "mint_url": evil, "preflights": 4, "blocked": 1, "high_severity": 1}
            ]
        },
        top_types={
            "rows": [{"type": "DB_UNSPENT_MINT_SPENT", "severity": "HIGH", "discrepancies": 2}]
        },
        latency={"rows": [{"hour": hour, "mint_url": evil, "p50_ms": 3.0, "p99_ms": 9.0}]},
        generated_at=NOW,
    )
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert html.count('class="chart-svg"') == 4
    assert "<polyline" in html and 'class="bar"' in html


def test_report_without_data_says_so() -> None:
    empty = {"since": "2026-03-10T13:00:00Z", "rows": []}
    html = render_report(
        hourly=empty, blocked=empty, top_types=empty, latency=empty, generated_at=NOW
    )
    assert html.count("No data in this window.") == 4 and "<svg" not in html
