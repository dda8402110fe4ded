"""The `proofrecon` command line. Each subcommand group lives in its own `_add_*` function."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="proofrecon",
        description="Reconcile a custodial Cashu wallet's proof states against the mints.",
    )
    parser.add_argument("--env-file", type=Path, default=None, help="read settings from this file")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_topics, _add_schemas, _add_demo, _add_worker, _add_preflight):
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


if __name__ == "__main__":
    sys.exit(main())
