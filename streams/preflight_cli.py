"""`proofrecon preflight`: one melt preflight through Kafka, as a wallet would ask it."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import UTC, datetime

from streams.client import PreflightClient
from streams.errors import PreflightTimeout
from streams.models import MeltRequest, parse_melt_request
from streams.settings import Settings

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
