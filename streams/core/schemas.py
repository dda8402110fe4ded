"""JSON Schemas of the event contracts, generated from the pydantic models.

Wallets in other languages (the seed's wallet is Node.js) produce and consume against these. Input
contracts are described as producers may send them (mode "validation": `secret` instead of `Y`,
epoch ms timestamps); outputs as we emit them (mode "serialization"). Files are named after the
topic, and the output is deterministic (sorted keys, trailing newline) so the committed copies in
`schemas/` can be compared with a fresh export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from streams.core.contracts import (
    Alert,
    CorrectionCommand,
    DeadLetterRecord,
    DiscrepancyEvent,
    MeltRequest,
    PreflightResult,
    ProofCheckEvent,
    TokenStatusEvent,
    ValidateRequest,
    ValidateResponse,
)
from streams.core.settings import TopicSettings

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
Mode = Literal["validation", "serialization"]
_CONSUMED: Mode = "validation"  # what producers may send
_PRODUCED: Mode = "serialization"  # what we emit


def _default_topic(field: str) -> str:
    # The default topic names are the contract; read them where they are defined.
    default = TopicSettings.model_fields[field].default
    assert isinstance(default, str)
    return default


@dataclass(frozen=True, slots=True)
class Contract:
    name: str  # the file is <name>.schema.json
    model: type[BaseModel]
    mode: Mode
    description: str


def contracts() -> list[Contract]:
    produced, consumed = _PRODUCED, _CONSUMED
    return [
        Contract(
            _default_topic("token_status"),
            TokenStatusEvent,
            consumed,
            "Wallet DB outbox: a token's status changed. Key: npub.",
        ),
        Contract(
            _default_topic("melt_requests"),
            MeltRequest,
            consumed,
            "A melt preflight request. Key: npub.",
        ),
        Contract(
            _default_topic("preflight_results"),
            PreflightResult,
            produced,
            "The answer to a melt preflight. Key: request_id.",
        ),
        Contract(
            _default_topic("discrepancies"),
            DiscrepancyEvent,
            produced,
            "A classified discrepancy between the wallet DB and the mint. Key: npub.",
        ),
        Contract(
            _default_topic("corrections"),
            CorrectionCommand,
            produced,
            "A status fix for the wallet DB (idempotent). Key: npub.",
        ),
        Contract(
            _default_topic("proof_checks"),
            ProofCheckEvent,
            produced,
            "How many proofs were checked: the denominator of severity rates.",
        ),
        Contract(_default_topic("alerts"), Alert, produced, "An alert for on-call."),
        Contract(
            _default_topic("dead_letter"),
            DeadLetterRecord,
            produced,
            "Input that could not be processed, scrubbed of secrets.",
        ),
        Contract(
            "api.validate-request",
            ValidateRequest,
            consumed,
            "Web API: body of the lightweight validation (POST).",
        ),
        Contract(
            "api.validate-response",
            ValidateResponse,
            produced,
            "Web API: answer of the lightweight validation.",
        ),
    ]


def schema_of(contract: Contract) -> dict[str, Any]:
    schema = contract.model.model_json_schema(mode=contract.mode, by_alias=True)
    return {
        **schema,
        "$schema": JSON_SCHEMA_DIALECT,
        "title": contract.name,
        "description": f"{contract.description} {schema.get('description', '')}".strip(),
    }


def render(contract: Contract) -> str:
    return json.dumps(schema_of(contract), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export_schemas(directory: Path) -> list[Path]:
    """Write one `<topic>.schema.json` per contract into `directory`; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for contract in contracts():
        path = directory / f"{contract.name}.schema.json"
        path.write_text(render(contract), encoding="utf-8")
        written.append(path)
    return written
