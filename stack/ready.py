"""Readiness probes for the local stack: exit 0 when the component answers, 1 otherwise.

python stack/ready.py kafka 127.0.0.1:9092              # a metadata round trip
python stack/ready.py brokers 127.0.0.1:19092,... 3     # print the live broker ids; exit 0 if >= 3
python stack/ready.py scram 127.0.0.1:9094 USER PASSWORD   # SASL/SCRAM-SHA-512 login + metadata
python stack/ready.py mint http://127.0.0.1:3338         # GET /v1/info
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient


async def _metadata(bootstrap: str, **options: Any) -> dict[str, Any] | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000, **options)
    try:
        await admin.start()
        cluster: dict[str, Any] = await admin.describe_cluster()
        return cluster
    except Exception:
        return None
    finally:
        await admin.close()


async def kafka_ready(bootstrap: str) -> bool:
    return await _metadata(bootstrap) is not None


async def live_brokers(bootstrap: str) -> list[int]:
    """The ids of the brokers the cluster's metadata lists (registered and not fenced)."""
    cluster = await _metadata(bootstrap)
    return sorted(b["node_id"] for b in cluster["brokers"]) if cluster else []


async def scram_ready(bootstrap: str, user: str, password: str) -> bool:
    options = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": user,
        "sasl_plain_password": password,
    }
    return await _metadata(bootstrap, **options) is not None


def mint_ready(url: str) -> bool:
    try:
        response = httpx.get(f"{url}/v1/info", timeout=2.0)
        info = response.json()
        return response.status_code == 200 and ("pubkey" in info or "nuts" in info)
    except (httpx.HTTPError, ValueError):
        return False


def main(argv: list[str]) -> int:
    kind, target = argv[1], argv[2]
    if kind == "kafka":
        ok = asyncio.run(kafka_ready(target))
    elif kind == "brokers":
        ids = asyncio.run(live_brokers(target))
        print("\n".join(map(str, ids)))
        ok = len(ids) >= (int(argv[3]) if len(argv) > 3 else 1)
    elif kind == "scram":
        ok = asyncio.run(scram_ready(target, argv[3], argv[4]))
    elif kind == "mint":
        ok = mint_ready(target)
    else:
        print(f"unknown probe {kind!r}", file=sys.stderr)
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
