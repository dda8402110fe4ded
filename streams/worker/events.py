"""The events agents handle: raw bytes in (we decode them ourselves, so bad input reaches the
dead-letter path instead of Faust's decoder), and the event context table access needs."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeAlias

import faust
from faust.streams import _current_event
from faust.types import EventT, StreamT

RawEvent: TypeAlias = EventT[Any]
RawStream: TypeAlias = StreamT[Any]


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


def raw_topic(app: faust.App, name: str, partitions: int) -> faust.TopicT:
    """A topic of raw bytes: keys stay the producer's exact bytes (murmur2 of the npub)."""
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        internal=False,
    )
