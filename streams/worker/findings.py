"""The internal `recon.findings` topic: what a mint said about some of one npub's proofs, seen
outside a preflight (the sweep, the web API's validate), signed so that a finding no worker wrote
is refused (review finding 18). The findings agent classifies them on the npub's partition."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from streams.core.contracts import to_json_bytes
from streams.core.domain import MintState, Source
from streams.worker.events import RawEvent
from streams.worker.runtime import Runtime


class ObservedProof(BaseModel):
    model_config = ConfigDict(frozen=True)

    y: str = Field(alias="Y")
    state: MintState
    amount: int | None = None
    keyset_id: str | None = None
    token_id: str | None = None


class Finding(BaseModel):
    """What a mint said about some of one npub's proofs (internal topic `recon.findings`)."""

    model_config = ConfigDict(frozen=True, serialize_by_alias=True)

    npub: str
    mint_url: str
    source: Source
    observed_at: datetime
    # Names this observation: part of the ids of the discrepancies it opens (see classify).
    observation_id: str
    request_id: str | None = None
    # The sweep only re-checks proofs the wallet holds; a proof deleted meanwhile is skipped.
    # The web API's validate also judges proofs the wallet does not know (PROOF_NOT_IN_DB).
    include_absent: bool = False
    proofs: tuple[ObservedProof, ...]


SIGNATURE_HEADER = "proofrecon-signature"


def sign(key: bytes, value: bytes) -> bytes:
    return hmac.new(key, value, hashlib.sha256).hexdigest().encode()


def signing_key(runtime: Runtime) -> bytes:
    configured = runtime.settings.topics.findings_signing_key
    if configured is not None:
        return configured.get_secret_value().encode()
    return _PROCESS_KEY


_PROCESS_KEY = secrets.token_bytes(32)


async def publish_finding(runtime: Runtime, finding: Finding) -> None:
    value = to_json_bytes(finding)
    signature = sign(signing_key(runtime), value)
    topic = runtime.topics["findings"]
    future = await topic.send(
        key=finding.npub.encode(), value=value, headers=[(SIGNATURE_HEADER, signature)]
    )
    await future


def signature_of(event: RawEvent) -> bytes | None:
    headers: Any = event.message.headers or []
    items = headers.items() if isinstance(headers, dict) else headers
    for name, value in items:
        if name == SIGNATURE_HEADER and isinstance(value, bytes):
            return value
    return None
