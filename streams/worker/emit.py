"""Every output of the pipeline goes through one Emitter, and each is confirmed by the broker
before its input is acknowledged (`Deliveries`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import faust
from aiokafka import errors as kafka_errors
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from streams.core.contracts import (
    CorrectionCommand,
    DeadLetterRecord,
    DiscrepancyEvent,
    PreflightResult,
    ProofCheckEvent,
    to_json_bytes,
)
from streams.core.domain import ErrorKind, Lifecycle, Severity
from streams.core.errors import ContractError, DeliveryFailed, DeliveryRefused
from streams.core.logs import log
from streams.core.redact import redact_key, redact_raw
from streams.core.settings import Settings
from streams.worker.events import RawEvent, raw_topic, raw_value, utcnow
from streams.worker.metrics import Metrics

logger = logging.getLogger("proofrecon.emit")
Model = TypeVar("Model", bound=BaseModel)


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


class ReplyTopics:
    """Where an answer goes: the results topic, or an allow-listed reply topic. Anything else is
    refused (ContractError) before it can reach the producer: a reply_to naming a changelog or an
    internal topic would corrupt it (review finding 2)."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self._app = app
        self._settings = settings
        self._topics: dict[str, faust.TopicT] = {}

    def __call__(self, name: str | None) -> faust.TopicT:
        wanted = name or self._settings.topics.preflight_results
        if wanted not in self._settings.reply_topics:
            raise ContractError("reply_to is not on the reply allow-list")
        topic = self._topics.get(wanted)
        if topic is None:
            topic = self._topics[wanted] = raw_topic(
                self._app, wanted, self._settings.topics.partitions
            )
        return topic


class Emitter:
    """Every output of the pipeline goes through here: one place for keys, ids and metrics.

    Each method hands its records to `out` (see Deliveries); the caller confirms them all at
    once before acknowledging its input. Without `out`, a send is confirmed at once.
    """

    def __init__(
        self,
        topics: Mapping[str, faust.TopicT],
        reply_topic: Callable[[str | None], faust.TopicT],
        metrics: Metrics,
    ) -> None:
        self._topics = topics
        self._reply_topic = reply_topic
        self._m = metrics

    async def _send(
        self, name: str | faust.TopicT, key: bytes, value: bytes, out: Deliveries | None
    ) -> None:
        topic = self._topics[name] if isinstance(name, str) else name
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
        topic = self._reply_topic(reply_to)
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
        contract knows (streams.core.redact). Confirmed before it returns."""
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
