"""What every command group shares: the handler type and lazy handlers."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import TypeAlias

from streams.core.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def lazy(module: str, name: str) -> Handler:
    """A handler imported when run: `proofrecon --help` need not load ClickHouse or chDB."""

    def handler(args: argparse.Namespace, settings: Settings) -> int:
        target: Handler = getattr(importlib.import_module(module), name)
        return target(args, settings)

    return handler
