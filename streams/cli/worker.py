"""`proofrecon worker` and `proofrecon sink`."""

from __future__ import annotations

import argparse

from streams.cli.base import Subparsers, lazy
from streams.core.settings import Settings


def add_worker(sub: Subparsers) -> None:
    worker = sub.add_parser("worker", help="run the stream processor (Faust worker)")
    worker.set_defaults(handler=_worker)


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.worker.main import run_worker

    return run_worker(settings)


def add_sink(sub: Subparsers) -> None:
    sink = sub.add_parser(
        "sink",
        help="run the ClickHouse sink alone, with the analytics endpoints on the web port",
    )
    sink.set_defaults(handler=lazy("sinks.standalone", "sink_command"))
