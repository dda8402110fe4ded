"""What every agent needs: the event context for table access, and one way to emit each output."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeAlias, TypeVar

import faust
from faust.streams import _current_event
from faust.types import EventT, StreamT
from pydantic import BaseModel, ValidationError

from streams.app import Runtime
from streams.domain import ErrorKind, Lifecycle, Severity
from streams.ledger import ProofRecord, TokenRecord, proof_key, token_key
from streams.logs import log
from streams.models import (
    CorrectionCommand,
    DeadLetterRecord,
    DiscrepancyEvent,
    PreflightResult,
    ProofCheckEvent,
    to_json_bytes,
)
from streams.reconcile import OpenDiscrepancy

logger = logging.getLogger("proofrecon.emit")

# Our topics carry raw bytes; we decode them ourselves (see streams.app._raw_topic).
RawEvent: TypeAlias = EventT[Any]
RawStream: TypeAlias = StreamT[Any]
Model = TypeVar("Model", bound=BaseModel)


def raw_value(event: RawEvent) -> bytes:
    value = event.message.value
    return value if isinstance(value, bytes) else b""


@contextmanager
def event_context(event: RawEvent) -> Iterator[None]:
    """Make `event` the current event, so table reads and writes use its partition.

    Faust finds a table's partition through the current event. Inside a `take_events` batch the
    context belongs to the stream's background task, not to ours, and writes would go to the
    wrong partition or fail (faust-streaming #497); we set it per event ourselves.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- typed access to the tables (keys live on the npub's partition) ------------------------------


def ledger_record(runtime: Runtime, npub: str, y: str) -> ProofRecord | None:
    """The wallet DB's record of a proof: its token's row, found through the proof index."""
    token_id = runtime.proof_index.token_of(npub, y)
    if token_id is None:
        return None
    row = runtime.tokens.get(token_key(npub, token_id))
    return TokenRecord.from_dict(row).proof(token_id, y) if row else None


def open_discrepancies(
    runtime: Runtime, npub: str, ys: Iterable[str]
) -> dict[str, OpenDiscrepancy]:
    found = {}
    for y in ys:
        stored = runtime.open_discrepancies.get(proof_key(npub, y))
        if stored is not None:
            found[y] = OpenDiscrepancy.from_dict(stored)
    return found


def write_open_changes(
    runtime: Runtime, npub: str, changes: Mapping[str, OpenDiscrepancy | None]
) -> None:
    """Store newly opened discrepancies, drop resolved ones. Needs the event's context."""
    table = runtime.open_discrepancies
    for y, change in changes.items():
        key = proof_key(npub, y)
        if change is None:
            if table.get(key) is not None:
                del table[key]
        else:
            table[key] = change.to_dict()


class Emitter:
    """Every output of the pipeline goes through here: one place for keys, ids and metrics.

    Each send is awaited into the producer before the input event is acknowledged; Faust flushes
    the producer before it commits offsets, so an output is never lost behind a commit.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._m = runtime.metrics

    async def discrepancies(self, events: Sequence[DiscrepancyEvent]) -> None:
        topic = self._rt.topics["discrepancies"]
        for event in events:
            await topic.send(key=event.npub.encode(), value=to_json_bytes(event))
            self._m.discrepancies.labels(
                event.severity.value,
                event.type.value,
                event.mint_url,
                event.lifecycle.value,
                event.source.value,
            ).inc()
        high = [
            e for e in events if e.severity is Severity.HIGH and e.lifecycle is Lifecycle.OPENED
        ]
        if high:
            log(
                logger,
                logging.WARNING,
                "HIGH severity discrepancies detected",
                npub=high[0].npub,
                mint_url=high[0].mint_url,
                count=len(high),
                request_id=high[0].request_id,
                source=high[0].source.value,
                Y_prefixes=[e.y[:12] for e in high[:10]],
            )

    async def corrections(self, commands: Sequence[CorrectionCommand]) -> None:
        topic = self._rt.topics["corrections"]
        for command in commands:
            await topic.send(key=command.npub.encode(), value=to_json_bytes(command))
            self._m.corrections.labels(command.set_status.value).inc()

    async def proof_check(self, event: ProofCheckEvent) -> None:
        key = (event.npub or event.mint_url).encode()
        await self._rt.topics["proof_checks"].send(key=key, value=to_json_bytes(event))
        self._m.proofs_checked.labels(event.source.value, event.mint_url).inc(event.proofs_checked)

    async def answer(self, result: PreflightResult, reply_to: str | None) -> None:
        topic = self._rt.topic(reply_to or self._rt.settings.topics.preflight_results)
        await topic.send(key=result.request_id.encode(), value=to_json_bytes(result))
        self._m.verdicts.labels(result.verdict.value, result.code or "").inc()

    async def decode(self, event: RawEvent, model: type[Model], context: str = "") -> Model | None:
        """The event as `model`; None when it does not validate (it went to the dead-letter
        topic then, with the count of errors: pydantic's own text may quote the input)."""
        try:
            return model.model_validate_json(raw_value(event))
        except ValidationError as exc:
            error = f"{context}{exc.error_count()} errors"
            await self.dead_letter(event, ErrorKind.VALIDATION_ERROR, error)
            return None

    async def dead_letter(
        self,
        event: RawEvent,
        error_kind: ErrorKind,
        error: str,
        *,
        known_secrets: Sequence[str] = (),
    ) -> None:
        message = event.message
        raw = message.value if isinstance(message.value, bytes | str) else b""
        record = DeadLetterRecord(
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key.decode("utf-8", "replace") if isinstance(message.key, bytes) else None,
            error_kind=error_kind,
            error=error,
            raw=raw,
            received_at=utcnow(),
        )
        topic: faust.TopicT = self._rt.topics["dead_letter"]
        await topic.send(key=message.key, value=to_json_bytes(record))
        self._m.dead_letters.labels(message.topic, error_kind.value).inc()
        log(
            logger,
            logging.WARNING,
            "message sent to the dead-letter topic",
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            error_kind=error_kind.value,
            error=record.error,
        )
