"""The event contracts of every topic (DESIGN.md, "Event contracts"), and their parsing at the edge.

Inputs (`TokenStatusEvent`, `MeltRequest`, `ValidateRequest`) are strict: unknown fields, unknown
enum values, non-positive amounts, malformed Ys, empty or oversized proof lists are errors. A proof
may name itself by `secret` instead of `Y`; the secret is turned into its Y before the model exists
and is dropped, so no model ever holds one. Outputs ignore unknown fields, so a consumer keeps
working while a newer producer adds some.

Timestamps are UTC with millisecond precision (JavaScript's `Date`, the seed wallet's language) and
serialise as ISO-8601 with a `Z`, e.g. `2025-08-08T12:00:00.123Z`. Inputs may also send epoch ms.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Self, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, ErrorDetails, PydanticCustomError

from streams.cashu import looks_like_cashu_token, scrub_text, validate_y, y_from_secret
from streams.domain import (
    Action,
    AlertKind,
    BlockCode,
    DbStatus,
    DiscrepancyType,
    ErrorKind,
    Lifecycle,
    MintState,
    Severity,
    Source,
    TokenStatus,
    Verdict,
)
from streams.errors import ContractError
from streams.mint_url import normalise_mint_url
from streams.settings import PolicySettings

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


class Recommendation(StrEnum):
    """The answer of the lightweight validation (the seed's validateProofStatesForOperation)."""

    PROCEED = "PROCEED"  # consistent, or only discrepancies that are logged
    RECONCILE_FIRST = "RECONCILE_FIRST"  # discrepancies that reconciliation corrects; then proceed
    BLOCK = "BLOCK"  # a blocking discrepancy: do not melt


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
# with the npub and end it at their first `|` (streams.ledger), whatever a token id holds.
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


# --- proofs ------------------------------------------------------------------------------------


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)


class _Output(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        serialize_by_alias=True,
        json_schema_serialization_defaults_required=True,  # every field is always emitted
    )


class ProofRef(_Input):
    """A proof by its public identity. Producers may send `secret` instead of `Y` (see module)."""

    y: YHex = Field(alias="Y")
    amount: Amount
    keyset_id: KeysetId

    @model_validator(mode="before")
    @classmethod
    def _secret_to_y(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict) or "secret" not in data:
            return data
        data = dict(data)  # never mutate the caller's dict
        y = _y_of_secret(data.pop("secret"), limits_of(info))
        given = data.get("Y")
        if given is not None and (not isinstance(given, str) or given.lower() != y):
            raise ValueError("secret and Y disagree: Y must be hash_to_curve(secret)")
        data["Y"] = y
        return data

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        if handler.mode == "validation":
            _describe_secret_alternative(handler.resolve_ref_schema(schema))
        return schema


def _y_of_secret(secret: Any, limits: ContractLimits) -> str:
    if not isinstance(secret, str) or not secret:
        raise ValueError("secret must be a non-empty string")
    if len(secret) > limits.max_secret_length:
        raise ValueError(f"secret is longer than {limits.max_secret_length} characters")
    return y_from_secret(secret)


def _describe_secret_alternative(schema: JsonSchemaValue) -> None:
    schema["properties"]["secret"] = {
        "type": "string",
        "minLength": 1,
        "maxLength": DEFAULT_MAX_SECRET_LENGTH,
        "description": "Instead of Y: the proof's secret. Y is derived from it at the edge "
        "(hash_to_curve of its UTF-8 bytes) and the secret is dropped. If both are "
        "sent they must agree. maxLength is the default of PROOFRECON_POLICY_MAX_SECRET_LENGTH.",
    }
    schema["required"] = [name for name in schema["required"] if name != "Y"]
    schema["anyOf"] = [{"required": ["Y"]}, {"required": ["secret"]}]


class MeltProofRef(ProofRef):
    token_id: Identifier | None = None


_P = TypeVar("_P", bound=ProofRef)


def _check_proof_count(value: Any, info: ValidationInfo) -> Any:
    # Runs before any element is validated, so an oversized list costs almost nothing.
    if isinstance(value, list | tuple):
        if not value:
            raise ValueError("must hold at least one proof")
        limit = limits_of(info).max_proofs
        if len(value) > limit:
            raise PydanticCustomError(
                TOO_MANY_PROOFS,
                "holds {count} proofs; at most {limit} are allowed",
                {"count": len(value), "limit": limit},
            )
    return value


