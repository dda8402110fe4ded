"""`proofrecon preflight`: one melt preflight through Kafka, as a wallet would ask it."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from streams.cli.base import Subparsers
from streams.client import PreflightClient
from streams.core.contracts import MeltRequest, parse_melt_request
from streams.core.errors import PreflightTimeout
from streams.core.settings import Settings

EXIT_CLEARED, EXIT_BLOCKED, EXIT_TIMEOUT = 0, 2, 3


def build_request(args: argparse.Namespace, settings: Settings) -> MeltRequest:
    proofs = json.loads(args.proofs.read_text())
    body = {
        "request_id": args.request_id or str(uuid.uuid4()),
        "npub": args.npub,
        "mint_url": args.mint,
        "proofs": proofs,
        "requested_at": datetime.now(UTC).isoformat(),
    }
    # Through the same edge as the worker's: secrets become Ys here and never leave this process.
    return parse_melt_request(json.dumps(body).encode())


async def run_preflight(args: argparse.Namespace, settings: Settings) -> int:
    request = build_request(args, settings)
    async with PreflightClient(settings) as client:
        try:
            result = await client.preflight(request, timeout=args.timeout)
        except PreflightTimeout as exc:
            print(f"proofrecon: {exc}", file=sys.stderr)
            return EXIT_TIMEOUT
    print(json.dumps(result.model_dump(mode="json", by_alias=True), indent=2))
    return EXIT_CLEARED if result.operation_cleared else EXIT_BLOCKED


def add_preflight(sub: Subparsers) -> None:
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
    return asyncio.run(run_preflight(args, settings))
