"""The topics proofrecon reads and writes, and how they are created.

Faust creates only its own internal topics (changelogs); the contract topics are created here with
the configured partition count. Every wallet-facing topic has the same count, so one npub's token
events, melt requests and table rows live on one partition number and therefore on one worker.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.helpers import create_ssl_context

from streams.core.errors import ConfigError
from streams.core.settings import KafkaSettings, Settings

TOPIC_ALREADY_EXISTS = 36
DEAD_LETTER_RETENTION_MS = 30 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]

    @property
    def cleanup_policy(self) -> str:
        return self.config.get("cleanup.policy", "delete")


@dataclass(frozen=True)
class TopicInfo:
    partitions: int
    cleanup_policy: str


def topic_specs(settings: Settings) -> list[TopicSpec]:
    t = settings.topics
    retention = {"cleanup.policy": "delete", "retention.ms": str(t.retention_ms)}
    if t.min_insync_replicas is not None:
        retention["min.insync.replicas"] = str(t.min_insync_replicas)
    # A wallet keeps the first answer per request_id; compaction keeps the topic small while
    # `delete` still ages out answers nobody asked for again.
    answers = {**retention, "cleanup.policy": "compact,delete"}
    dead_letter = {**retention, "retention.ms": str(DEAD_LETTER_RETENTION_MS)}
    named = [
        (t.token_status, retention),
        (t.melt_requests, retention),
        (t.preflight_results, answers),
        (t.discrepancies, retention),
        (t.corrections, retention),
        (t.proof_checks, retention),
        (t.alerts, retention),
        (t.dead_letter, dead_letter),
        (t.findings, retention),
        (t.alerts_input, retention),
    ]
    listed = {name for name, _ in named}
    named += [(name, answers) for name in settings.preflight.reply_topics if name not in listed]
    return [TopicSpec(name, t.partitions, dict(cfg)) for name, cfg in named]


def changelog_configs(settings: Settings) -> dict[str, str]:
    """Topic configs of Faust's changelogs beyond the replication factor (which Faust takes from
    its own setting): min.insync.replicas as for the contract topics, so a table's writes need as
    many replicas as its outputs' (else the broker's default, often 1, would apply to them)."""
    wanted = settings.topics.min_insync_replicas
    return {} if wanted is None else {"min.insync.replicas": str(wanted)}


def client_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """Connection settings of every Kafka client proofrecon makes: admin, producers, consumers,
    the wallet-side clients, and (through `faust_credentials`) the worker itself. One place, so
    no two processes can disagree on TLS (review finding 10)."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": kafka.security_protocol,
    }
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = ssl_context(kafka)
    if kafka.security_protocol.startswith("SASL"):
        assert kafka.sasl_password is not None  # KafkaSettings refuses SASL without one
        kwargs.update(
            sasl_mechanism=kafka.sasl_mechanism,
            sasl_plain_username=kafka.sasl_username,
            sasl_plain_password=kafka.sasl_password.get_secret_value(),
        )
    return kwargs


def faust_credentials(kafka: KafkaSettings) -> Any:
    """The worker's `broker_credentials`, derived from `client_kwargs`."""
    kwargs = client_kwargs(kafka)
    if kafka.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=kwargs["sasl_plain_username"],
            password=kwargs["sasl_plain_password"],
            mechanism=kwargs["sasl_mechanism"],
            ssl_context=kwargs.get("ssl_context"),
        )
    return kwargs.get("ssl_context")


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext:
    context: ssl.SSLContext = create_ssl_context(
        cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None,
        certfile=str(kafka.ssl_certfile) if kafka.ssl_certfile else None,
        keyfile=str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None,
    )
    return context


async def _admin(settings: Settings) -> AIOKafkaAdminClient:
    return await _admin_for(settings.kafka)


async def _admin_for(kafka: KafkaSettings) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(**client_kwargs(kafka), request_timeout_ms=15_000)
    await admin.start()
    return admin


async def delete_topics(kafka: KafkaSettings, wanted: Callable[[str], bool]) -> list[str]:
    """Delete every topic whose name `wanted` accepts (tests and benchmarks clean up with this);
    returns their names. Deletion completes in the background on the broker."""
    admin = await _admin_for(kafka)
    try:
        names = [t for t in await admin.list_topics() if wanted(t)]
        for start in range(0, len(names), 200):  # a bounded request per batch
            await admin.delete_topics(names[start : start + 200])
        return names
    finally:
        await admin.close()


async def ensure_topics(settings: Settings) -> list[str]:
    """Create every missing topic; verify existing ones. Returns one line per topic."""
    specs = topic_specs(settings)
    admin = await _admin(settings)
    try:
        existing = await _describe(admin, [s.name for s in specs])
        missing = [s for s in specs if s.name not in existing]
        if missing:
            await _create(admin, missing, settings.topics.replication_factor)
        lines = []
        for spec in specs:
            if spec.name in existing:
                _check_existing(spec, existing[spec.name], settings)
                lines.append(f"exists  {spec.name} ({spec.partitions} partitions)")
            else:
                lines.append(f"created {spec.name} ({spec.partitions} partitions)")
        return lines
    finally:
        await admin.close()


def _check_existing(spec: TopicSpec, info: TopicInfo, settings: Settings) -> None:
    if spec.name in settings.preflight.reply_topics:
        return  # a wallet's reply topic: keyed by request_id, any partition count does
    # Adding partitions would move npubs to other partitions and strand their table rows.
    if info.partitions != spec.partitions:
        raise ConfigError(
            f"topic {spec.name} has {info.partitions} partitions, configured "
            f"{spec.partitions}; recreate it or set PROOFRECON_TOPIC_PARTITIONS={info.partitions}"
        )


async def _create(admin: AIOKafkaAdminClient, specs: list[TopicSpec], replication: int) -> None:
    new = [NewTopic(s.name, s.partitions, replication, topic_configs=s.config) for s in specs]
    response = await admin.create_topics(new)
    for name, code, *rest in response.topic_errors:
        if code not in (0, TOPIC_ALREADY_EXISTS):
            message = rest[0] if rest else ""
            raise ConfigError(f"could not create topic {name}: error {code} {message}")


async def describe_topics(settings: Settings) -> dict[str, TopicInfo]:
    admin = await _admin(settings)
    try:
        return await _describe(admin, [s.name for s in topic_specs(settings)])
    finally:
        await admin.close()


async def _describe(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, TopicInfo]:
    present = set(await admin.list_topics()) & set(names)
    if not present:
        return {}
    partitions = {
        t["topic"]: len(t["partitions"])
        for t in await admin.describe_topics(sorted(present))
        if t["error_code"] == 0
    }
    policies = await _cleanup_policies(admin, sorted(partitions))
    return {
        name: TopicInfo(count, policies.get(name, "delete")) for name, count in partitions.items()
    }


async def _cleanup_policies(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, str]:
    resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
    policies: dict[str, str] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.to_object()["resources"]:
            for entry in resource["config_entries"]:
                if entry["config_names"] == "cleanup.policy":
                    policies[resource["resource_name"]] = entry["config_value"]
    return policies
