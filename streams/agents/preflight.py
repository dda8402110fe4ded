"""Preflight agent: every melt request gets a verdict, and nothing is cleared on unknown truth.

Requests are taken in small batches; each request's check goes to its mint's gateway at once, and
the gateway merges the concurrent checks of a batch into shared checkstate requests. Table access
happens per request inside its own event context (faust-streaming #497).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import faust

from streams.agents.base import (
    Emitter,
    RawEvent,
    RawStream,
    event_context,
    ledger_record,
    open_discrepancies,
    raw_value,
    utcnow,
    write_open_changes,
)
from streams.agents.pipelining import MicroBatches, OrderedAcks
from streams.app import Runtime
from streams.classify import Decision, preflight_result, proof_check_event_id
from streams.domain import BlockCode, ErrorKind, MintState, Source, Verdict
from streams.errors import ContractError, MintDeadlineExceeded, MintError, MintNotAllowed
from streams.logs import log
from streams.models import (
    MeltRequest,
    ProofCheckEvent,
    extract_field,
    extract_npub,
    extract_reply_to,
    extract_request_id,
    parse_melt_request,
)
from streams.reconcile import Outcome, ProofToCheck, reconcile

logger = logging.getLogger("proofrecon.preflight")


@dataclass(frozen=True, slots=True)
class _Refusal:
    """A request answered BLOCKED without classification (fail closed)."""

    code: BlockCode
    reason: str


class Preflight:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._emit = Emitter(runtime)

    async def handle_batch(self, events: list[RawEvent]) -> None:
        await asyncio.gather(*(self.handle(event) for event in events))

    async def handle(self, event: RawEvent) -> None:
        started = time.monotonic()
        try:
            request = parse_melt_request(raw_value(event), self._rt.limits)
        except ContractError as exc:
            await self._invalid(event, exc, started)
            return
        except Exception as exc:  # a parser bug must not stop the agent; keep the input
            logger.exception("could not parse a melt request")
            await self._emit.dead_letter(event, ErrorKind.PROCESSING_ERROR, type(exc).__name__)
            return
        try:
            await self._answer(event, request, started)
        except Exception:
            # Whatever went wrong, the wallet gets an answer, and it is not "cleared".
            logger.exception("preflight failed unexpectedly; answering BLOCKED")
            await self._refuse(request, _Refusal(BlockCode.MINT_UNAVAILABLE, "internal"), started)

    async def _answer(self, event: RawEvent, request: MeltRequest, started: float) -> None:
        refusal, states = await self._mint_states(request)
        if refusal is not None:
            await self._refuse(request, refusal, started)
            return
        assert states is not None
        with event_context(event):
            outcome = self._reconcile(request, states)
        await self._emit.discrepancies(outcome.events)
        await self._emit.corrections(outcome.corrections)
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
            )
        )
        await self._send(request, outcome.decision, started)

    async def _mint_states(
        self, request: MeltRequest
    ) -> tuple[_Refusal | None, dict[str, MintState] | None]:
        deadline_s = None
        if request.deadline_ms is not None:
            expires = request.requested_at + timedelta(milliseconds=request.deadline_ms)
            deadline_s = (expires - utcnow()).total_seconds()
            if deadline_s <= 0:
                return _Refusal(
                    BlockCode.DEADLINE_EXCEEDED, "deadline passed before the check"
                ), None
        try:
            gateway = self._rt.gateways.get(request.mint_url)
            ys = [proof.y for proof in request.proofs]
            states = await gateway.check(ys, deadline_s=deadline_s, source=Source.PREFLIGHT)
        except MintNotAllowed:
            return _Refusal(BlockCode.INVALID_REQUEST, "mint_url is not on the allow-list"), None
        except MintDeadlineExceeded as exc:
            return _Refusal(BlockCode.DEADLINE_EXCEEDED, exc.code), None
        except MintError as exc:
            return _Refusal(BlockCode.MINT_UNAVAILABLE, exc.code), None
        return None, states

    def _reconcile(self, request: MeltRequest, states: dict[str, MintState]) -> Outcome:
        npub = request.npub
        proofs = [
            ProofToCheck(p.y, p.amount, p.keyset_id, p.token_id, ledger_record(self._rt, npub, p.y))
            for p in request.proofs
        ]
        outcome = reconcile(
            proofs,
            states,
            open_discrepancies(self._rt, npub, (p.y for p in proofs)),
            policy=self._rt.policy,
            npub=request.npub,
            mint_url=request.mint_url,
            source=Source.PREFLIGHT,
            at=utcnow(),
            request_id=request.request_id,
        )
        write_open_changes(self._rt, npub, outcome.open_changes)
        sweep = self._rt.extras.get("sweep_index")
        if sweep is not None:
            sweep.checked(request.npub, [p.y for p in proofs])
        return outcome

    async def _send(self, request: MeltRequest, decision: Decision, started: float) -> None:
        duration_ms = (time.monotonic() - started) * 1000
        result = preflight_result(
            decision,
            request_id=request.request_id,
            npub=request.npub,
            mint_url=request.mint_url,
            checked_proofs=len(request.proofs),
            duration_ms=round(duration_ms, 3),
            answered_at=utcnow(),
        )
        await self._emit.answer(result, request.reply_to)
        self._rt.metrics.preflight_duration.observe(duration_ms / 1000)
        self._log_verdict(request, decision, duration_ms)

    def _log_verdict(self, request: MeltRequest, decision: Decision, duration_ms: float) -> None:
        fields = {
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
        if decision.verdict is Verdict.BLOCKED:
            log(logger, logging.ERROR, "Pre-flight reconciliation BLOCKED", **fields)
        elif decision.verdict is Verdict.CLEARED_AFTER_RECONCILIATION:
            log(logger, logging.INFO, "Proof state reconciliation completed", **fields)
        else:
            log(logger, logging.INFO, "Pre-flight reconciliation passed", **fields)

    async def _refuse(self, request: MeltRequest, refusal: _Refusal, started: float) -> None:
        decision = self._rt.policy.blocked_verdict(refusal.code)
        log(
            logger,
            logging.WARNING,
            "preflight refused",
            request_id=request.request_id,
            code=refusal.code.value,
            reason=refusal.reason,
        )
        await self._send(request, decision, started)

    async def _invalid(self, event: RawEvent, exc: ContractError, started: float) -> None:
        kind = exc.error_kind
        await self._emit.dead_letter(event, kind, exc.message)
        raw = raw_value(event)
        request_id = extract_request_id(raw)
        if request_id is None:
            return  # nobody to answer
        decision = self._rt.policy.blocked_verdict(BlockCode.INVALID_REQUEST)
        key = event.message.key
        npub = extract_npub(raw) or (key.decode("utf-8", "replace") if key else "")
        result = preflight_result(
            decision,
            request_id=request_id,
            npub=npub,
            mint_url=extract_field(raw, "mint_url") or "",
            checked_proofs=0,
            duration_ms=round((time.monotonic() - started) * 1000, 3),
            answered_at=utcnow(),
        )
        await self._emit.answer(result, extract_reply_to(raw))


def register(runtime: Runtime) -> None:
    preflight = Preflight(runtime)
    conf = runtime.settings.preflight

    @runtime.app.agent(runtime.topics["melt_requests"], name="preflight", concurrency=1)
    async def preflight_agent(stream: RawStream) -> None:
        # StreamT's protocol lacks noack; the concrete Stream has it.
        manual = cast(faust.Stream[Any], stream).noack()

        async def crash(exc: BaseException) -> None:
            # An answer could not be sent (Kafka itself failing): stop before anything after
            # the unanswered requests is committed, so a restart answers them.
            logger.error("preflight batch failed; stopping the worker", exc_info=exc)
            await runtime.app.crash(exc)

        batches = MicroBatches(
            handler=preflight.handle_batch,
            on_error=crash,
            acks=OrderedAcks(manual.ack),
            max_size=conf.batch_max,
            within_s=conf.batch_within_ms / 1000,
            max_in_flight=conf.max_in_flight,
        )
        runtime.extras["preflight_batches"] = batches
        try:
            async for event in manual.events():
                await batches.add(event)
        finally:
            await batches.drain()
