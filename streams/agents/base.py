"""What every agent needs: the event context for table access, and one way to emit each output."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias, TypeVar

import faust
from aiokafka import errors as kafka_errors
from faust.streams import _current_event
from faust.types import EventT, StreamT
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from streams.app import Runtime
from streams.domain import ErrorKind, Lifecycle, Severity
from streams.errors import DeliveryFailed, DeliveryRefused, StoreError
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
from streams.reconcile import OpenDiscrepancy, ProofToCheck
from streams.redact import redact_key, redact_raw

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


def to_check(y: str, amount: int, keyset_id: str, record: ProofRecord | None) -> ProofToCheck:
    """One requested proof joined with the ledger. The ledger wins the join: when it knows the
    proof, its token, amount and keyset are used, never the caller's (review finding 5)."""
    if record is None:
        return ProofToCheck(y, amount, keyset_id, None, None)
    return ProofToCheck(y, record.amount, record.keyset_id, record.token_id, record)


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


# Refused for this message, whatever we do: never retried, the input goes to the dead-letter topic.
_REFUSED = (
    kafka_errors.RecordTooLargeError,
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordListTooLargeError,
    kafka_errors.InvalidTopicError,
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.CorruptRecordException,
)
_RESEND_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class _Sent:
    topic: faust.TopicT
    key: bytes
    value: bytes
    future: Awaitable[Any]


@dataclass
class Deliveries:
    """The outputs of one input message, each confirmed by the broker before the input is
    acknowledged (Faust only flushes the producer before a commit and ignores a failed send,
    so an output it could not deliver would be lost behind the commit)."""

    _sent: list[_Sent] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self._sent)

    async def send(self, topic: faust.TopicT, key: bytes, value: bytes) -> None:
        """Hand a record to the producer now (it is batched with others); confirmed later."""
        future = await topic.send(key=key, value=value)
        self._sent.append(_Sent(topic, key, value, future))

    async def confirm(self) -> None:
        """Wait until the broker has every record. DeliveryRefused when one can never be
        delivered; DeliveryFailed when retries did not get one through (Kafka in trouble)."""
        sent, self._sent = self._sent, []
        for item in sent:
            try:
                await item.future
            except _REFUSED as exc:
                raise DeliveryRefused(type(exc).__name__, topic=_name(item.topic)) from None
            except Exception:
                await _resend(item)


async def _resend(item: _Sent) -> None:
    retrying = AsyncRetrying(
        stop=stop_after_attempt(_RESEND_ATTEMPTS),
        wait=wait_exponential_jitter(initial=0.1, max=2.0),
        retry=retry_if_not_exception_type(_REFUSED),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                await (await item.topic.send(key=item.key, value=item.value))
    except _REFUSED as exc:
        raise DeliveryRefused(type(exc).__name__, topic=_name(item.topic)) from None
    except Exception as exc:
        raise DeliveryFailed(type(exc).__name__, topic=_name(item.topic)) from None


def _name(topic: faust.TopicT) -> str:
    return str(topic.get_topic_name())


_WRITE_ATTEMPTS = 4
# Not the input's fault: retried where they happen, then the worker stops without acking.
TRANSIENT = (DeliveryFailed, StoreError)


async def write_tables(event: RawEvent, write: Callable[[], None]) -> None:
    """Run `write` (table writes) in `event`'s context, retried; StoreError if it keeps failing
    (a table written during a rebalance, a store that cannot be opened)."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(_WRITE_ATTEMPTS),
        wait=wait_exponential_jitter(initial=0.05, max=1.0),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt, event_context(event):
                write()
    except Exception as exc:
        raise StoreError(f"table write failed: {type(exc).__name__}") from exc


async def run_guarded(
    runtime: Runtime, stream: RawStream, handle: Callable[[RawEvent], Awaitable[None]], what: str
) -> None:
    """The one agent loop: each event handled; a transient failure stops the worker before the
    event's offset is committed; anything else is parked on the dead-letter topic (a bug must not
    stop a partition: review finding 1) and the loop goes on."""
    emit = Emitter(runtime)
    async for event in stream.events():
        try:
            await handle(event)
        except TRANSIENT as exc:
            log(logger, logging.ERROR, f"{what}: stopping the worker", error=exc.code)
            await runtime.app.crash(exc)
            return
        except Exception as exc:
            logger.error("%s could not handle an event", what, exc_info=_traceback(exc))
            await emit.dead_letter(event, ErrorKind.PROCESSING_ERROR, type(exc).__name__)


def _traceback(exc: BaseException) -> BaseException | None:
    # A pydantic error's text quotes its input: name it, never print it.
    return None if isinstance(exc, ValidationError) else exc


class Emitter:
    """Every output of the pipeline goes through here: one place for keys, ids and metrics.

    Each method hands its records to `out` (see Deliveries); the caller confirms them all at
    once before acknowledging its input. Without `out`, a send is confirmed at once.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._m = runtime.metrics

    async def _send(
        self, name: str | faust.TopicT, key: bytes, value: bytes, out: Deliveries | None
    ) -> None:
        topic = self._rt.topics[name] if isinstance(name, str) else name
        if out is not None:
            await out.send(topic, key, value)
            return
        single = Deliveries()
        await single.send(topic, key, value)
        await single.confirm()

    async def discrepancies(
        self, events: Sequence[DiscrepancyEvent], out: Deliveries | None = None
    ) -> None:
        for event in events:
            await self._send("discrepancies", event.npub.encode(), to_json_bytes(event), out)
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

    async def corrections(
        self, commands: Sequence[CorrectionCommand], out: Deliveries | None = None
    ) -> None:
        for command in commands:
            await self._send("corrections", command.npub.encode(), to_json_bytes(command), out)
            self._m.corrections.labels(command.set_status.value).inc()

    async def proof_check(self, event: ProofCheckEvent, out: Deliveries | None = None) -> None:
        key = (event.npub or event.mint_url).encode()
        await self._send("proof_checks", key, to_json_bytes(event), out)
        self._m.proofs_checked.labels(event.source.value, event.mint_url).inc(event.proofs_checked)

    async def answer(
        self, result: PreflightResult, reply_to: str | None, out: Deliveries | None = None
    ) -> None:
        """The verdict, on the results topic or an allow-listed reply topic (never another)."""
        topic = self._rt.reply_topic(reply_to)
        await self._send(topic, result.request_id.encode(), to_json_bytes(result), out)
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

    async def dead_letter(self, event: RawEvent, error_kind: ErrorKind, error: str) -> None:
        """Park `event` on the dead-letter topic: its place, why, and only the fields of it the
        contract knows (streams.redact). Confirmed before it returns."""
        message = event.message
        record = DeadLetterRecord(
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=redact_key(message.key if isinstance(message.key, bytes) else None),
            error_kind=error_kind,
            error=error,
            raw=redact_raw(message.value if isinstance(message.value, bytes | str) else None),
            received_at=utcnow(),
        )
        key = (record.key or "").encode()  # the redacted key: the raw one may be anything
        await self._send("dead_letter", key, to_json_bytes(record), None)
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
