"""Inputs: strict. A proof may name itself by `secret`; the Y is derived and the secret dropped
before the model exists."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetJsonSchemaHandler,
    ValidationInfo,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from streams.core.cashu import y_from_secret
from streams.core.contracts.fields import (
    DEFAULT_MAX_PROOFS,
    DEFAULT_MAX_SECRET_LENGTH,
    TOO_MANY_PROOFS,
    Amount,
    ContractLimits,
    Count,
    Identifier,
    Input,
    KeysetId,
    MintUrl,
    Npub,
    ShortText,
    TopicName,
    UtcDatetime,
    YHex,
    limits_of,
)
from streams.core.domain import (
    TokenStatus,
)


class ProofRef(Input):
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


class TokenStatusEvent(Input):
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


class MeltRequest(Input):
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


class ValidateRequest(Input):
    """Body of the web API's lightweight validation."""

    npub: Npub
    mint_url: MintUrl
    proofs: ProofList
