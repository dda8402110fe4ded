"""Findings agent: mint states seen outside a preflight (sweep, validate), classified on the npub's
partition.

The sweep and the web API run outside any event, where Faust tables cannot be written; they
publish what the mint said to `recon.findings`, keyed by npub, and this agent, which owns that
npub's partition, classifies it against the ledger and the open discrepancies in event context.
"""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from streams.agents.base import (
    Emitter,
    RawEvent,
    RawStream,
    event_context,
    ledger_record,
    open_discrepancies,
    write_open_changes,
)
from streams.app import Runtime
from streams.domain import ErrorKind, MintState, Source
from streams.models import to_json_bytes
from streams.reconcile import Outcome, ProofToCheck, reconcile

logger = logging.getLogger("proofrecon.findings")


class ObservedProof(BaseModel):
    model_config = ConfigDict(frozen=True)

    y: str = Field(alias="Y")
    state: MintState
    amount: int | None = None
    keyset_id: str | None = None
    token_id: str | None = None


class Finding(BaseModel):
    """What a mint said about some of one npub's proofs (internal topic `recon.findings`)."""

    model_config = ConfigDict(frozen=True, serialize_by_alias=True)

    npub: str
    mint_url: str
    source: Source
    observed_at: datetime
    # Names this observation: part of the ids of the discrepancies it opens (see classify).
    observation_id: str
    request_id: str | None = None
    # The sweep only re-checks proofs the wallet holds; a proof deleted meanwhile is skipped.
    # The web API's validate also judges proofs the wallet does not know (PROOF_NOT_IN_DB).
    include_absent: bool = False
    proofs: tuple[ObservedProof, ...]


async def publish_finding(runtime: Runtime, finding: Finding) -> None:
    await runtime.topics["findings"].send(key=finding.npub.encode(), value=to_json_bytes(finding))


class Findings:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self.emit = Emitter(runtime)

    async def handle(self, event: RawEvent) -> None:
        finding = await self.emit.decode(event, Finding)
        if finding is None:
            return
        with event_context(event):
            outcome = self._reconcile(finding)
        if outcome is None:
            return
        await self.emit.discrepancies(outcome.events)
        await self.emit.corrections(outcome.corrections)

    def _reconcile(self, finding: Finding) -> Outcome | None:
        npub = finding.npub
        proofs, states = [], {}
        for observed in finding.proofs:
            record = ledger_record(self._rt, npub, observed.y)
            if record is None and not finding.include_absent:
                continue
            amount = record.amount if record else observed.amount
            keyset_id = record.keyset_id if record else observed.keyset_id
            if amount is None or keyset_id is None:
                continue
            proofs.append(ProofToCheck(observed.y, amount, keyset_id, observed.token_id, record))
            states[observed.y] = observed.state
        if not proofs:
            return None
        outcome = reconcile(
            proofs,
            states,
            open_discrepancies(self._rt, npub, states),
            policy=self._rt.policy,
            npub=npub,
            mint_url=finding.mint_url,
            source=finding.source,
            at=finding.observed_at,
            request_id=finding.request_id,
            observation_id=finding.observation_id,
        )
        write_open_changes(self._rt, npub, outcome.open_changes)
        return outcome


def register(runtime: Runtime) -> None:
    findings = Findings(runtime)

    @runtime.app.agent(runtime.topics["findings"], name="findings", concurrency=1)
    async def findings_agent(stream: RawStream) -> None:
        async for event in stream.events():
            try:
                await findings.handle(event)
            except Exception as exc:
                logger.exception("could not classify a finding")
                await findings.emit.dead_letter(
                    event, ErrorKind.PROCESSING_ERROR, type(exc).__name__
                )
