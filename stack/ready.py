"""Readiness probes for the local stack: exit 0 when the component answers, 1 otherwise.

python stack/ready.py kafka 127.0.0.1:9092    # a metadata round trip
python stack/ready.py mint http://127.0.0.1:3338    # GET /v1/info
"""

from __future__ import annotations

import asyncio
import sys

import httpx
from aiokafka.admin import AIOKafkaAdminClient


async def kafka_ready(bootstrap: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        await admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        await admin.close()


def mint_ready(url: str) -> bool:
    try:
        response = httpx.get(f"{url}/v1/info", timeout=2.0)
        return response.status_code == 200 and "pubkey" in response.json()
    except (httpx.HTTPError, ValueError):
        return False


def main(argv: list[str]) -> int:
    kind, target = argv[1], argv[2]
    ok = asyncio.run(kafka_ready(target)) if kind == "kafka" else mint_ready(target)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
