"""What the settings themes share: the base class and small parsers."""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.core.mint_url import MintUrlError, normalise_mint_url

LimiterModel = Literal["elastic", "fixed", "none"]

# An HTTP header name is an RFC 9110 token; these few are ours to set (or the HTTP client's).
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


RESERVED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection", "te", "upgrade"}
)


def split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def normalise_setting_url(url: str) -> str:
    try:
        return normalise_mint_url(url)
    except MintUrlError as exc:
        raise ValueError(f"{str(url)[:200]!r}: {exc}") from None


class Themed(BaseSettings):
    # hide_input_in_errors: a refused setting must not print the others (a password among them).
    model_config = SettingsConfigDict(
        extra="ignore", frozen=True, populate_by_name=True, hide_input_in_errors=True
    )
