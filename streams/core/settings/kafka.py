"""Kafka: brokers, security, the consumer group; the topics proofrecon reads and writes."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from streams.core.settings._base import Themed


class KafkaSettings(Themed):
    model_config = SettingsConfigDict(env_prefix="PROOFRECON_KAFKA_")

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Comma-separated Kafka bootstrap servers (host:port)."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when the protocol is SASL_*."
    )
    sasl_username: str | None = Field(None, description="SASL username.")
    sasl_password: SecretStr | None = Field(None, description="SASL password.")
    ssl_cafile: Path | None = Field(None, description="CA bundle to verify the brokers (SSL).")
    ssl_certfile: Path | None = Field(None, description="Client certificate for mutual TLS.")
    ssl_keyfile: Path | None = Field(None, description="Client private key for mutual TLS.")
    app_id: str = Field(
        "proofrecon", description="Faust application id: the consumer group and table prefix."
    )
    commit_interval_s: float = Field(
        1.0, gt=0, description="How often consumed offsets are committed (seconds)."
    )
    send_timeout_s: float = Field(
        15.0,
        gt=0,
        description="Longest one produce request may take, metadata of a missing topic "
        "included (seconds); a send that fails is retried a few times, then the worker stops.",
    )
    instance_id: str | None = Field(
        None,
        description="Static group membership (KIP-345): a stable id per worker (e.g. its host "
        "name). A worker restarted within session_timeout_s takes its partitions back at once, "
        "with no rebalance; unset, it waits for the dead member's session to expire.",
    )
    standby_replicas: int = Field(
        0,
        ge=0,
        description="Standby copies of each table partition on other workers, so a partition "
        "that moves is ready sooner (useful with several workers).",
    )
    session_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Consumer group session timeout: how soon a crashed worker's partitions "
        "move to a live one (seconds).",
    )

    @model_validator(mode="after")
    def _consistent_security(self) -> KafkaSettings:
        """Refuse settings that would connect less securely than they read (review finding 10:
        SSL plus a stray SASL mechanism used to run SASL_PLAINTEXT, a password in clear)."""
        sasl = self.security_protocol.startswith("SASL")
        tls = self.security_protocol.endswith("SSL")
        if sasl and not (self.sasl_mechanism and self.sasl_username and self.sasl_password):
            raise ValueError("SASL protocols need sasl_mechanism, sasl_username, sasl_password")
        if not sasl and (self.sasl_mechanism or self.sasl_username or self.sasl_password):
            raise ValueError(
                f"SASL settings are set but security_protocol is {self.security_protocol}: "
                "use SASL_SSL (or SASL_PLAINTEXT), or unset them"
            )
        if self.sasl_mechanism == "PLAIN" and not tls:
            raise ValueError("SASL PLAIN sends the password in clear: use SASL_SSL")
        if not tls and (self.ssl_cafile or self.ssl_certfile or self.ssl_keyfile):
            raise ValueError(
                f"TLS files are set but security_protocol is {self.security_protocol}: "
                "use SSL or SASL_SSL, or unset them"
            )
        return self


class TopicSettings(Themed):
    model_config = SettingsConfigDict(env_prefix="PROOFRECON_TOPIC_")

    token_status: str = Field("wallet.token-status", description="Wallet token-status changes.")
    melt_requests: str = Field("wallet.melt-requests", description="Melt preflight requests.")
    preflight_results: str = Field(
        "recon.preflight-results", description="Preflight verdicts, keyed by request_id."
    )
    discrepancies: str = Field("recon.discrepancies", description="Classified discrepancy events.")
    corrections: str = Field("wallet.corrections", description="Status fixes for the wallet DB.")
    proof_checks: str = Field(
        "recon.proof-checks", description="Counts of proofs checked (analytics denominator)."
    )
    alerts: str = Field("recon.alerts", description="Alerts for on-call.")
    dead_letter: str = Field("recon.dead-letter", description="Input that could not be processed.")
    findings: str = Field(
        "recon.findings",
        description="Internal: mint states seen by the sweep and the web API, keyed by npub, "
        "so the npub's partition owner classifies them against its tables.",
    )
    alerts_input: str = Field(
        "recon.alerts-input",
        description="Internal: discrepancies, proof checks and mint health re-keyed by mint_url, "
        "so one partition owner keeps each mint's alerting state.",
    )
    findings_signing_key: SecretStr | None = Field(
        None,
        description="Shared by every worker of a group: the HMAC key of recon.findings, so a "
        "finding no worker wrote is refused. Unset: a random key per process (fine for one "
        "worker; with several, findings crossing a rebalance are refused and re-swept).",
    )

    @classmethod
    def topic_fields(cls) -> tuple[str, ...]:
        """The fields that name a topic (the str ones), in declaration order."""
        return tuple(name for name, f in cls.model_fields.items() if f.annotation is str)

    partitions: int = Field(
        6, ge=1, description="Partition count of every wallet-facing topic (must be equal)."
    )
    replication_factor: int = Field(
        1,
        ge=1,
        description="Replication factor of the topics proofrecon creates (its contract topics "
        "and Faust's changelogs); 3 on a replicated cluster.",
    )
    min_insync_replicas: int | None = Field(
        None,
        ge=1,
        description="min.insync.replicas of the topics proofrecon creates, Faust's changelogs "
        "included (with acks=all, a write needs this many replicas). Unset: the broker's default.",
    )
    retention_ms: int = Field(
        7 * 24 * 3600 * 1000, gt=0, description="Retention of the non-compacted topics (ms)."
    )
