"""A trivial Kafka responder: the latency benchmark's baseline for "Kafka itself".

    python -m bench.support.kafka_echo --bootstrap 127.0.0.1:9092 --in REQ --out REPLY --group G

Consumes melt requests from `--in` and answers each on `--out`, keyed by request_id, with a fixed
CLEARED preflight answer built from nothing but the request's JSON: the same two Kafka hops and
the same client as the pipeline, without the pipeline. It runs in its own process, as the worker
does, and uses the worker's producer settings (acks=all, 1 ms linger). Prints "ready" once it
holds its partitions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.core.contracts import proofs_digest


def answer(raw: bytes) -> tuple[bytes, bytes]:
    request = json.loads(raw)
    result: dict[str, Any] = {
        "request_id": request["request_id"],
        "npub": request["npub"],
        "mint_url": request["mint_url"],
        "operation_cleared": True,
        "verdict": "CLEARED",
        "code": None,
        "discrepancies_found": 0,
        "discrepancies_resolved": 0,
        "severity_counts": {"HIGH": 0, "MEDIUM": 0, "LOW": 0},
        "discrepancies": [],
        "checked_proofs": len(request["proofs"]),
        "duration_ms": 0.0,
        "answered_at": datetime.now(UTC).isoformat(),
        # The client accepts only an answer about what it asked (review finding 14).
        "proofs_digest": proofs_digest(p["Y"] for p in request["proofs"]),
    }
    return request["request_id"].encode(), json.dumps(result).encode()


async def serve(bootstrap: str, source: str, target: str, group: str) -> None:
    consumer = AIOKafkaConsumer(
        source, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await producer.start()
    await consumer.start()
    ready = False
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            if not ready and consumer.assignment():
                print("ready", flush=True)
                ready = True
            for records in batch.values():
                for record in records:
                    if record.value:
                        key, value = answer(record.value)
                        await producer.send(target, key=key, value=value)
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--in", dest="source", required=True)
    parser.add_argument("--out", dest="target", required=True)
    parser.add_argument("--group", required=True)
    args = parser.parse_args()
    # Stopped by SIGTERM: nothing to flush, every answer was awaited into the producer already.
    asyncio.run(serve(args.bootstrap, args.source, args.target, args.group))
    return 0


if __name__ == "__main__":
    sys.exit(main())
