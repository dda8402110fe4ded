"""Structured logs: one JSON object per line.

Our own lines carry their fields under `extra={"fields": {...}}` (use `log()`); Ys are cut to a
prefix and no proof secret is ever passed in. As a last line of defence every rendered line goes
through the scrubber, so a secret-shaped field written by any library is masked too.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from streams.core.cashu import scrub_text

_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key != "fields" and not key.startswith("_"):
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return scrub_text(json.dumps(entry, default=str, ensure_ascii=False))


def logging_config(level: str) -> dict[str, Any]:
    """A dictConfig for Faust's worker (`logging_config`) and for our CLI commands."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": sys.stderr}
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            # The Kafka client is chatty at INFO about routine (re)connections.
            "aiokafka": {"level": "WARNING"},
            "kafka": {"level": "WARNING"},
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }


def log(logger: logging.Logger, level: int, message: str, **fields: Any) -> None:
    logger.log(level, message, extra={"fields": fields})
