"""The `proofrecon` command line: the parser, assembled from one module per command group."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from streams.cli import alerts, analytics, preflight, topics, worker
from streams.cli.base import Handler
from streams.core.errors import ProofReconError
from streams.core.settings import load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="proofrecon",
        description="Reconcile a custodial Cashu wallet's proof states against the mints.",
    )
    parser.add_argument("--env-file", type=Path, default=None, help="read settings from this file")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        topics.add_topics,
        topics.add_schemas,
        worker.add_worker,
        preflight.add_preflight,
        alerts.add_alerts,
        worker.add_sink,
        analytics.add_clickhouse,
        analytics.add_analytics,
        analytics.add_report,
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