def _check_unique_ys(proofs: tuple[_P, ...]) -> tuple[_P, ...]:
    if len({proof.y for proof in proofs}) != len(proofs):
        raise ValueError("the same proof (Y) appears more than once")
    return proofs


_PROOF_LIST_SCHEMA = {"minItems": 1, "maxItems": DEFAULT_MAX_PROOFS}
ProofList = Annotated[
    tuple[ProofRef, ...],
    BeforeValidator(_check_proof_count),
    AfterValidator(_check_unique_ys),
    Field(json_schema_extra=_PROOF_LIST_SCHEMA),
]
MeltProofList = Annotated[
    tuple[MeltProofRef, ...],
    BeforeValidator(_check_proof_count),
    AfterValidator(_check_unique_ys),
    Field(json_schema_extra=_PROOF_LIST_SCHEMA),
]


# --- inputs ------------------------------------------------------------------------------------


class TokenStatusEvent(_Input):
    """`wallet.token-status`: a token's status changed in the wallet DB (from its outbox)."""

    event_id: Identifier
    npub: Npub
    token_id: Identifier
    mint_url: MintUrl
    status: TokenStatus
    version: Count = Field(description="Monotonic per token; older versions are ignored.")
    occurred_at: UtcDatetime
    transaction_type: ShortText | None = None
    proofs: ProofList


class MeltRequest(_Input):
    """`wallet.melt-requests`: a preflight check before a melt; answered by request_id."""

    request_id: Identifier
    npub: Npub
    mint_url: MintUrl
    quote_id: Identifier | None = None
    amount: Amount | None = None
    proofs: MeltProofList
    requested_at: UtcDatetime
    reply_to: TopicName | None = Field(None, description="Default: recon.preflight-results.")
    deadline_ms: Annotated[int, Field(strict=True, gt=0, le=600_000)] | None = None


class ValidateRequest(_Input):
    """Body of the web API's lightweight validation."""

    npub: Npub
    mint_url: MintUrl
    proofs: ProofList


# --- outputs -----------------------------------------------------------------------------------


class SeverityCounts(_Output):
    high: Count = Field(0, alias="HIGH")
    medium: Count = Field(0, alias="MEDIUM")
    low: Count = Field(0, alias="LOW")

    @classmethod
    def of(cls, severities: Iterable[Severity]) -> Self:
        listed = list(severities)
        return cls(
            HIGH=listed.count(Severity.HIGH),
            MEDIUM=listed.count(Severity.MEDIUM),
            LOW=listed.count(Severity.LOW),
        )

    def get(self, severity: Severity) -> int:
        return {Severity.HIGH: self.high, Severity.MEDIUM: self.medium, Severity.LOW: self.low}[
            severity
        ]


class PreflightDiscrepancy(_Output):
    """One line of a preflight answer's `discrepancies`."""

    y: YHex = Field(alias="Y")
    type: DiscrepancyType
    severity: Severity
    db_status: DbStatus | None
    mint_state: MintState
    action: Action


# An answer echoes its request; an INVALID_REQUEST answer may echo a missing or broken value.
EchoedText = Annotated[str, StringConstraints(max_length=2048)]


Digest = Annotated[str, StringConstraints(pattern=r"^([0-9a-f]{64})?$")]


def proofs_digest(ys: Iterable[str]) -> str:
    """SHA-256 (lowercase hex) of the request's Ys, lowercased, sorted, joined by newlines.

    Echoed in the answer, so a wallet accepts only an answer about the proofs it asked about
    (review finding 14): a request_id alone can be guessed or replayed."""
    joined = "\n".join(sorted(y.lower() for y in ys))
    return hashlib.sha256(joined.encode("ascii")).hexdigest()


class PreflightResult(_Output):
    """`recon.preflight-results`, keyed by request_id."""

    request_id: Identifier
    npub: EchoedText = Field(description="The request's npub; empty if an invalid one had none.")
    mint_url: EchoedText = Field(
        description="The request's mint_url; empty if an invalid one had none."
    )
    operation_cleared: bool
    verdict: Verdict
    code: BlockCode | None
    discrepancies_found: Count
    discrepancies_resolved: Count
    severity_counts: SeverityCounts
    discrepancies: tuple[PreflightDiscrepancy, ...]
    checked_proofs: Count
    duration_ms: float = Field(ge=0)
    answered_at: UtcDatetime
    proofs_digest: Digest = Field(
        "",
        description="SHA-256 (lowercase hex) of the request's Ys (lowercase hex), sorted, joined "
        'by "\\n". A wallet accepts an answer only if npub, mint_url and this match what it '
        "asked. Empty when the request was too broken to read its proofs.",
    )

    @model_validator(mode="after")
    def _verdict_consistent(self) -> Self:
        blocked = self.verdict is Verdict.BLOCKED
        if self.operation_cleared == blocked or (self.code is not None) != blocked:
            raise ValueError("verdict, code and operation_cleared disagree")
        return self


