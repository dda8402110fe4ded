"""ClickHouse and the web API."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from streams.core.settings._base import Themed, is_loopback_host


class ClickHouseSettings(Themed):
    model_config = SettingsConfigDict(env_prefix="PROOFRECON_CLICKHOUSE_")

    url: SecretStr | None = Field(
        None,
        description="chdb:///path for embedded ClickHouse (default: <data_dir>/chdb) or "
        "http(s)://user:pass@host:8123/db for a server (secret: it may hold a password).",
    )
    username: str | None = Field(None, description="Server username (overrides the URL's).")
    password: SecretStr | None = Field(None, description="Server password (overrides the URL's).")
    database: str = Field("proofrecon", description="Database holding the analytics objects.")
    ttl_days: int = Field(400, ge=1, description="Days raw rows are kept.")
    # Each insert has a fixed cost of ~25-30 ms (planning, views, parts): fewer, fuller inserts
    # are what lets one worker pass 100k rows/s. At small traffic the time bound sets the insert
    # rate; embedded inserts (and the merges they cause) share the worker's cores, and at 1 s
    # they cost the worker a third of a core at 50 melts/s and doubled preflight latency.
    batch_max_rows: int = Field(50_000, ge=1, description="Most rows per insert.")
    batch_max_wait_s: float = Field(
        5.0,
        gt=0,
        description="Longest a row waits for its insert: how far analytics may lag behind.",
    )
    sink_enabled: bool = Field(True, description="Run the ClickHouse sink inside the worker.")
    hourly_ttl_days: int = Field(
        1825, ge=1, description="Days the hourly aggregates are kept (they are small)."
    )
    backoff_max_s: float = Field(
        30.0,
        gt=0,
        description="Longest wait between retries while ClickHouse is unavailable (seconds).",
    )
    recent_ids: int = Field(
        100_000,
        ge=0,
        description="Event ids the sink remembers per topic to drop events re-emitted "
        "upstream after a crash (0 turns this off).",
    )


class WebSettings(Themed):
    model_config = SettingsConfigDict(env_prefix="PROOFRECON_WEB_")

    host: str = Field(
        "127.0.0.1",
        description="Interface the worker's web server binds. Beyond loopback it needs auth_token "
        "(a worker or sink refuses to start without one).",
    )
    port: int = Field(6066, ge=1, le=65535, description="The worker's web port.")
    auth_token: SecretStr | None = Field(
        None,
        description="Bearer token every web endpoint asks for (Authorization: Bearer <token>), "
        "except /healthz and /readyz (and /metrics when metrics_public).",
    )
    metrics_public: bool = Field(
        False, description="Serve /metrics without the bearer token (for a Prometheus scraper)."
    )
    validate_budget_share: float = Field(
        0.05,
        gt=0,
        le=0.5,
        description="Share of each mint's request budget that POST /v1/validate may use; beyond "
        "it validate answers BLOCK at once, so validate calls can never starve melts.",
    )
    max_body_bytes: int = Field(
        256 * 1024, ge=1024, description="Largest request body the web API accepts (bytes)."
    )

    @property
    def exposed(self) -> bool:
        """Bound beyond this machine (anything but a loopback address)."""
        return not is_loopback_host(self.host)
