"""Configuration, by theme. Every field is read from a `PROOFRECON_*` environment variable.

Settings are built by `load_settings()`, never at import, so tests and tools can build their own.
`.env.example` lists every variable (`python -m streams.core.settings > .env.example`);
`tests/test_settings.py` fails when it drifts from these modules.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.core.errors import ConfigError
from streams.core.settings._base import TOPIC_NAME, LimiterModel, Themed
from streams.core.settings.alerts import AlertSettings
from streams.core.settings.kafka import KafkaSettings, TopicSettings
from streams.core.settings.mint import MintSettings
from streams.core.settings.policy import (
    PolicySettings,
    PreflightSettings,
    SweepSettings,
    check_policy_sets,
)
from streams.core.settings.services import ClickHouseSettings, WebSettings
from streams.core.settings.watch import WatchSettings

__all__ = [
    "THEMES",
    "AlertSettings",
    "ClickHouseSettings",
    "CoreSettings",
    "KafkaSettings",
    "LimiterModel",
    "MintSettings",
    "PolicySettings",
    "PreflightSettings",
    "Settings",
    "SweepSettings",
    "TopicSettings",
    "WatchSettings",
    "WebSettings",
    "check_policy_sets",
    "load_settings",
    "render_env_example",
    "to_env",
]


class Settings(BaseModel):
    """All themes together. Build with `load_settings()`."""

    model_config = {"frozen": True, "hide_input_in_errors": True}

    data_dir: Path
    log_level: str
    kafka: KafkaSettings
    topics: TopicSettings
    mint: MintSettings
    policy: PolicySettings
    preflight: PreflightSettings
    sweep: SweepSettings
    watch: WatchSettings
    clickhouse: ClickHouseSettings
    alerts: AlertSettings
    web: WebSettings

    @property
    def clickhouse_url(self) -> str:
        if self.clickhouse.url is not None:
            return self.clickhouse.url.get_secret_value()
        return f"chdb://{(self.data_dir / 'chdb').resolve()}"

    def check_web_exposure(self) -> None:
        """A web API bound beyond loopback without a token would let anyone validate, export
        and spend the mint budget: refuse to start (review finding 7)."""
        if self.web.exposed and self.web.auth_token is None:
            raise ConfigError(
                f"the web API would listen on {self.web.host} without authentication: set "
                "PROOFRECON_WEB_AUTH_TOKEN, or bind PROOFRECON_WEB_HOST=127.0.0.1"
            )

    @property
    def reply_topics(self) -> frozenset[str]:
        """Where answers may go: the results topic and the allow-listed reply topics."""
        return frozenset({self.topics.preflight_results, *self.preflight.reply_topics})

    @model_validator(mode="after")
    def _reply_topics_are_the_wallets(self) -> Settings:
        own = {getattr(self.topics, name) for name in self.topics.topic_fields()}
        own.discard(self.topics.preflight_results)
        for name in self.preflight.reply_topics:
            if not TOPIC_NAME.fullmatch(name):
                raise ValueError(f"reply topic {name[:60]!r} is not a Kafka topic name")
            if name in own or name.startswith(("__", "_", f"{self.kafka.app_id}-")):
                raise ValueError(
                    f"reply topic {name!r} is a topic proofrecon reads or writes itself, or an "
                    "internal one: answers there would corrupt it"
                )
        return self


class CoreSettings(Themed):
    model_config = SettingsConfigDict(env_prefix="PROOFRECON_")

    data_dir: Path = Field(
        Path("./.data"), description="Directory for table stores, embedded chDB and state."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of the JSON log lines."
    )


THEMES: dict[str, type[BaseSettings]] = {
    "kafka": KafkaSettings,
    "topics": TopicSettings,
    "mint": MintSettings,
    "policy": PolicySettings,
    "preflight": PreflightSettings,
    "sweep": SweepSettings,
    "watch": WatchSettings,
    "clickhouse": ClickHouseSettings,
    "alerts": AlertSettings,
    "web": WebSettings,
}


def load_settings(env_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Read every theme from the environment (and `env_file` if given).

    `overrides` maps a theme name to a dict of field values, e.g. `topics={"partitions": 3}`.
    """
    core = CoreSettings(_env_file=env_file)
    themes = {
        name: cls(_env_file=env_file, **overrides.get(name, {})) for name, cls in THEMES.items()
    }
    core_over = {k: v for k, v in overrides.items() if k not in THEMES}
    return Settings(
        data_dir=core_over.get("data_dir", core.data_dir),
        log_level=core_over.get("log_level", core.log_level),
        **themes,
    )


def _env_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, frozenset | set):
        return ",".join(sorted(str(v) for v in value))
    if isinstance(value, dict):
        if any(isinstance(v, dict) for v in value.values()):
            return json.dumps(value, separators=(",", ":")) if value else ""
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def render_env_example() -> str:
    """The text of `.env.example`: every variable, its description and its default."""
    lines = [
        "# proofrecon settings. Every variable is optional; the value shown is the default.",
        "# Generated from streams/core/settings (python -m streams.core.settings > .env.example).",
    ]
    themes: list[tuple[str, type[BaseSettings]]] = [("core", CoreSettings), *THEMES.items()]
    for title, cls in themes:
        prefix = str(cls.model_config.get("env_prefix", ""))
        lines += ["", f"# --- {title} ---"]
        for name, field in cls.model_fields.items():
            default = field.get_default(call_default_factory=True)
            lines.append(f"# {field.description}")
            # Unset-by-default variables stay commented: an empty value is not "unset".
            comment = "# " if default is None else ""
            lines.append(f"{comment}{prefix}{name.upper()}={_env_value(default)}")
    return "\n".join(lines) + "\n"


def to_env(settings: Settings) -> dict[str, str]:
    """The environment variables that reproduce `settings` (for starting a worker process)."""
    env = {
        "PROOFRECON_DATA_DIR": str(settings.data_dir),
        "PROOFRECON_LOG_LEVEL": settings.log_level,
    }
    for name, cls in THEMES.items():
        theme = getattr(settings, name)
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field_name in cls.model_fields:
            value = getattr(theme, field_name)
            if value is not None:
                env[f"{prefix}{field_name.upper()}"] = _env_value(value)
    return env
