"""Finding 10 (medium): a TLS downgrade from a stray SASL setting.

At 7262b21 `SECURITY_PROTOCOL=SSL` with a leftover `SASL_MECHANISM` made the worker (Faust) connect
with SASL_PLAINTEXT, with no TLS and a PLAIN password in clear, while the admin, sink and clients
used SSL. Settings that would connect less securely than they read are now refused, and the
worker's credentials derive from the same `client_kwargs` as every other client.
"""

from __future__ import annotations

import importlib
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faust
import pytest
from pydantic import ValidationError

from devkit.processes import WorkerProcess
from devkit.wallet import Scenario
from streams.client import PreflightClient, TokenStatusPublisher, token_status_event
from streams.core.kafka import client_kwargs, faust_credentials
from streams.core.settings import KafkaSettings, Settings
from tests.conftest import MINT_URL, build_test_settings, clear_proofrecon_env
from tests.support.pipeline import ask, ledger_shows, melt, npub, ref

SASL: dict[str, Any] = {"sasl_username": "proofrecon", "sasl_password": "pw-" + uuid.uuid4().hex}


@pytest.mark.parametrize(
    "fields",
    [
        {"security_protocol": "SSL", "sasl_mechanism": "PLAIN"},
        {"security_protocol": "SSL", "sasl_mechanism": "SCRAM-SHA-512", **SASL},
        {"security_protocol": "SSL", **SASL},
        {"security_protocol": "PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256", **SASL},
    ],
)
def test_finding_10_sasl_settings_with_a_non_sasl_protocol_are_refused(
    fields: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_proofrecon_env(monkeypatch)
    with pytest.raises(ValidationError, match="SASL settings are set but security_protocol"):
        KafkaSettings(bootstrap_servers="127.0.0.1:9092", **fields)


def test_finding_10_plain_without_tls_and_tls_files_without_tls_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clear_proofrecon_env(monkeypatch)
    with pytest.raises(ValidationError, match="PLAIN sends the password in clear"):
        KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", **SASL)
    ca = tmp_path / "ca.pem"
    ca.write_text("not read")
    for protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
        extra = {"sasl_mechanism": "SCRAM-SHA-512", **SASL} if protocol.startswith("SASL") else {}
        with pytest.raises(ValidationError, match="TLS files are set"):
            KafkaSettings(security_protocol=protocol, ssl_cafile=ca, **extra)


def test_finding_10_the_worker_connects_as_every_other_client_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clear_proofrecon_env(monkeypatch)
    sasl_ssl = KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="PLAIN", **SASL)
    creds = faust_credentials(sasl_ssl)
    assert isinstance(creds, faust.SASLCredentials)
    assert isinstance(creds.ssl_context, ssl.SSLContext)  # TLS under SASL, as the clients do
    assert client_kwargs(sasl_ssl)["security_protocol"] == "SASL_SSL"
    assert isinstance(faust_credentials(KafkaSettings(security_protocol="SSL")), ssl.SSLContext)
    assert faust_credentials(KafkaSettings()) is None
    scram = KafkaSettings(
        security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512", **SASL
    )
    creds = faust_credentials(scram)
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.mechanism.value, creds.username, creds.password) == (
        "SCRAM-SHA-512",
        SASL["sasl_username"],
        SASL["sasl_password"],
    )


@pytest.fixture(scope="module")
def scram(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """(bootstrap, user, password) of a SASL_PLAINTEXT/SCRAM-SHA-512 listener: the default
    broker's when it has one, else a private single-node broker's (as tests/test_stack_scram)."""
    # stack/harness.py is imported at run time only: it has mypy errors of its own (not ours).
    harness: Any = importlib.import_module("stack.harness")
    found = harness.StackScript.default().run("scram", check=False)
    if found.returncode == 0:
        bootstrap, user, password = found.stdout.split()
        yield bootstrap, user, password
        return
    stack = harness.StackScript.private(Path(tmp_path_factory.mktemp("scram")))
    try:
        stack.run("up", "kafka", timeout=300)
        bootstrap, user, password = stack.run("scram").stdout.split()
        yield bootstrap, user, password
    finally:
        stack.remove()


@pytest.mark.stack
@pytest.mark.timeout(240)
async def test_finding_10_a_worker_and_the_client_over_scram_answer_a_melt(
    scram: tuple[str, str, str],
    real_scenario: Scenario,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bootstrap, user, password = scram
    clear_proofrecon_env(monkeypatch)
    settings: Settings = build_test_settings(
        uuid.uuid4().hex[:10],
        tmp_path / "data",
        kafka={
            "bootstrap_servers": bootstrap,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": user,
            "sasl_password": password,
        },
        sweep={"enabled": False},
        clickhouse={"sink_enabled": False},
    )
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        owner = npub()
        spent = real_scenario.spent_elsewhere[:1]
        event = token_status_event(owner, "tok-scram", MINT_URL, "unspent", [ref(spent[0])])
        async with TokenStatusPublisher(settings) as publisher:
            await publisher.publish(event)
        await ledger_shows(worker, owner, spent, "unspent")
        async with PreflightClient(settings) as client:
            result = await ask(client, melt(owner, spent))
        assert (result.verdict, result.code) == ("BLOCKED", "HIGH_SEVERITY_DISCREPANCIES")
        assert password not in worker.log_text()
    finally:
        worker.stop()
