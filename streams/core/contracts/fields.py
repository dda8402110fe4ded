"""Field types and limits shared by every contract. Validator messages never repeat the input:
they become contract errors shown to producers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
)

from streams.core.cashu import looks_like_cashu_token, validate_y
from streams.core.mint_url import normalise_mint_url
from streams.core.settings import PolicySettings

DEFAULT_MAX_PROOFS = 1000
DEFAULT_MAX_SECRET_LENGTH = 1024
DEAD_LETTER_RAW_MAX_BYTES = 4096
LIMITS_CONTEXT_KEY = "limits"
TOO_MANY_PROOFS = "too_many_proofs"


@dataclass(frozen=True, slots=True)
class ContractLimits:
    """Size limits of input contracts, passed to validation through pydantic's `context`."""

    max_proofs: int = DEFAULT_MAX_PROOFS
    max_secret_length: int = DEFAULT_MAX_SECRET_LENGTH

    @classmethod
    def from_settings(cls, policy: PolicySettings) -> ContractLimits:
        return cls(policy.max_proofs_per_event, policy.max_secret_length)

    def context(self) -> dict[str, Any]:
        return {LIMITS_CONTEXT_KEY: self}


DEFAULT_LIMITS = ContractLimits()


def limits_of(info: ValidationInfo) -> ContractLimits:
    context = info.context
    limits = context.get(LIMITS_CONTEXT_KEY) if isinstance(context, dict) else None
    return limits if isinstance(limits, ContractLimits) else DEFAULT_LIMITS


# --- field types -------------------------------------------------------------------------------
# Validator messages never repeat the input: they become contract errors shown to producers.


def _from_epoch_ms(value: Any) -> Any:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError("epoch milliseconds out of range") from None
    return value


def _to_utc_ms(value: datetime) -> datetime:
    utc = value.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def _iso_z(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_DATE_TIME_SCHEMA = {"type": "string", "format": "date-time"}

UtcDatetime = Annotated[
    AwareDatetime,
    BeforeValidator(_from_epoch_ms),
    AfterValidator(_to_utc_ms),
    PlainSerializer(_iso_z, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {**_DATE_TIME_SCHEMA, "description": "ISO-8601 with a UTC offset or Z"},
                {"type": "integer", "minimum": 0, "description": "epoch milliseconds"},
            ]
        },
        mode="validation",
    ),
    WithJsonSchema(_DATE_TIME_SCHEMA, mode="serialization"),
]


MintUrl = Annotated[
    str,
    StringConstraints(min_length=8, max_length=2048, pattern=r"^https?://\S+$"),
    AfterValidator(normalise_mint_url),
]


def _not_a_token(value: str) -> str:
    # An id is echoed in answers and logs; a Cashu token there would spread its secrets.
    if looks_like_cashu_token(value):
        raise ValueError("must be an id, not a Cashu token")
    return value


Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256, pattern=r"^\S+$"),
    AfterValidator(_not_a_token),
]
# The wallet's user key; also the Kafka key of wallet-facing topics. No `|`: table keys start
# with the npub and end it at their first `|` (streams.recon.ledger), whatever a token id holds.
Npub = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256, pattern=r"^[^\s|]+$"),
    AfterValidator(_not_a_token),
]
KeysetId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[0-9A-Za-z+/=_-]+$")
]
YHex = Annotated[
    str,
    StringConstraints(pattern=r"^0[23][0-9a-fA-F]{64}$"),
    AfterValidator(validate_y),
    WithJsonSchema({"type": "string", "pattern": "^0[23][0-9a-f]{64}$"}, mode="serialization"),
]
Amount = Annotated[int, Field(strict=True, gt=0, le=2**63 - 1)]
Count = Annotated[int, Field(strict=True, ge=0)]
ShortText = Annotated[str, StringConstraints(max_length=128)]
TopicName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,249}$")]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)


class Output(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        serialize_by_alias=True,
        json_schema_serialization_defaults_required=True,  # every field is always emitted
    )
