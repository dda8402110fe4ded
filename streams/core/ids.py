"""Deterministic ids: the same input always gives the same id, so a replayed output is
recognised and dropped downstream (at-least-once everywhere, docs/ARCHITECTURE.md)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from streams.core.domain import DbStatus, DiscrepancyType, Lifecycle, Source

# Fixed forever: changing it changes every id, and replays would no longer deduplicate.
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://proofrecon.invalid/ids/v1")


def stable_id(*parts: str) -> str:
    """A UUIDv5 (SHA-1 based, RFC 9562) of the parts; the same parts always give the same id.

    Each part is length-prefixed, so ("a|b", "c") and ("a", "b|c") cannot collide.
    """
    name = "".join(f"{len(part)}:{part}" for part in parts)
    return str(uuid.uuid5(ID_NAMESPACE, name))


def discrepancy_event_id(
    *,
    npub: str,
    mint_url: str,
    y: str,
    type: DiscrepancyType,
    source: Source,
    request_id: str | None = None,
    lifecycle: Lifecycle = Lifecycle.OPENED,
    observation_id: str | None = None,
) -> str:
    """Names an observation, not a moment: a replayed or repeated detection of the same
    discrepancy (by the same source, for the same request) gets the same id, so consumers that
    deduplicate by id count it once. A preflight includes its request_id: each melt counts. A
    sweep or validation names its observation with `observation_id`, so a discrepancy that was
    resolved and later opened again is a new event, while a replay of the same finding is not."""
    parts = [
        "discrepancy",
        npub,
        mint_url,
        y,
        type.value,
        source.value,
        request_id or "",
        lifecycle.value,
    ]
    if observation_id:
        parts.append(observation_id)
    return stable_id(*parts)


def correction_command_id(
    *, npub: str, token_id: str, mint_url: str, ys: Iterable[str], set_status: DbStatus
) -> str:
    """Order-free in `ys`: the same fix for the same proofs is the same command."""
    return stable_id("correction", npub, token_id, mint_url, set_status.value, *sorted(ys))


def proof_ref(*, mint_url: str, y: str) -> str:
    """Names one proof at one mint without carrying its Y: alerting counts distinct proofs by it."""
    return stable_id("proof", mint_url, y)


def proof_check_event_id(*, source: Source, mint_url: str, key: str) -> str:
    """`key` names the check: the request_id of a preflight, a sweep round's id, and so on."""
    return stable_id("proof-check", source.value, mint_url, key)
