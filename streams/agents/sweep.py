"""Sweep: re-check the proofs the wallet still counts as unspent or pending, oldest check first.

It spends only the sweep's share of each mint's budget (the gateway never lets it touch the
preflight's), so a sweep never delays a melt. Its results go through the findings agent.

The index is built from the tokens table once its partitions are recovered (in slices that yield
to the event loop: a million proofs took seconds, review finding 12) and kept up to date by the
ledger agent, never rebuilt on a timer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable

from streams.agents.base import Emitter, utcnow
from streams.agents.findings import Finding, ObservedProof, publish_finding
from streams.app import Runtime, tables_recovered
from streams.classify import proof_check_event_id
from streams.domain import DbStatus, Source
from streams.errors import MintError
from streams.ledger import SWEEPABLE, TokenRecord, split_key, token_rows
from streams.logs import log
from streams.models import ProofCheckEvent

logger = logging.getLogger("proofrecon.sweep")

_SLICE = 5_000  # token rows read between two yields to the event loop


class SweepIndex:
    """Per mint, the sweepable proofs ordered by their last check (never checked first).

    In memory and rebuilt from the ledger table after start and now and then, so losing it costs
    only some re-checks. An OrderedDict keeps "oldest check first" at O(1) per update.
    """

    def __init__(self) -> None:
        self._by_mint: dict[str, OrderedDict[tuple[str, str], float]] = {}
        self._mint_of: dict[tuple[str, str], str] = {}

    def __len__(self) -> int:
        return len(self._mint_of)

    def track(self, npub: str, y: str, mint_url: str) -> None:
        key = (npub, y)
        if self._mint_of.get(key) == mint_url:
            return
        self.forget(npub, y)
        queue = self._by_mint.setdefault(mint_url, OrderedDict())
        queue[key] = 0.0
        queue.move_to_end(key, last=False)
        self._mint_of[key] = mint_url

    def forget(self, npub: str, y: str) -> None:
        mint_url = self._mint_of.pop((npub, y), None)
        if mint_url is not None:
            self._by_mint[mint_url].pop((npub, y), None)

    def checked(self, npub: str, ys: Iterable[str], at: float | None = None) -> None:
        now = time.monotonic() if at is None else at
        for y in ys:
            mint_url = self._mint_of.get((npub, y))
            if mint_url is not None:
                queue = self._by_mint[mint_url]
                queue[(npub, y)] = now
                queue.move_to_end((npub, y))

    def due(
        self, mint_url: str, limit: int, min_age_s: float, now: float | None = None
    ) -> list[tuple[str, str]]:
        """Up to `limit` proofs of `mint_url` last checked at least `min_age_s` ago."""
        now = time.monotonic() if now is None else now
        picked: list[tuple[str, str]] = []
        for key, last in self._by_mint.get(mint_url, {}).items():
            if len(picked) >= limit or (last and now - last < min_age_s):
                break
            picked.append(key)
        return picked

    def replace(self, entries: Iterable[tuple[str, str, str]]) -> None:
        """Hold exactly `entries` (npub, Y, mint_url), keeping the last checks already known."""
        last_checks = {key: last for queue in self._by_mint.values() for key, last in queue.items()}
        self._by_mint, self._mint_of = {}, {}
        for npub, y, mint_url in entries:
            self.track(npub, y, mint_url)
        for key, last in sorted(last_checks.items(), key=lambda item: item[1]):
            if last and key in self._mint_of:
                self.checked(key[0], [key[1]], at=last)

    def mints(self) -> list[str]:
        return [mint for mint, queue in self._by_mint.items() if queue]


class Sweeper:
    def __init__(self, runtime: Runtime, index: SweepIndex) -> None:
        self._rt = runtime
        self._index = index
        self._emit = Emitter(runtime)

    async def rebuild(self) -> None:
        """Re-read the tokens table (the partitions this worker holds), yielding now and then.

        A Y listed by several tokens is swept at the mint of the token the proof index names."""
        entries: list[tuple[str, str, str]] = []
        for count, (key, row) in enumerate(token_rows(self._rt.tokens.items()), 1):
            token = TokenRecord.from_dict(row)
            if token.live and DbStatus(token.status.value) in SWEEPABLE:
                npub, token_id = split_key(key)
                entries.extend(
                    (npub, y, token.mint_url)
                    for y in token.ys
                    if self._rt.proof_index.token_of(npub, y) == token_id
                )
            if count % _SLICE == 0:
                await asyncio.sleep(0)
        self._index.replace(entries)

    async def round(self) -> int:
        """One sweep round over every mint; returns how many proofs were checked."""
        checked = 0
        for mint_url in self._index.mints():
            checked += await self._sweep_mint(mint_url)
        return checked

    async def _sweep_mint(self, mint_url: str) -> int:
        try:
            gateway = self._rt.gateways.get(mint_url)
        except MintError:
            return 0  # a mint taken off the allow-list is not swept
        allowance = gateway.sweep_allowance()
        due = self._index.due(mint_url, allowance.ys, self._rt.settings.sweep.min_age_s)
        if not due:
            return 0
        try:
            states = await gateway.check([y for _, y in due], source=Source.SWEEP)
        except MintError as exc:
            log(logger, logging.INFO, "sweep skipped a mint", mint_url=mint_url, code=exc.code)
            return 0
        by_npub: dict[str, list[ObservedProof]] = {}
        for npub, y in due:
            by_npub.setdefault(npub, []).append(ObservedProof(Y=y, state=states[y]))
        observed_at = utcnow()
        round_id = uuid.uuid4().hex
        for npub, proofs in by_npub.items():
            self._index.checked(npub, [p.y for p in proofs])
            await publish_finding(
                self._rt,
                Finding(
                    npub=npub,
                    mint_url=mint_url,
                    source=Source.SWEEP,
                    observed_at=observed_at,
                    observation_id=round_id,
                    proofs=tuple(proofs),
                ),
            )
        await self._emit.proof_check(
            ProofCheckEvent(
                # A sweep round is a fresh observation, never a replay of an input: a random id
                # names it, and replays of what it published carry that id along.
                event_id=proof_check_event_id(source=Source.SWEEP, mint_url=mint_url, key=round_id),
                checked_at=observed_at,
                mint_url=mint_url,
                source=Source.SWEEP,
                proofs_checked=len(due),
            )
        )
        return len(due)


def register(runtime: Runtime) -> None:
    index = SweepIndex()
    runtime.extras["sweep_index"] = index
    sweeper = Sweeper(runtime, index)
    runtime.extras["sweeper"] = sweeper
    conf = runtime.settings.sweep
    if not conf.enabled:
        return

    @runtime.app.timer(conf.interval_s, on_leader=False)  # type: ignore[untyped-decorator]
    async def sweep_timer() -> None:
        if not tables_recovered(runtime.app):
            return
        try:
            checked = await sweeper.round()
        except Exception:
            logger.exception("sweep round failed")
            return
        if checked:
            log(logger, logging.INFO, "sweep round done", proofs_checked=checked)
