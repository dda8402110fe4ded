"""The committed JSON Schemas in schemas/ must equal a fresh export of the models."""

from __future__ import annotations

import json
from pathlib import Path

from streams.core.schemas import contracts, export_schemas

COMMITTED = Path(__file__).resolve().parent.parent / "schemas"
FIX = "run `proofrecon schemas export schemas` (from the repository root) and commit the result"


def test_committed_schemas_are_up_to_date(tmp_path: Path) -> None:
    fresh = {path.name: path.read_text(encoding="utf-8") for path in export_schemas(tmp_path)}
    committed = {p.name: p.read_text(encoding="utf-8") for p in COMMITTED.glob("*.schema.json")}
    missing = sorted(set(fresh) - set(committed))
    extra = sorted(set(committed) - set(fresh))
    stale = sorted(name for name in set(fresh) & set(committed) if fresh[name] != committed[name])
    assert not (missing or extra or stale), (
        f"schemas/ is out of date (missing {missing}, unexpected {extra}, stale {stale}): {FIX}"
    )


def test_export_is_deterministic(tmp_path: Path) -> None:
    first = [p.read_bytes() for p in export_schemas(tmp_path / "a")]
    second = [p.read_bytes() for p in export_schemas(tmp_path / "b")]
    assert first == second
    assert all(content.endswith(b"}\n") for content in first)


def test_one_file_per_contract_named_after_its_topic(tmp_path: Path) -> None:
    names = {path.name for path in export_schemas(tmp_path)}
    assert {
        "wallet.token-status.schema.json",
        "wallet.melt-requests.schema.json",
        "recon.preflight-results.schema.json",
        "recon.discrepancies.schema.json",
        "wallet.corrections.schema.json",
        "recon.proof-checks.schema.json",
        "recon.alerts.schema.json",
        "recon.dead-letter.schema.json",
        "api.validate-request.schema.json",
        "api.validate-response.schema.json",
    } == names
    assert len(names) == len(contracts())


def test_input_schema_allows_secret_instead_of_y(tmp_path: Path) -> None:
    export_schemas(tmp_path)
    schema = json.loads((tmp_path / "wallet.token-status.schema.json").read_text())
    proof = schema["$defs"]["ProofRef"]
    assert {"Y", "secret", "amount", "keyset_id"} <= set(proof["properties"])
    assert "Y" not in proof["required"]
    assert proof["anyOf"] == [{"required": ["Y"]}, {"required": ["secret"]}]
    assert proof["additionalProperties"] is False
    assert schema["properties"]["proofs"]["maxItems"] == 1000


def test_output_schema_has_capital_y_and_every_field_required(tmp_path: Path) -> None:
    export_schemas(tmp_path)
    schema = json.loads((tmp_path / "recon.discrepancies.schema.json").read_text())
    assert "Y" in schema["required"]
    assert "lifecycle" in schema["required"]
    assert "secret" not in json.dumps(schema["properties"])
    assert schema["properties"]["detected_at"] == {
        "format": "date-time",
        "title": "Detected At",
        "type": "string",
    }
