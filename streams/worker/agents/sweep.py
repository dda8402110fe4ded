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
import uuid

from streams.core.contracts import ProofCheckEvent
from streams.core.domain import DbStatus, Source
from streams.core.errors import MintError
from streams.core.ids import proof_check_event_id
from streams.core.logs import log
from streams.recon.ledger import SWEEPABLE, TokenRecord, split_key, token_rows
from streams.recon.sweep_index import SweepIndex
from streams.worker.events import utcnow
from streams.worker.findings import Finding, ObservedProof, publish_finding
from streams.worker.runtime import Runtime, tables_recovered

logger = logging.getLogger("proofrecon.sweep")

_SLICE = 5_000  # token rows read between two yields to the event loop


class Sweeper:
    def __init__(self, runtime: Runtime, index: SweepIndex) -> None:
        self._rt = runtime
        self._index = index
        self._emit = runtime.emit

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
    sweeper = Sweeper(runtime, runtime.sweep_index)
    runtime.on_recovered.append(sweeper.rebuild)
    conf = runtime.settings.sweep
    if not conf.enabled:
        return

    @runtime.app.timer(conf.interval_s, on_leader=False)  # type: ignore[untyped-decorator]
    async def sweep_timer() -> None:
        if not tables_recovered(runtime.app) or not runtime.rebuilds.done.is_set():
            return  # the index is still being rebuilt after a recovery
        try:
            checked = await sweeper.round()
        except Exception:
            logger.exception("sweep round failed")
            return
        if checked:
            log(logger, logging.INFO, "sweep round done", proofs_checked=checked)
