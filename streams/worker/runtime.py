"""What the agents, timers and web views of one worker share: `Runtime`, built once by the
composition root (`streams.worker.app`) and handed to every `register(runtime)`.

Typed fields only: whatever a part of the worker offers another is a field here, and whatever the
runtime starts is closed at shutdown (`closables`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias, cast

import faust
from faust.tables.manager import TableManager

from streams.core.contracts import ContractLimits
from streams.core.domain import MintState
from streams.core.settings import Settings
from streams.mint import MintGateways
from streams.recon.ledger import ProofIndex, ProofRecord
from streams.recon.policy import Policy
from streams.recon.sweep_index import SweepIndex
from streams.worker.emit import Emitter
from streams.worker.metrics import Metrics
from streams.worker.rebuilds import Rebuilds

JsonTable: TypeAlias = faust.Table[str, dict[str, Any]]
RecoveryHook = Callable[[], Awaitable[None]]


class Closable(Protocol):
    def close(self) -> Any: ...  # a coroutine or nothing


class LiveTruth(Protocol):
    """The live proof-state watch (NUT-17), as the agents use it (streams.worker.agents.live)."""

    def want(self, npub: str, after: Mapping[str, ProofRecord | None], changed_at: float) -> None:
        """The wallet DB now holds these proofs so (None: no longer): watch or unwatch them."""

    def melt(self, npub: str, mint_url: str, ys: Sequence[str]) -> None:
        """A melt names these proofs: watch them ahead of other unspent ones for a while."""

    def fresh_states(self, mint_url: str, ys: Sequence[str]) -> dict[str, MintState]:
        """The subset of `ys` whose state is known truth now (watched, fresh), with it."""

    def view(self, mint_url: str, y: str) -> dict[str, Any] | None:
        """What the watch knows of `y` at `mint_url` (for the web API), None if not watched."""


@dataclass(eq=False)
class Runtime:
    settings: Settings
    app: faust.App
    policy: Policy
    limits: ContractLimits
    metrics: Metrics
    gateways: MintGateways
    topics: dict[str, faust.TopicT]
    emit: Emitter
    tokens: JsonTable  # npub|token_id -> TokenRecord (the ledger)
    open_discrepancies: JsonTable  # npub|Y -> OpenDiscrepancy
    proof_index: ProofIndex = field(default_factory=ProofIndex)  # npub|Y -> token_id
    sweep_index: SweepIndex = field(default_factory=SweepIndex)  # what the sweep checks next
    on_recovered: list[RecoveryHook] = field(default_factory=list)  # after the index rebuild
    rebuilds: Rebuilds = field(default_factory=Rebuilds)  # runs on_recovered in the background
    closables: list[Closable] = field(default_factory=list)  # closed at shutdown, in order
    live: LiveTruth | None = None  # the NUT-17 watch, when enabled


def tables_recovered(app: faust.App) -> bool:
    """True once the tables are restored from their changelogs (and after each rebalance)."""
    manager = cast(TableManager, app.tables)
    return manager.recovery.completed.is_set() and not app.rebalancing
