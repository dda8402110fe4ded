"""What the alerts agent consumes: `recon.alerts-input`, an internal topic keyed by mint_url.

Alerting state is per mint (windows, baselines, incidents), while discrepancies are keyed by npub
and land on any partition. Forwarders re-key what alerting needs onto the mint's partition, so one
partition owner sees every input of a mint and keeps its state in Faust tables in event context.

Signals carry no proof data at all (no Y, no secret): only counts, severities and ids (a proof
is named by a hash of its mint and Y, to count distinct proofs). Forwarded
ones name the record they came from (`SourceRef`), which lets the agent count each exactly once
however often it is forwarded (after a crash, or a replay of the source topic from the start).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from streams.core.contracts import UtcDatetime
from streams.core.domain import DiscrepancyType, Lifecycle, Severity
from streams.mint.observer import MintHealth


class _Signal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class SourceRef(_Signal):
    """The forwarded record: its topic, partition and offset."""

    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)

    @property
    def stream(self) -> str:
        return f"{self.topic}:{self.partition}"


class DiscrepancySignal(_Signal):
    kind: Literal["discrepancy"] = "discrepancy"
    event_id: str
    at: UtcDatetime  # the event's detected_at
    mint_url: str
    npub: str
    severity: Severity
    type: DiscrepancyType
    lifecycle: Lifecycle
    request_id: str | None = None
    # A hash naming the proof (`ids.proof_ref`), not its Y: one proof seen by a preflight and by
    # the live watch is one HIGH discrepancy to the person paged, not two.
    proof_ref: str | None = None
    source: SourceRef


class ChecksSignal(_Signal):
    """Proofs checked at a mint: the denominator of anomaly rates."""

    kind: Literal["checks"] = "checks"
    event_id: str
    at: UtcDatetime  # the event's checked_at
    mint_url: str
    proofs: int = Field(ge=0)
    source: SourceRef


class HealthSignal(_Signal):
    """A mint gateway's health changed in one worker (`reporter`), or a recovery probe answered."""

    kind: Literal["health"] = "health"
    event_id: str
    at: UtcDatetime
    mint_url: str
    old: MintHealth
    new: MintHealth
    reporter: str


class TickSignal(_Signal):
    """Wall-clock time, sent to a partition so its quiet mints' windows and groups still close.

    Table writes need an event of the partition (faust-streaming #497); a timer has none, so it
    sends this instead of touching the tables itself.
    """

    kind: Literal["tick"] = "tick"
    at: UtcDatetime


class ReceiptSignal(_Signal):
    """A webhook delivery ended: the alert leaves that receiver's outbox."""

    kind: Literal["receipt"] = "receipt"
    alert_id: str
    mint_url: str
    receiver: str
    outcome: Literal["delivered", "gave_up"]
    at: UtcDatetime


Signal = Annotated[
    DiscrepancySignal | ChecksSignal | HealthSignal | TickSignal | ReceiptSignal,
    Field(discriminator="kind"),
]
_ADAPTER: TypeAdapter[Signal] = TypeAdapter(Signal)


def parse_signal(raw: bytes | str) -> Signal:
    """Raises pydantic.ValidationError on anything that is not a signal."""
    return _ADAPTER.validate_json(raw)


def signal_bytes(signal: Signal) -> bytes:
    return signal.model_dump_json().encode("utf-8")
