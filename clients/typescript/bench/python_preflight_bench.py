"""The Python side of the preflight benchmark: `streams.client.PreflightClient` at a fixed rate.

Run by bench/preflight-bench.ts with the project's Python, in the worker's environment (so
`load_settings()` names the worker's topics); reads its parameters as JSON on stdin, prints one JSON
document: every latency in ms (a timeout counts as the timeout) and the outcome counts.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

try:
    from streams.core.client import PreflightClient  # type: ignore[import-not-found]
except ImportError:
    from streams.client import PreflightClient
try:
    from streams.core.errors import PreflightTimeout  # type: ignore[import-not-found]
except ImportError:
    from streams.errors import PreflightTimeout
try:
    from streams.core.models import parse_melt_request  # type: ignore[import-not-found]
except ImportError:
    from streams.models import parse_melt_request
from streams.settings import load_settings


async def drive(
    client: Any,
    params: dict[str, Any],
    duration: float,
    latencies: list[float],
    outcomes: Counter[str],
    legs: dict[str, list[float]],
) -> int:
    """Open loop: request i is sent at start + i/rate, whatever the earlier ones are doing."""
    rate, timeout = params["rate"], params["timeout_s"]
    tokens = params["tokens"]
    tasks: list[asyncio.Task[None]] = []

    async def fire(i: int) -> None:
        token = tokens[i % len(tokens)]
        body = {
            "request_id": uuid.uuid4().hex,
            "npub": token["npub"],
            "mint_url": params["mint_url"],
            "proofs": token["proofs"],
            "requested_at": datetime.now(UTC).isoformat(),
        }
        request = parse_melt_request(json.dumps(body).encode())
        started, sent_at = time.perf_counter(), time.time()
        try:
            result = await client.preflight(request, timeout=timeout)
        except PreflightTimeout:
            latencies.append(timeout * 1000)
            outcomes["unanswered"] += 1
            return
        latencies.append((time.perf_counter() - started) * 1000)
        answered_at = result.answered_at.timestamp()
        legs["to_worker"].append((answered_at - sent_at) * 1000 - result.duration_ms)
        legs["in_worker"].append(result.duration_ms)
        legs["to_client"].append((time.time() - answered_at) * 1000)
        outcomes[f"{result.verdict}/{result.code or '-'}"] += 1

    start = time.perf_counter()
    count = int(rate * duration)
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(fire(i)))
    await asyncio.gather(*tasks)
    return count


async def main() -> None:
    params = json.load(sys.stdin)
    async with PreflightClient(load_settings()) as client:
        await drive(client, params, params["warmup_s"], [], Counter(), _legs())
        latencies: list[float] = []
        outcomes: Counter[str] = Counter()
        legs = _legs()
        sent = await drive(client, params, params["duration_s"], latencies, outcomes, legs)
    print(
        json.dumps(
            {"sent": sent, "latencies_ms": latencies, "outcomes": dict(outcomes), "legs": legs}
        )
    )


def _legs() -> dict[str, list[float]]:
    return {"to_worker": [], "in_worker": [], "to_client": []}


if __name__ == "__main__":
    asyncio.run(main())