class DiscrepancyEvent(_Output):
    """`recon.discrepancies`: one classified discrepancy; `event_id` is deterministic."""

    event_id: Identifier
    detected_at: UtcDatetime
    npub: Npub
    mint_url: MintUrl
    token_id: Identifier | None
    y: YHex = Field(alias="Y")
    amount: Amount
    keyset_id: KeysetId
    type: DiscrepancyType
    severity: Severity
    db_status: DbStatus | None
    mint_state: MintState
    action: Action
    source: Source
    request_id: Identifier | None
    lifecycle: Lifecycle = Lifecycle.OPENED


class CorrectionCommand(_Output):
    """`wallet.corrections`: idempotent (set, not toggle), with a deterministic `command_id`."""

    command_id: Identifier
    npub: Npub
    token_id: Identifier
    mint_url: MintUrl
    ys: tuple[YHex, ...] = Field(alias="Ys", min_length=1)
    set_status: DbStatus
    reason: str
    discrepancy_event_ids: tuple[Identifier, ...]
    issued_at: UtcDatetime


class ProofCheckEvent(_Output):
    """`recon.proof-checks`: how many proofs were checked (the denominator of severity rates)."""

    event_id: Identifier
    checked_at: UtcDatetime
    mint_url: MintUrl
    source: Source
    proofs_checked: Count
    npub: Npub | None = None
    request_id: Identifier | None = None


class Alert(_Output):
    """`recon.alerts`."""

    alert_id: Identifier
    kind: AlertKind
    severity: Severity
    mint_url: MintUrl
    npub: Npub | None = None
    message: str
    observed: float
    threshold: float | None = None
    window_start: UtcDatetime | None = None
    window_end: UtcDatetime | None = None
    raised_at: UtcDatetime


class DeadLetterRecord(_Output):
    """`recon.dead-letter`. Text fields are scrubbed on construction, whoever builds one."""

    source_topic: str
    partition: int | None
    offset: int | None
    key: str | None
    error_kind: ErrorKind
    error: str
    raw: str = Field(description="The input, scrubbed of secrets, at most 4 KiB of UTF-8.")
    received_at: UtcDatetime

    @field_validator("key", "error", "raw", mode="before")
    @classmethod
    def _scrubbed(cls, value: Any) -> Any:
        if isinstance(value, str | bytes):
            return _utf8_cut(scrub_text(value, max_chars=DEAD_LETTER_RAW_MAX_BYTES))
        return value


def _utf8_cut(text: str) -> str:
    encoded = text.encode("utf-8")[:DEAD_LETTER_RAW_MAX_BYTES]
    return encoded.decode("utf-8", errors="ignore")  # drops a character cut in half


class ValidateResponse(_Output):
    valid: bool
    has_high_severity: bool
    recommendation: Recommendation
    discrepancies: tuple[PreflightDiscrepancy, ...]


# --- parsing and serialisation at the edge -----------------------------------------------------


_M = TypeVar("_M", bound=BaseModel)


_MAX_LISTED_PROBLEMS = 10
_MIN_MASKED_INPUT = 8  # shorter inputs are too likely to be words of the message itself


def parse_contract(
    model: type[_M], raw: bytes | str, limits: ContractLimits = DEFAULT_LIMITS
) -> _M:
    """Validate a raw JSON message against `model`, or raise `InvalidContract`."""
    try:
        return model.model_validate_json(raw, context=limits.context())
    except ValidationError as exc:
        # `from None`: a chained ValidationError would print input values in tracebacks.
        raise _invalid(model.__name__, exc) from None


def parse_token_status(
    raw: bytes | str, limits: ContractLimits = DEFAULT_LIMITS
) -> TokenStatusEvent:
    return parse_contract(TokenStatusEvent, raw, limits)


def parse_melt_request(raw: bytes | str, limits: ContractLimits = DEFAULT_LIMITS) -> MeltRequest:
    return parse_contract(MeltRequest, raw, limits)


