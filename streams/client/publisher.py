"""The wallet's outbox side: token-status changes to `wallet.token-status`, keyed by npub."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from streams.core.contracts import TokenStatusEvent, to_json_bytes
from streams.core.kafka import client_kwargs
from streams.core.settings import Settings


def token_status_event(
    npub: str,
    token_id: str,
    mint_url: str,
    status: str,
    proofs: Sequence[Mapping[str, Any]],
    *,
    version: int = 1,
    **extra: Any,
) -> dict[str, Any]:
    """A `wallet.token-status` event as a wallet's outbox relay writes it, with a fresh event_id.
    Proofs as the wallet DB holds them: `{secret | Y, amount, keyset_id}`."""
    return {
        "event_id": uuid.uuid4().hex,
        "npub": npub,
        "token_id": token_id,
        "mint_url": mint_url,
        "status": status,
        "version": version,
        "occurred_at": datetime.now(UTC).isoformat(),
        "proofs": list(proofs),
        **extra,
    }


class TokenStatusPublisher:
    """Publishes the wallet DB's token-status changes (an outbox relay would use this)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> TokenStatusPublisher:
        self._producer = AIOKafkaProducer(**client_kwargs(self._settings.kafka), acks="all")
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def publish(self, event: TokenStatusEvent | Mapping[str, Any]) -> None:
        assert self._producer is not None, "use `async with`"
        if isinstance(event, TokenStatusEvent):
            key, value = event.npub, to_json_bytes(event)
        else:
            key, value = str(event["npub"]), json.dumps(event).encode()
        await self._producer.send_and_wait(
            self._settings.topics.token_status, key=key.encode(), value=value
        )
