"""Steady load for a fault campaign or a benchmark: melt requests of every class and token-status
churn, with real proofs at real mints, and a book of everything sent and answered (`LoadBook`).

The melt classes: what the melt's proofs are in the wallet DB and at the mint, and the verdict
that follows (README, "Classification and policy"):

| class | DB | mint | verdict / code |
|---|---|---|---|
| clean | unspent | UNSPENT | CLEARED |
| high | unspent | SPENT | BLOCKED / HIGH_SEVERITY_DISCREPANCIES |
| medium_pending_spent | pending | SPENT | BLOCKED / PROOF_SPENT_AT_MINT (and a correction) |
| medium_spent_unspent | spent | UNSPENT | BLOCKED / UNRESOLVED_DISCREPANCIES |
| low_absent | (absent) | UNSPENT | CLEARED |
| low_pending_unspent | pending | UNSPENT | CLEARED |
| low_mint_pending | unspent | PENDING (a mint whose melts hang) | BLOCKED / PROOF_PENDING_AT_MINT |
| invalid | | | BLOCKED / INVALID_REQUEST |

Why every answer to one request must be the same, and how the load makes sure of it: a request
whose worker died before committing it is answered again, judged afresh from the ledger and the
mint's truth of that moment. So the load never changes what a melt may see: the proofs melts name
keep their state at the mint (unspent ones are never spent, spent ones stay spent, the pending
mint's melts never settle) and their tokens keep their ledger record for the whole run. All the
churn — status changes, stale versions, deletes, real spends at the mint — happens to other tokens
that no melt names. Two different answers to one request are then a bug, never a replay.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devkit.wallet import WalletProof
from streams.client import token_status_event
from streams.core.kafka import client_kwargs
from streams.core.settings import Settings


class MeltClass(StrEnum):
    CLEAN = "clean"
    HIGH = "high"
    MEDIUM_PENDING_SPENT = "medium_pending_spent"
    MEDIUM_SPENT_UNSPENT = "medium_spent_unspent"
    LOW_ABSENT = "low_absent"
    LOW_PENDING_UNSPENT = "low_pending_unspent"
    LOW_MINT_PENDING = "low_mint_pending"
    INVALID = "invalid"


@dataclass(frozen=True)
class ClassSpec:
    db_status: str | None  # None: not in the wallet DB
    mint_state: str | None  # None: no proofs judged (an invalid request)
    verdict: str
    code: str | None
    weight: int  # share of the melt load


_B, _C = "BLOCKED", "CLEARED"
CLASSES: dict[MeltClass, ClassSpec] = {
    MeltClass.CLEAN: ClassSpec("unspent", "UNSPENT", _C, None, 40),
    MeltClass.HIGH: ClassSpec("unspent", "SPENT", _B, "HIGH_SEVERITY_DISCREPANCIES", 10),
    MeltClass.MEDIUM_PENDING_SPENT: ClassSpec("pending", "SPENT", _B, "PROOF_SPENT_AT_MINT", 8),
    MeltClass.MEDIUM_SPENT_UNSPENT: ClassSpec(
        "spent", "UNSPENT", _B, "UNRESOLVED_DISCREPANCIES", 8
    ),
    MeltClass.LOW_ABSENT: ClassSpec(None, "UNSPENT", _C, None, 8),
    MeltClass.LOW_PENDING_UNSPENT: ClassSpec("pending", "UNSPENT", _C, None, 8),
    MeltClass.LOW_MINT_PENDING: ClassSpec("unspent", "PENDING", _B, "PROOF_PENDING_AT_MINT", 8),
    MeltClass.INVALID: ClassSpec(None, None, _B, "INVALID_REQUEST", 10),
}
# Verdicts that say the mint's truth could not be had: the only other answer a faulty mint allows.
UNKNOWN_TRUTH_CODES = frozenset({"MINT_UNAVAILABLE", "DEADLINE_EXCEEDED"})
PROOFS_PER_TOKEN = 2


def proof_ref(proof: WalletProof) -> dict[str, Any]:
    return {"Y": proof.Y, "amount": proof.amount, "keyset_id": proof.keyset_id}


def new_npub(rng: random.Random) -> str:
    return "npub1" + "".join(rng.choice("023456789acdefghjklmnpqrstuvwxyz") for _ in range(58))


@dataclass(frozen=True)
class Holding:
    """A token melts name: fixed in the ledger and at the mint for the whole run."""

    npub: str
    token_id: str
    mint_url: str
    melt_class: MeltClass
    proofs: tuple[WalletProof, ...]

    @property
    def refs(self) -> list[dict[str, Any]]:
        return [proof_ref(p) for p in self.proofs]


@dataclass
class ChurnToken:
    """A token no melt names: its status changes all the time, and it may be spent for real."""

    npub: str
    token_id: str
    mint_url: str
    proofs: tuple[WalletProof, ...]
    version: int = 0
    spend_at_mint: bool = False  # swapped at the mint once during the run
    spent: bool = False


@dataclass
class LoadPlan:
    holdings: list[Holding]
    churn: list[ChurnToken]
    truth: dict[str, str]  # Y -> state at its mint (of melt proofs: fixed for the run)
    unknown_mint: str  # allow-listed by nobody: requests naming it are invalid

    def of_class(self, melt_class: MeltClass) -> list[Holding]:
        return [h for h in self.holdings if h.melt_class is melt_class]


def _tokens(
    proofs: Sequence[WalletProof], size: int = PROOFS_PER_TOKEN
) -> list[tuple[WalletProof, ...]]:
    return [tuple(proofs[i : i + size]) for i in range(0, len(proofs) - size + 1, size)]


@dataclass
class ProofSupply:
    """Real proofs: at the main mint (unspent, spent two ways), at a mint whose melts hang."""

    main_url: str
    unspent: list[WalletProof]
    spent_swap: list[WalletProof]
    spent_elsewhere: list[WalletProof]
    pending_url: str
    pending: list[WalletProof]


def plan_load(supply: ProofSupply, owners: int, churn_tokens: int, rng: random.Random) -> LoadPlan:
    """Holdings of every class spread over `owners` npubs, and `churn_tokens` churn tokens."""
    npubs = [new_npub(rng) for _ in range(owners)]
    unspent = _tokens(supply.unspent)
    per_class = {
        MeltClass.HIGH: (supply.main_url, _tokens(supply.spent_elsewhere)),
        MeltClass.MEDIUM_PENDING_SPENT: (supply.main_url, _tokens(supply.spent_swap)),
        MeltClass.LOW_MINT_PENDING: (supply.pending_url, _tokens(supply.pending)),
    }
    share = max(1, (len(unspent) - churn_tokens) // 6)
    unspent_classes = [
        MeltClass.MEDIUM_SPENT_UNSPENT,
        MeltClass.LOW_ABSENT,
        MeltClass.LOW_PENDING_UNSPENT,
    ]
    for melt_class in unspent_classes:
        per_class[melt_class] = (supply.main_url, [unspent.pop() for _ in range(share)])
    churn = [unspent.pop() for _ in range(min(churn_tokens, len(unspent) - 1))]
    per_class[MeltClass.CLEAN] = (supply.main_url, unspent)
    holdings = [
        Holding(
            rng.choice(npubs),
            f"tok-{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}",
            url,
            melt_class,
            proofs,
        )
        for melt_class, (url, tokens) in per_class.items()
        for proofs in tokens
    ]
    truth = {p.Y: CLASSES[h.melt_class].mint_state or "" for h in holdings for p in h.proofs}
    tokens = [
        ChurnToken(
            rng.choice(npubs),
            f"churn-{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}",
            supply.main_url,
            proofs,
            spend_at_mint=i % 4 == 0,
        )
        for i, proofs in enumerate(churn)
    ]
    return LoadPlan(holdings, tokens, truth, unknown_mint="http://127.0.0.1:9")


# --- the book ------------------------------------------------------------------------------------


@dataclass
class SentMelt:
    request_id: str
    melt_class: str
    npub: str
    mint_url: str
    ys: list[str]
    sent_at: float  # unix seconds
    invalid_kind: str | None = None


@dataclass
class Answer:
    verdict: str
    code: str | None
    answered_at: str  # the worker's timestamp
    seen_at: float  # unix seconds, when the load's reader consumed it


@dataclass
class LoadBook:
    """What the load sent and what came back, as the wallet saw it."""

    melts: dict[str, SentMelt] = field(default_factory=dict)
    answers: dict[str, list[Answer]] = field(default_factory=dict)
    token_events: int = 0
    stale_token_events: int = 0
    spends_at_mint: int = 0

    def unanswered(self) -> list[str]:
        return [rid for rid in self.melts if rid not in self.answers]

    def sent_between(self, start: float, end: float) -> list[SentMelt]:
        return [m for m in self.melts.values() if start <= m.sent_at < end]

    def counts(self) -> dict[str, int]:
        return {
            "melts": len(self.melts),
            "token_events": self.token_events,
            "stale_token_events": self.stale_token_events,
            "spends_at_mint": self.spends_at_mint,
        }


# --- the load ------------------------------------------------------------------------------------


def melt_body(
    request_id: str, npub: str, mint_url: str, refs: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "npub": npub,
        "mint_url": mint_url,
        "proofs": refs,
        "requested_at": datetime.now(UTC).isoformat(),
    }


INVALID_KINDS = ("bad_y", "wrong_key", "unknown_mint", "unknown_field")


def invalid_melt(plan: LoadPlan, rng: random.Random) -> tuple[bytes, dict[str, Any], str]:
    """(Kafka key, body, kind) of a request that breaks the contract but names a request_id."""
    holding = rng.choice(plan.of_class(MeltClass.CLEAN))
    kind = rng.choice(INVALID_KINDS)
    body = melt_body(f"req-{uuid.uuid4().hex}", holding.npub, holding.mint_url, holding.refs)
    key = holding.npub.encode()
    if kind == "bad_y":
        body["proofs"] = [{**holding.refs[0], "Y": "02" + "zz" * 32}]
    elif kind == "wrong_key":
        key = new_npub(rng).encode()
    elif kind == "unknown_mint":
        body["mint_url"] = plan.unknown_mint
    else:
        body["surprise"] = "a field the contract does not know"
    return key, body, kind


class SteadyLoad:
    """Melts at `melts_per_s` (open loop: answers are never waited for) and token-status churn at
    `token_events_per_s`, until `stop` is set; a reader books every answer as it arrives."""

    def __init__(
        self,
        settings: Settings,
        plan: LoadPlan,
        book: LoadBook,
        *,
        melts_per_s: float,
        token_events_per_s: float,
        seed: int = 12,
        spender: Any = None,  # devkit.wallet.CashuWallet of the main mint: spends churn tokens
    ) -> None:
        self.settings = settings
        self.plan = plan
        self.book = book
        self.melts_per_s = melts_per_s
        self.token_events_per_s = token_events_per_s
        self.rng = random.Random(seed)
        self.spender = spender
        self._producer: AIOKafkaProducer | None = None
        self._weights = [(c, s.weight) for c, s in CLASSES.items() if self._classes_present(c)]

    def _classes_present(self, melt_class: MeltClass) -> bool:
        return melt_class is MeltClass.INVALID or bool(self.plan.of_class(melt_class))

    async def __aenter__(self) -> SteadyLoad:
        self._producer = AIOKafkaProducer(
            **client_kwargs(self.settings.kafka),
            acks="all",
            linger_ms=2,
            request_timeout_ms=60_000,
            enable_idempotence=True,
        )
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def _send(self, topic: str, key: bytes, body: dict[str, Any]) -> None:
        assert self._producer is not None, "use `async with SteadyLoad(...)`"
        # acks=all and idempotence: a send the broker confirmed is on two replicas at least.
        await self._producer.send(topic, key=key, value=json.dumps(body).encode())

    # --- setup -----------------------------------------------------------------------------------

    async def register_holdings(self) -> int:
        """Publish every holding's token (but the low_absent ones) and every churn token's first
        version; returns how many events were sent."""
        topic = self.settings.topics.token_status
        sent = 0
        for holding in self.plan.holdings:
            status = CLASSES[holding.melt_class].db_status
            if status is None:
                continue
            event = token_status_event(
                holding.npub, holding.token_id, holding.mint_url, status, holding.refs, version=1
            )
            await self._send(topic, holding.npub.encode(), event)
            sent += 1
        for token in self.plan.churn:
            await self._churn_event(token, "unspent")
            sent += 1
        assert self._producer is not None
        await self._producer.flush()
        return sent

    # --- melts -----------------------------------------------------------------------------------

    async def melts(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        started, i = loop.time(), 0
        while not stop.is_set():
            delay = started + i / self.melts_per_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.send_melt(self._pick_class())
            i += 1

    def _pick_class(self) -> MeltClass:
        classes = [c for c, _ in self._weights]
        chosen: MeltClass = self.rng.choices(classes, [w for _, w in self._weights])[0]
        return chosen

    async def send_melt(self, melt_class: MeltClass) -> SentMelt:
        topic = self.settings.topics.melt_requests
        invalid_kind = None
        if melt_class is MeltClass.INVALID:
            key, body, invalid_kind = invalid_melt(self.plan, self.rng)
        else:
            holding = self.rng.choice(self.plan.of_class(melt_class))
            body = melt_body(
                f"req-{uuid.uuid4().hex}", holding.npub, holding.mint_url, holding.refs
            )
            key = holding.npub.encode()
        ys = [str(p.get("Y")) for p in body["proofs"]]
        sent = SentMelt(
            body["request_id"],
            melt_class.value,
            body["npub"],
            body["mint_url"],
            ys,
            time.time(),
            invalid_kind,
        )
        self.book.melts[sent.request_id] = sent
        await self._send(topic, key, body)
        return sent

    # --- token-status churn ----------------------------------------------------------------------

    async def churn(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and self.plan.churn:
            await asyncio.sleep(self.rng.expovariate(self.token_events_per_s))
            token = self.rng.choice(self.plan.churn)
            if token.spend_at_mint and not token.spent and self.spender is not None:
                await self._spend(token)
            elif self.rng.random() < 0.1 and token.version > 1:
                # An older version arriving late (an outbox relay replaying): ignored.
                await self._churn_event(token, "unspent", self.rng.randrange(1, token.version))
            else:
                status = self.rng.choice(("unspent", "pending", "spent", "pending", "deleted"))
                await self._churn_event(token, status)

    async def _churn_event(self, token: ChurnToken, status: str, stale: int | None = None) -> None:
        """The token's next version, or `stale`: an older one again."""
        if stale is None:
            token.version += 1
        refs = [proof_ref(p) for p in token.proofs]
        version = token.version if stale is None else stale
        event = token_status_event(
            token.npub, token.token_id, token.mint_url, status, refs, version=version
        )
        await self._send(self.settings.topics.token_status, token.npub.encode(), event)
        self.book.token_events += 1
        self.book.stale_token_events += stale is not None

    async def _spend(self, token: ChurnToken) -> None:
        """Spend the token at the mint for real (a swap), then tell the ledger it is spent."""
        token.spent = True
        await asyncio.to_thread(self.spender.swap, list(token.proofs))
        self.book.spends_at_mint += 1
        await self._churn_event(token, "spent")

    # --- answers ---------------------------------------------------------------------------------

    async def read_answers(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            self.settings.topics.preflight_results,
            **client_kwargs(self.settings.kafka),
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                now = time.time()
                for records in batch.values():
                    for record in records:
                        value = json.loads(record.value)
                        answer = Answer(
                            value["verdict"], value.get("code"), value["answered_at"], now
                        )
                        self.book.answers.setdefault(value["request_id"], []).append(answer)
        finally:
            await consumer.stop()
