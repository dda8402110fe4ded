"""The `proofrecon` command line. Each subcommand group lives in its own `_add_*` function."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from streams.errors import ProofReconError
from streams.settings import Settings, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]


def _add_topics(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    topics = sub.add_parser("topics", help="Kafka topic administration")
    tsub = topics.add_subparsers(dest="topics_cmd", required=True)
    create = tsub.add_parser("create", help="create every topic (idempotent)")
    create.set_defaults(handler=_topics_create)
    describe = tsub.add_parser("describe", help="print each topic's partitions and policy")
    describe.set_defaults(handler=_topics_describe)


def _topics_create(args: argparse.Namespace, settings: Settings) -> int:
    from streams.topics import ensure_topics

    for line in asyncio.run(ensure_topics(settings)):
        print(line)
    return 0


def _topics_describe(args: argparse.Namespace, settings: Settings) -> int:
    from streams.topics import describe_topics

    for name, info in asyncio.run(describe_topics(settings)).items():
        print(f"{name}\tpartitions={info.partitions}\tcleanup.policy={info.cleanup_policy}")
    return 0


def _add_schemas(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    schemas = sub.add_parser("schemas", help="JSON Schemas of the event contracts")
    ssub = schemas.add_subparsers(dest="schemas_cmd", required=True)
    export = ssub.add_parser("export", help="write one JSON Schema file per contract")
    export.add_argument("directory", type=Path)
    export.set_defaults(handler=_schemas_export)


def _schemas_export(args: argparse.Namespace, settings: Settings) -> int:
    from streams.schemas import export_schemas

    for path in export_schemas(args.directory):
        print(path)
    return 0


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser("demo", help="run the end-to-end demo on the local stack")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from streams.demo import run_demo

    return run_demo(settings)


def _add_worker(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = sub.add_parser("worker", help="run the stream processor (Faust worker)")
    worker.set_defaults(handler=_worker)


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.worker import run_worker

    return run_worker(settings)


def _add_preflight(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pre = sub.add_parser(
        "preflight",
        help="ask the running worker for a melt preflight verdict",
        description="Exit codes: 0 cleared, 2 blocked, 3 no answer within the timeout.",
    )
    pre.add_argument("--npub", required=True)
    pre.add_argument("--mint", required=True, help="the mint URL of the proofs")
    pre.add_argument(
        "--proofs", required=True, type=Path, help="JSON list of {Y|secret, amount, keyset_id}"
    )
    pre.add_argument("--timeout", type=float, default=10.0, help="seconds to wait (default 10)")
    pre.add_argument("--request-id", default=None, help="default: a new UUID")
    pre.set_defaults(handler=_preflight)


def _preflight(args: argparse.Namespace, settings: Settings) -> int:
    from streams.preflight_cli import run_preflight

    return asyncio.run(run_preflight(args, settings))


def _add_sink(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sink = sub.add_parser(
        "sink",
        help="run the ClickHouse sink alone, with the analytics endpoints on the web port",
    )
    sink.set_defaults(handler=_lazy("sinks.commands", "run_sink"))


def _add_clickhouse(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ch = sub.add_parser("clickhouse", help="ClickHouse schema administration")
    csub = ch.add_subparsers(dest="clickhouse_cmd", required=True)
    migrate = csub.add_parser("migrate", help="apply pending schema migrations (idempotent)")
    migrate.set_defaults(handler=_lazy("sinks.commands", "clickhouse_migrate"))


def _add_analytics(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    hourly.set_defaults(handler=_lazy("sinks.commands", "analytics_hourly"))
    blocked = asub.add_parser("blocked", help="blocked melt preflights per hour")
    blocked.add_argument("--since", default="24h", help="24h, 90m, 7d, 2w or ISO time")
    blocked.add_argument("--mint", default=None, help="only this mint URL")
    blocked.add_argument("--json", action="store_true", help="print the JSON document")
    blocked.set_defaults(handler=_lazy("sinks.commands", "analytics_blocked"))
    export = asub.add_parser("export", help="write a Parquet snapshot of the analytics tables")
    export.add_argument("--parquet", type=Path, required=True, metavar="DIR")
    export.add_argument("--since", default=None, help="only rows since (default: all)")
    export.set_defaults(handler=_lazy("sinks.commands", "analytics_export"))


def _add_report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser("report", help="write the HTML analytics report (same as /report)")
    report.add_argument("--out", type=Path, default=Path("report.html"))
    report.add_argument("--since", default="7d", help="24h, 90m, 7d, 2w or ISO time")
    report.set_defaults(handler=_lazy("sinks.commands", "write_report"))


def _lazy(module: str, name: str) -> Handler:
    """A handler imported when run: `proofrecon --help` need not load ClickHouse or chDB."""

    def handler(args: argparse.Namespace, settings: Settings) -> int:
        import importlib

        target: Handler = getattr(importlib.import_module(module), name)
        return target(args, settings)

    return handler


def _add_alerts(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from streams.domain import AlertKind

    alerts = sub.add_parser("alerts", help="alert delivery and the alerts raised")
    asub = alerts.add_subparsers(dest="alerts_cmd", required=True)
    test = asub.add_parser(
        "test",
        help="send a sample alert through the configured webhooks",
        description="Exit codes: 0 delivered everywhere, 1 a webhook failed, 2 none configured.",
    )
    test.add_argument(
        "--kind", choices=[k.value for k in AlertKind], default=AlertKind.HIGH_SEVERITY.value
    )
    test.add_argument("--timeout", type=float, default=20.0, help="seconds of retries (default 20)")
    test.set_defaults(handler=_alerts_test)
    summary = asub.add_parser("summary", help="print the alerts on the alerts topic")
    summary.add_argument("--since-minutes", type=float, default=None)
    summary.set_defaults(handler=_alerts_summary)


def _alerts_test(args: argparse.Namespace, settings: Settings) -> int:
    import logging.config

    from streams.alerting.commands import send_test_alert
    from streams.domain import AlertKind
    from streams.logs import logging_config

    # Each failed attempt is logged (JSON on stderr) with its receiver and error.
    logging.config.dictConfig(logging_config(settings.log_level))
    code, lines = asyncio.run(send_test_alert(settings, AlertKind(args.kind), args.timeout))
    for line in lines:
        print(line)
    return code


def _alerts_summary(args: argparse.Namespace, settings: Settings) -> int:
    from streams.alerting.commands import summary_lines

    for line in asyncio.run(summary_lines(settings, args.since_minutes)):
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="proofrecon",
        description="Reconcile a custodial Cashu wallet's proof states against the mints.",
    )
    parser.add_argument("--env-file", type=Path, default=None, help="read settings from this file")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_topics,
        _add_schemas,
        _add_demo,
        _add_worker,
        _add_preflight,
        _add_alerts,
        _add_sink,
        _add_clickhouse,
        _add_analytics,
        _add_report,
    ):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(env_file=args.env_file)
        handler: Handler = args.handler
        return handler(args, settings)
    except ProofReconError as exc:
        print(f"proofrecon: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:  # settings refused: where and why, never the values
        print(f"proofrecon: invalid settings:\n{exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
