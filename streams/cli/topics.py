"""`proofrecon topics create|describe` and `proofrecon schemas export`."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from streams.cli.base import Subparsers
from streams.core.settings import Settings


def add_topics(sub: Subparsers) -> None:
    topics = sub.add_parser("topics", help="Kafka topic administration")
    tsub = topics.add_subparsers(dest="topics_cmd", required=True)
    create = tsub.add_parser("create", help="create every topic (idempotent)")
    create.set_defaults(handler=_topics_create)
    describe = tsub.add_parser("describe", help="print each topic's partitions and policy")
    describe.set_defaults(handler=_topics_describe)


def _topics_create(args: argparse.Namespace, settings: Settings) -> int:
    from streams.core.kafka import ensure_topics

    for line in asyncio.run(ensure_topics(settings)):
        print(line)
    return 0


def _topics_describe(args: argparse.Namespace, settings: Settings) -> int:
    from streams.core.kafka import describe_topics

    for name, info in asyncio.run(describe_topics(settings)).items():
        print(f"{name}\tpartitions={info.partitions}\tcleanup.policy={info.cleanup_policy}")
    return 0


def add_schemas(sub: Subparsers) -> None:
    schemas = sub.add_parser("schemas", help="JSON Schemas of the event contracts")
    ssub = schemas.add_subparsers(dest="schemas_cmd", required=True)
    export = ssub.add_parser("export", help="write one JSON Schema file per contract")
    export.add_argument("directory", type=Path)
    export.set_defaults(handler=_schemas_export)


def _schemas_export(args: argparse.Namespace, settings: Settings) -> int:
    from streams.core.schemas import export_schemas

    for path in export_schemas(args.directory):
        print(path)
    return 0
