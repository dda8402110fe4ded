"""`proofrecon clickhouse migrate`, `proofrecon analytics …` and `proofrecon report`: the
handlers live in sinks.analytics.commands, loaded when run."""

from __future__ import annotations

from pathlib import Path

from streams.cli.base import Subparsers, lazy


def add_clickhouse(sub: Subparsers) -> None:
    ch = sub.add_parser("clickhouse", help="ClickHouse schema administration")
    csub = ch.add_subparsers(dest="clickhouse_cmd", required=True)
    migrate = csub.add_parser("migrate", help="apply pending schema migrations (idempotent)")
    migrate.set_defaults(handler=lazy("sinks.analytics.commands", "clickhouse_migrate"))


def add_analytics(sub: Subparsers) -> None:
    analytics = sub.add_parser(
        "analytics",
        help="query discrepancy analytics (through the worker in embedded mode)",
    )
    asub = analytics.add_subparsers(dest="analytics_cmd", required=True)
    hourly = asub.add_parser("hourly", help="hourly severity rates per mint")
    hourly.add_argument("--since", default="24h", help="24h, 90m, 7d, 2w or ISO time")
    hourly.add_argument("--mint", default=None, help="only this mint URL")
    hourly.add_argument("--severity", default=None, choices=["HIGH", "MEDIUM", "LOW"])
    hourly.add_argument("--json", action="store_true", help="print the JSON document")
    hourly.set_defaults(handler=lazy("sinks.analytics.commands", "analytics_hourly"))
    blocked = asub.add_parser("blocked", help="blocked melt preflights per hour")
    blocked.add_argument("--since", default="24h", help="24h, 90m, 7d, 2w or ISO time")
    blocked.add_argument("--mint", default=None, help="only this mint URL")
    blocked.add_argument("--json", action="store_true", help="print the JSON document")
    blocked.set_defaults(handler=lazy("sinks.analytics.commands", "analytics_blocked"))
    export = asub.add_parser("export", help="write a Parquet snapshot of the analytics tables")
    export.add_argument("--parquet", type=Path, required=True, metavar="DIR")
    export.add_argument("--since", default=None, help="only rows since (default: all)")
    export.set_defaults(handler=lazy("sinks.analytics.commands", "analytics_export"))


def add_report(sub: Subparsers) -> None:
    report = sub.add_parser("report", help="write the HTML analytics report (same as /report)")
    report.add_argument("--out", type=Path, default=Path("report.html"))
    report.add_argument("--since", default="7d", help="24h, 90m, 7d, 2w or ISO time")
    report.set_defaults(handler=lazy("sinks.analytics.commands", "write_report"))
