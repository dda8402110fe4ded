"""The proof index equals a replay of the token-status stream (review findings 3 and 4).

Hypothesis generates token-status streams over a few npubs, tokens and Ys: tokens listing Ys
another token holds (moves), partial re-issues, deletes, stale versions, ids holding the key
separator and quotes. After every event the live index, and an index rebuilt from the table (a
restart), and an index rebuilt from only some npubs' rows (a rebalance), must all name, for every
Y, the token a plain replay says holds it: the live token that listed it last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.cashu import y_from_secret
from streams.core.contracts import TokenStatusEvent
from streams.recon.ledger import ProofIndex, TokenRecord, apply_token_event, split_key, token_key

YS = [y_from_secret(f"index-property-{i}") for i in range(6)]
NPUBS = ["npub1alice", "npub1bob"]
# Token ids that broke the old key parsing: separators, quotes, the npub's own shape.
TOKEN_IDS = ["t1", "mintA|000123", '"npub1alice|t1"', "t|", "npub1bob"]


@st.composite
def events(draw: st.DrawFn) -> list[TokenStatusEvent]:
    count = draw(st.integers(1, 40))
    out = []
    for i in range(count):
        status = draw(st.sampled_from(["unspent", "pending", "spent", "deleted"]))
        ys = draw(st.lists(st.sampled_from(YS), min_size=1, max_size=4, unique=True))
        out.append(
            TokenStatusEvent.model_validate(
                {
                    "event_id": f"e{i}",
                    "npub": draw(st.sampled_from(NPUBS)),
                    "token_id": draw(st.sampled_from(TOKEN_IDS)),
                    "mint_url": "https://mint.example",
                    "status": status,
                    "version": draw(st.integers(0, 12)),
                    "occurred_at": datetime(2026, 1, 1, tzinfo=UTC),
                    "proofs": [{"Y": y, "amount": 1, "keyset_id": "00ab"} for y in ys],
                }
            )
        )
    return out


@dataclass
class Replay:
    """The oracle: apply events in order, no index, no cleverness."""

    tokens: dict[tuple[str, str], tuple[int, str, tuple[str, ...], int]] = field(
        default_factory=dict
    )

    def apply(self, event: TokenStatusEvent, seq: int) -> None:
        key = (event.npub, event.token_id)
        current = self.tokens.get(key)
        if current is not None and event.version <= current[0]:
            return
        ys = () if event.status == "deleted" else tuple(p.y for p in event.proofs)
        self.tokens[key] = (event.version, event.status.value, ys, seq)

    def holder(self, npub: str, y: str) -> str | None:
        listing = [
            (seq, token_id)
            for (owner, token_id), (_, status, ys, seq) in self.tokens.items()
            if owner == npub and status != "deleted" and y in ys
        ]
        return max(listing)[1] if listing else None


def _check(index: ProofIndex, replay: Replay, npubs: list[str]) -> None:
    for npub in npubs:
        for y in YS:
            assert index.token_of(npub, y) == replay.holder(npub, y), (npub, y)


@settings(max_examples=300, deadline=None)
@given(events())
def test_index_equals_replay_live_after_restart_and_after_rebalance(
    stream: list[TokenStatusEvent],
) -> None:
    table: dict[str, dict[str, object]] = {}
    index = ProofIndex()
    replay = Replay()
    for seq, event in enumerate(stream):
        key = token_key(event.npub, event.token_id)
        stored = table.get(key)
        update = apply_token_event(
            event, TokenRecord.from_dict(stored) if stored else None, seq=seq
        )
        replay.apply(event, seq)
        if not update.ignored and update.token is not None:
            table[key] = update.token.to_dict()
            index.apply(event.npub, event.token_id, update)
        _check(index, replay, NPUBS)

    restarted = ProofIndex()
    restarted.rebuild(reversed(list(table.items())))  # read order must not matter
    _check(restarted, replay, NPUBS)

    for owned in NPUBS:  # a rebalance: this worker now holds one npub's partition only
        rebalanced = ProofIndex()
        rebalanced.rebuild((k, v) for k, v in table.items() if split_key(k)[0] == owned)
        _check(rebalanced, replay, [owned])
        other = next(n for n in NPUBS if n != owned)
        assert all(rebalanced.token_of(other, y) is None for y in YS)
