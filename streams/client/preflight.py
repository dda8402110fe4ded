"""Wallet-side clients: ask for a melt preflight and await its verdict; publish token statuses.

Request/reply is done here rather than with Faust's `agent.ask()` (no timeout, reply topics per
process): the request goes to `wallet.melt-requests` keyed by npub, the answer comes back on
`recon.preflight-results` keyed by request_id, and this client correlates by request_id. It
accepts only an answer about what it asked: the same npub, mint and proofs (`proofs_digest`), so
an answer forged or computed for another request is ignored (review finding 14). The first such
answer wins; a late or duplicate one (at-least-once delivery can repeat one) is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.core.contracts import MeltRequest, PreflightResult, proofs_digest, to_json_bytes
from streams.core.errors import PreflightTimeout, ProofReconError
from streams.core.kafka import client_kwargs
from streams.core.settings import Settings

logger = logging.getLogger("proofrecon.client")


class PreflightClient:
    """`async with PreflightClient(settings) as client: result = await client.preflight(req)`."""

    def __init__(self, settings: Settings, *, reply_topic: str | None = None) -> None:
        self._settings = settings
        self._reply_topic = reply_topic or settings.topics.preflight_results
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[str, tuple[MeltRequest, asyncio.Future[PreflightResult]]] = {}
        self.ignored_answers = 0  # answers that matched a request_id but not its request

    async def __aenter__(self) -> PreflightClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        kwargs = client_kwargs(self._settings.kafka)
        self._producer = AIOKafkaProducer(**kwargs, acks="all", linger_ms=0)
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(**kwargs, group_id=None, enable_auto_commit=False)
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(self._reply_topic)
        if not partitions:
            partitions = await self._wait_for_partitions()
        tps = [TopicPartition(self._reply_topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        # Resolve the end offsets now: an answer produced after this point cannot be missed.
        for tp in tps:
            await self._consumer.position(tp)
        self._reader = asyncio.create_task(self._read_answers())

    async def _wait_for_partitions(self) -> set[int]:
        assert self._consumer is not None
        for _ in range(50):
            await self._consumer._client.force_metadata_update()
            partitions = self._consumer.partitions_for_topic(self._reply_topic)
            if partitions:
                return set(partitions)
            await asyncio.sleep(0.1)
        raise ProofReconError(f"reply topic {self._reply_topic} does not exist")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for _, future in self._waiting.values():
            future.cancel()
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    async def preflight(self, request: MeltRequest, *, timeout: float = 10.0) -> PreflightResult:
        """Publish `request` and wait for its verdict; PreflightTimeout after `timeout` seconds."""
        assert self._producer is not None, "start() the client first"
        future: asyncio.Future[PreflightResult] = asyncio.get_running_loop().create_future()
        self._waiting[request.request_id] = (request, future)
        try:
            await self._producer.send_and_wait(
                self._settings.topics.melt_requests,
                key=request.npub.encode(),
                value=to_json_bytes(request),
            )
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise PreflightTimeout(
                f"no verdict for request {request.request_id} within {timeout} s"
            ) from None
        finally:
            self._waiting.pop(request.request_id, None)

    async def _read_answers(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    self._deliver(record.value)

    def _deliver(self, value: bytes | None) -> None:
        if not value:
            return
        try:
            result = PreflightResult.model_validate_json(value)
        except ValueError:
            logger.warning("ignored an undecodable preflight answer")
            return
        waiting = self._waiting.get(result.request_id)
        if waiting is None or waiting[1].done():
            return
        request, future = waiting
        if not answers(result, request):
            self.ignored_answers += 1
            logger.warning("ignored an answer that does not match its request")
            return
        future.set_result(result)


def answers(result: PreflightResult, request: MeltRequest) -> bool:
    """Is `result` an answer to `request`: same request_id, npub, mint and proofs?"""
    return (
        result.request_id == request.request_id
        and result.npub == request.npub
        and result.mint_url == request.mint_url
        and result.proofs_digest == proofs_digest(p.y for p in request.proofs)
    )
