"""Parsing and serialisation at the edge: contract errors that never quote input."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import (
    BaseModel,
    ValidationError,
)
from pydantic_core import ErrorDetails

from streams.core.cashu import looks_like_cashu_token
from streams.core.contracts.fields import (
    DEFAULT_LIMITS,
    TOO_MANY_PROOFS,
    ContractLimits,
)
from streams.core.contracts.inputs import (
    MeltProofRef,
    MeltRequest,
    TokenStatusEvent,
    ValidateRequest,
)
from streams.core.domain import (
    ErrorKind,
)
from streams.core.errors import ContractError

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
