"""Preflight agent: every melt request gets a verdict, and nothing is cleared on unknown truth.

Requests are taken in small batches; each request's check goes to its mint's gateway at once, and
the gateway merges the concurrent checks of a batch into shared checkstate requests. Table access
happens per request inside its own event context (faust-streaming #497).

No input stops the pipeline: whatever goes wrong with one message (decoding, judging, building
or sending its answer) parks it on the dead-letter topic with a reason and the agent moves on.
Only a broker that keeps refusing our outputs (DeliveryFailed) stops the worker, before the
input's offset can be committed, so a restart answers it.

Order of the outputs (at-least-once): the discrepancy events, corrections and the answer are
confirmed by the broker first, and only then is the open-discrepancy table written. A crash in
between replays the request, which emits the same events again under the same ids, instead of
finding them "already open" and never emitting them at all (review finding 6).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import faust
from pydantic import ValidationError

from streams.core.contracts import (
    MeltRequest,
    ProofCheckEvent,
    extract_field,
    extract_npub,
    extract_reply_to,
    extract_request_id,
    parse_melt_request,
    proofs_digest,
)
from streams.core.domain import BlockCode, ErrorKind, MintState, Source, Truth, Verdict
from streams.core.errors import (
    ContractError,
    DeliveryFailed,
    DeliveryRefused,
    ProofReconError,
)
from streams.core.ids import proof_check_event_id
from streams.core.logs import log
from streams.core.mint_url import normalise_or_strip
from streams.recon.ledger import ProofRecord
from streams.recon.outputs import preflight_result
from streams.recon.policy import Decision
from streams.recon.reconcile import Outcome, reconcile
from streams.worker.agents.loop import stop_worker
from streams.worker.agents.truth import MintTruth
from streams.worker.emit import Deliveries
from streams.worker.events import RawEvent, RawStream, event_context, raw_value, utcnow
from streams.worker.pipelining import MicroBatches, OrderedAcks
from streams.worker.runtime import Runtime
from streams.worker.tables import ledger_record, open_discrepancies, to_check, write_open_changes

logger = logging.getLogger("proofrecon.preflight")

Records = dict[str, ProofRecord | None]


@dataclass(frozen=True, slots=True)
class _Judgement:
    decision: Decision
    outcome: Outcome | None = None  # None: refused without classification (fail closed)
    reason: str = ""
    truth: Truth | None = None  # where the mint states came from


class Preflight:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._emit = runtime.emit
        self._truth = MintTruth(runtime)

    async def handle_batch(self, events: list[RawEvent]) -> None:
        await asyncio.gather(*(self.handle(event) for event in events))

    async def handle(self, event: RawEvent) -> None:
        """Answer one melt request. Raises only DeliveryFailed (see module)."""
        started = time.monotonic()
        try:
            await self._handle(event, started)
        except DeliveryFailed:
            raise
        except Exception as exc:  # this message's fault, or a bug: park it and move on
            await self._park(event, exc)

    async def _park(self, event: RawEvent, exc: Exception) -> None:
        if isinstance(exc, ContractError):
            kind, reason = exc.error_kind, exc.message
        else:
            kind = ErrorKind.PROCESSING_ERROR
            reason = exc.code if isinstance(exc, ProofReconError) else type(exc).__name__
            # A pydantic error's text quotes its input: name it, never print it.
            logger.error(
                "could not answer a melt request; it goes to the dead-letter topic",
                exc_info=None if isinstance(exc, ValidationError) else exc,
                extra={"fields": {"reason": reason}},
            )
        try:
            await self._emit.dead_letter(event, kind, reason)
        except DeliveryRefused:
            logger.error("the dead-letter topic refused a record; the message is dropped")

    async def _handle(self, event: RawEvent, started: float) -> None:
        raw = raw_value(event)
        try:
            request = self._parse(event, raw)
        except ContractError as exc:
            await self._invalid(event, raw, exc, started)
            return
        if self._rt.live is not None:
            self._rt.live.melt(request.npub, request.mint_url, [p.y for p in request.proofs])
        judgement = await self._judge(event, request)
        out = Deliveries()
        if judgement.outcome is not None:
            await self._emit_findings(request, judgement.outcome, out)
        await self._send(request, judgement, started, out)
        await out.confirm()
        if judgement.outcome is not None:
            with event_context(event):
                write_open_changes(self._rt, request.npub, judgement.outcome.open_changes)
            self._rt.sweep_index.checked(request.npub, [p.y for p in request.proofs])

    def _parse(self, event: RawEvent, raw: bytes) -> MeltRequest:
        request = parse_melt_request(raw, self._rt.limits)
        # The npub's partition holds its ledger: a request keyed otherwise would be judged
        # against nobody's proofs and clear as "not in the DB" (review finding 5).
        if event.message.key != request.npub.encode():
            raise _Refused(request, "the Kafka key must be the request's npub (raw UTF-8)")
        if (request.reply_to or self._rt.settings.topics.preflight_results) not in (
            self._rt.settings.reply_topics
        ):
            raise _Refused(request, "reply_to is not on the reply allow-list")
        if not self._rt.gateways.is_allowed(request.mint_url):
            raise _Refused(request, "mint_url is not on the allow-list")
        return request

    # --- judging -----------------------------------------------------------------------------

    async def _judge(self, event: RawEvent, request: MeltRequest) -> _Judgement:
        policy = self._rt.policy
        with event_context(event):
            records = self._records(request)
        if self._mismatched(request, records):
            return _Judgement(policy.blocked_verdict(BlockCode.MINT_MISMATCH), reason="ledger")
        found = await self._mint_states(request)
        if isinstance(found, BlockCode):
            return _Judgement(policy.blocked_verdict(found), reason="mint")
        states, truth = found
        with event_context(event):
            records = self._records(request)  # the ledger may have moved while the mint answered
            if self._mismatched(request, records):
                return _Judgement(policy.blocked_verdict(BlockCode.MINT_MISMATCH), reason="ledger")
            open_now = open_discrepancies(self._rt, request.npub, records)
        outcome = reconcile(
            [to_check(p.y, p.amount, p.keyset_id, records[p.y]) for p in request.proofs],
            states,
            open_now,
            policy=policy,
            npub=request.npub,
            mint_url=request.mint_url,
            source=Source.PREFLIGHT,
            at=utcnow(),
            request_id=request.request_id,
        )
        return _Judgement(outcome.decision, outcome, truth=truth)

    def _records(self, request: MeltRequest) -> Records:
        return {p.y: ledger_record(self._rt, request.npub, p.y) for p in request.proofs}

    def _mismatched(self, request: MeltRequest, records: Records) -> bool:
        """A proof the ledger holds at another mint: the request's mint would answer UNSPENT for
        a Y it never saw, so it cannot judge it (review finding 5)."""
        wrong = [
            y
            for y, record in records.items()
            if record is not None and normalise_or_strip(record.mint_url) != request.mint_url
        ]
        if wrong:
            log(
                logger,
                logging.WARNING,
                "melt names another mint than the ledger holds its proofs at",
                request_id=request.request_id,
                npub=request.npub,
                mint_url=request.mint_url,
                Y_prefixes=[y[:12] for y in wrong[:10]],
            )
        return bool(wrong)

    def deadline_s(self, request: MeltRequest) -> float:
        """Seconds left to answer. A producer's clock may not stretch it (review finding 24):
        a future `requested_at` counts as now, and no request waits past the configured max."""
        conf = self._rt.settings
        longest = conf.preflight.max_deadline_ms / 1000
        if request.deadline_ms is None:
            return min(conf.mint.default_deadline_ms / 1000, longest)
        now = utcnow()
        expires = min(request.requested_at, now) + timedelta(milliseconds=request.deadline_ms)
        return min((expires - now).total_seconds(), request.deadline_ms / 1000, longest)

    async def _mint_states(
        self, request: MeltRequest
    ) -> tuple[dict[str, MintState], Truth] | BlockCode:
        """The state of every proof and where it came from, or why it cannot be had."""
        deadline_s = self.deadline_s(request)
        if deadline_s <= 0:
            return BlockCode.DEADLINE_EXCEEDED
        ys = [proof.y for proof in request.proofs]
        return await self._truth.states(request.mint_url, ys, deadline_s)

    # --- answering ---------------------------------------------------------------------------

    async def _emit_findings(self, request: MeltRequest, outcome: Outcome, out: Deliveries) -> None:
        await self._emit.discrepancies(outcome.events, out)
        await self._emit.corrections(outcome.corrections, out)
        await self._emit.proof_check(
            ProofCheckEvent(
                event_id=proof_check_event_id(
                    source=Source.PREFLIGHT, mint_url=request.mint_url, key=request.request_id
                ),
                checked_at=utcnow(),
                mint_url=request.mint_url,
                source=Source.PREFLIGHT,
                proofs_checked=len(request.proofs),
                npub=request.npub,
                request_id=request.request_id,
            ),
            out,
        )

    async def _send(
        self, request: MeltRequest, judgement: _Judgement, started: float, out: Deliveries
    ) -> None:
        decision = judgement.decision
        duration_ms = (time.monotonic() - started) * 1000
        result = preflight_result(
            decision,
            request_id=request.request_id,
            npub=request.npub,
            mint_url=request.mint_url,
            checked_proofs=len(request.proofs),
            duration_ms=round(duration_ms, 3),
            answered_at=utcnow(),
            proofs_digest=proofs_digest(p.y for p in request.proofs),
            truth=judgement.truth,
        )
        await self._emit.answer(result, request.reply_to, out)
        if judgement.truth is not None:
            self._rt.metrics.preflight_truth.labels(request.mint_url, judgement.truth.value).inc()
        self._rt.metrics.preflight_duration.observe(duration_ms / 1000)
        self._log_verdict(request, judgement, duration_ms)

    def _log_verdict(self, request: MeltRequest, judgement: _Judgement, duration_ms: float) -> None:
        decision = judgement.decision
        fields: dict[str, Any] = {
            "npub": request.npub,
            "request_id": request.request_id,
            "mint_url": request.mint_url,
            "verdict": decision.verdict.value,
            "code": decision.code.value if decision.code else None,
            "discrepancies_found": decision.discrepancies_found,
            "discrepancies_resolved": decision.discrepancies_resolved,
            "severity_counts": decision.severity_counts.model_dump(by_alias=True),
            "duration_ms": round(duration_ms, 2),
        }
        if judgement.reason:
            fields["refused_by"] = judgement.reason
        if decision.discrepancies_resolved:  # the seed's reconcileProofStates: DB corrected
            log(logger, logging.INFO, "Proof state reconciliation completed", **fields)
        if decision.verdict is Verdict.BLOCKED:
            log(logger, logging.ERROR, "Pre-flight reconciliation BLOCKED", **fields)
        else:
            log(logger, logging.INFO, "Pre-flight reconciliation passed", **fields)

    async def _invalid(
        self, event: RawEvent, raw: bytes, exc: ContractError, started: float
    ) -> None:
        """Dead-letter the request and, if it names a request_id, answer INVALID_REQUEST.

        Every echoed field is re-validated here: an invalid request is hostile until proven
        otherwise, and an answer that cannot be built must not stop the agent (finding 1)."""
        await self._emit.dead_letter(event, exc.error_kind, exc.message)
        refused = exc.request if isinstance(exc, _Refused) else None
        request_id = refused.request_id if refused else extract_request_id(raw)
        if request_id is None:
            return  # nobody to answer
        result = preflight_result(
            self._rt.policy.blocked_verdict(BlockCode.INVALID_REQUEST),
            request_id=request_id,
            npub=refused.npub if refused else _echo_npub(raw),
            mint_url=refused.mint_url if refused else _echo_mint_url(raw),
            checked_proofs=0,
            duration_ms=round((time.monotonic() - started) * 1000, 3),
            answered_at=utcnow(),
            proofs_digest=proofs_digest(p.y for p in refused.proofs) if refused else "",
        )
        reply_to = refused.reply_to if refused else extract_reply_to(raw)
        if reply_to not in self._rt.settings.reply_topics:
            reply_to = None  # the default results topic, never a topic the request made up
        out = Deliveries()
        await self._emit.answer(result, reply_to, out)
        await out.confirm()


class _Refused(ContractError):
    """A request that parses but may not be judged (wrong key, a reply_to not allowed)."""

    def __init__(self, request: MeltRequest, message: str) -> None:
        super().__init__(message)
        self.request = request


def _echo_npub(raw: bytes) -> str:
    npub = extract_npub(raw)
    return npub if npub is not None and "|" not in npub else ""


def _echo_mint_url(raw: bytes) -> str:
    url = extract_field(raw, "mint_url")
    if url is None:
        return ""
    normalised = normalise_or_strip(url)
    return normalised if normalised.startswith(("http://", "https://")) else ""


def register(runtime: Runtime) -> None:
    preflight = Preflight(runtime)
    conf = runtime.settings.preflight

    @runtime.app.agent(runtime.topics["melt_requests"], name="preflight", concurrency=1)
    async def preflight_agent(stream: RawStream) -> None:
        # StreamT's protocol lacks noack; the concrete Stream has it.
        manual = cast(faust.Stream[Any], stream).noack()

        async def crash(exc: BaseException) -> None:
            # The broker kept refusing our outputs: stop before anything after the unanswered
            # requests is committed, so a restart answers them.
            logger.error("preflight batch failed; stopping the worker", exc_info=exc)
            await stop_worker(runtime, exc)

        batches = MicroBatches(
            handler=preflight.handle_batch,
            on_error=crash,
            acks=OrderedAcks(manual.ack),
            max_size=conf.batch_max,
            within_s=conf.batch_within_ms / 1000,
            max_in_flight=conf.max_in_flight,
            max_in_flight_bytes=conf.max_in_flight_bytes,
        )
        try:
            async for event in manual.events():
                await batches.add(event)
        finally:
            await batches.drain()
