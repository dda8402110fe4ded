"""Findings agent: mint states seen outside a preflight (sweep, validate), classified on the npub's
partition.

The sweep and the web API run outside any event, where Faust tables cannot be written; they
publish what the mint said to `recon.findings`, keyed by npub, and this agent, which owns that
npub's partition, classifies it against the ledger and the open discrepancies in event context.

A finding claims to be the mint's word, so the topic is not trusted blindly (review finding 18):
every finding carries an HMAC of its bytes (header `proofrecon-signature`) under the workers'
shared key (`PROOFRECON_TOPIC_FINDINGS_SIGNING_KEY`; a random key per process when unset, which
suits one worker). A finding without a valid signature, or naming a mint off the allow-list, is
dead-lettered and changes nothing. Kafka ACLs restricting the internal topics to the workers'
principal are the other half (README, "Safety").
"""

from __future__ import annotations

import hmac
import logging

from streams.core.domain import ErrorKind
from streams.core.mint_url import normalise_or_strip
from streams.recon.reconcile import Outcome, ProofToCheck, reconcile
from streams.worker.agents.loop import run_guarded
from streams.worker.emit import Deliveries
from streams.worker.events import RawEvent, RawStream, event_context, raw_value
from streams.worker.findings import Finding, sign, signature_of, signing_key
from streams.worker.runtime import Runtime
from streams.worker.tables import (
    ledger_record,
    open_discrepancies,
    write_open_changes,
    write_tables,
)

logger = logging.getLogger("proofrecon.findings")


class Findings:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self.emit = runtime.emit

    async def handle(self, event: RawEvent) -> None:
        finding = await self._verified(event)
        if finding is None:
            return
        with event_context(event):
            outcome = self._reconcile(finding)
        if outcome is None:
            return
        out = Deliveries()
        await self.emit.discrepancies(outcome.events, out)
        await self.emit.corrections(outcome.corrections, out)
        await out.confirm()
        await write_tables(
            event, lambda: write_open_changes(self._rt, finding.npub, outcome.open_changes)
        )

    async def _verified(self, event: RawEvent) -> Finding | None:
        """The finding, if a worker wrote it and it names an allow-listed mint."""
        signature = signature_of(event)
        expected = sign(signing_key(self._rt), raw_value(event))
        if signature is None or not hmac.compare_digest(signature, expected):
            await self.emit.dead_letter(
                event, ErrorKind.VALIDATION_ERROR, "finding without a valid signature"
            )
            return None
        finding = await self.emit.decode(event, Finding)
        if finding is not None and not self._rt.gateways.is_allowed(finding.mint_url):
            await self.emit.dead_letter(
                event, ErrorKind.VALIDATION_ERROR, "finding names a mint off the allow-list"
            )
            return None
        return finding

    def _reconcile(self, finding: Finding) -> Outcome | None:
        npub = finding.npub
        proofs: dict[str, ProofToCheck] = {}
        states = {}
        for observed in finding.proofs:  # a Y listed twice counts once, with its last state
            record = ledger_record(self._rt, npub, observed.y)
            if record is None and not finding.include_absent:
                continue
            if record is not None and normalise_or_strip(record.mint_url) != finding.mint_url:
                continue  # that mint cannot judge a proof the ledger holds at another
            if record is not None:  # the ledger wins the join
                check = ProofToCheck(
                    observed.y, record.amount, record.keyset_id, record.token_id, record
                )
            elif observed.amount is not None and observed.keyset_id is not None:
                check = ProofToCheck(observed.y, observed.amount, observed.keyset_id, None, None)
            else:
                continue
            proofs[observed.y] = check
            states[observed.y] = observed.state
        if not proofs:
            return None
        return reconcile(
            list(proofs.values()),
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


def register(runtime: Runtime) -> None:
    findings = Findings(runtime)

    @runtime.app.agent(runtime.topics["findings"], name="findings", concurrency=1)
    async def findings_agent(stream: RawStream) -> None:
        await run_guarded(runtime, stream, findings.handle, "findings")
