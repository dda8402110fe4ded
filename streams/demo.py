"""`proofrecon demo`: the end-to-end scenario on the local stack."""

from __future__ import annotations

import asyncio

import httpx

from streams.settings import Settings
from streams.topics import describe_topics, ensure_topics


async def _stack_report(settings: Settings) -> list[str]:
    lines = []
    await ensure_topics(settings)
    topics = await describe_topics(settings)
    lines.append(f"kafka       {settings.kafka.bootstrap_servers}: {len(topics)} topics ready")
    for mint_url in settings.mint.allowlist:
        async with httpx.AsyncClient(timeout=5) as client:
            info = (await client.get(f"{mint_url}/v1/info")).json()
        lines.append(f"mint        {mint_url}: {info.get('version')}")
    import clickhouse_connect

    ch = clickhouse_connect.get_client(dsn=settings.clickhouse_url)
    try:
        version = ch.query("SELECT version()").result_rows[0][0]
    finally:
        ch.close()
    lines.append(f"clickhouse  {settings.clickhouse_url}: ClickHouse {version}")
    return lines


def run_demo(settings: Settings) -> int:
    for line in asyncio.run(_stack_report(settings)):
        print(line)
    return 0