def parse_validate_request(
    raw: bytes | str, limits: ContractLimits = DEFAULT_LIMITS
) -> ValidateRequest:
    return parse_contract(ValidateRequest, raw, limits)


def _invalid(name: str, exc: ValidationError) -> ContractError:
    errors = exc.errors(include_url=False, include_context=False)
    problems = tuple(_describe(error) for error in errors)
    listed = "; ".join(problems[:_MAX_LISTED_PROBLEMS])
    if len(problems) > _MAX_LISTED_PROBLEMS:
        listed += f"; and {len(problems) - _MAX_LISTED_PROBLEMS} more"
    return ContractError(
        f"invalid {name}: {listed}", error_kind=_error_kind(errors), problems=problems
    )


def _error_kind(errors: list[ErrorDetails]) -> ErrorKind:
    types = {error["type"] for error in errors}
    if "json_invalid" in types or "json_type" in types:
        return ErrorKind.DECODE_ERROR
    if TOO_MANY_PROOFS in types:
        return ErrorKind.TOO_LARGE
    return ErrorKind.VALIDATION_ERROR


def _describe(error: ErrorDetails) -> str:
    where = ".".join(_loc_part(part) for part in error["loc"]) or "(message)"
    message = error["msg"].removeprefix("Value error, ")
    # Defence in depth: our messages never echo input, but make sure no input string slips in.
    for text in _strings_in(error.get("input")):
        if len(text) >= _MIN_MASKED_INPUT:
            message = message.replace(text, "<input>")
    return f"{where}: {message}"


def _loc_part(part: str | int) -> str:
    # A location names a field of ours or an index. Anything else is a key the input made up,
    # and input keys can be secrets (a proof secret used as a key): it is never repeated.
    if isinstance(part, int) or part in _FIELD_NAMES:
        return str(part)
    return "<extra field>"


def _strings_in(value: Any, budget: int = 1000) -> list[str]:
    found: list[str] = []
    stack = [value]
    while stack and len(found) < budget:
        item = stack.pop()
        if isinstance(item, str | bytes):
            found.append(item.decode("utf-8", "replace") if isinstance(item, bytes) else item)
        elif isinstance(item, dict):
            stack.extend(item.values())  # keys are field names, not values
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found


def _field_names(*models: type[BaseModel]) -> frozenset[str]:
    names: set[str] = {"secret", "[key]"}
    for model in models:
        for name, info in model.model_fields.items():
            names.add(name)
            if info.alias:
                names.add(info.alias)
    # pydantic names the branches of unions and the element validators in locations too.
    return frozenset(names | {"function-after", "function-before", "json-or-python", "list"})


_FIELD_NAMES = _field_names(TokenStatusEvent, MeltRequest, MeltProofRef, ValidateRequest)


def extract_field(raw: bytes | str, name: str) -> str | None:
    """Best effort: a top-level string field of a message that failed validation, if sane.

    Lets the preflight answer an invalid melt request (INVALID_REQUEST) when it has a request_id.
    Broken JSON is searched with a pattern; the value must still look like an identifier.
    """
    data = _loads_or_none(raw)
    if isinstance(data, dict):
        value = data.get(name)
    else:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        match = re.search(rf'"{re.escape(name)}"\s*:\s*"((?:[^"\\]|\\.){{1,256}})"', text)
        value = _loads_or_none(f'"{match.group(1)}"') if match else None
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        return None
    return None if looks_like_cashu_token(value) else value


def extract_request_id(raw: bytes | str) -> str | None:
    return extract_field(raw, "request_id")


def extract_npub(raw: bytes | str) -> str | None:
    return extract_field(raw, "npub")


def extract_reply_to(raw: bytes | str) -> str | None:
    value = extract_field(raw, "reply_to")
    return value if value is not None and _TOPIC_NAME.fullmatch(value) else None


_IDENTIFIER = re.compile(r"\S{1,256}")
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def _loads_or_none(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def to_json_bytes(model: BaseModel) -> bytes:
    """Compact JSON by alias (`Y`, `Ys`, `HIGH`...), timestamps as ISO-8601 UTC with `Z`."""
    return model.model_dump_json(by_alias=True).encode("utf-8")


def to_json_dict(model: BaseModel) -> dict[str, Any]:
    """The same content as `to_json_bytes`, as a dict of JSON values."""
    return model.model_dump(mode="json", by_alias=True)
