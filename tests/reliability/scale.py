"""How big a campaign is: `full` for `make test-reliability` (at most 30 minutes), `reduced` for
`make test` (at most 5 minutes). PROOFRECON_RELIABILITY_SCALE picks one; reduced is the default."""

from __future__ import annotations

import os
from dataclasses import dataclass

from devkit.mint_proxy import Fault


@dataclass(frozen=True)
class Scale:
    name: str
    melts_per_s: float
    token_events_per_s: float
    unspent_proofs: int
    churn_tokens: int
    warmup_s: float
    worker_kills: int
    kill_gap_s: tuple[float, float]  # a random pause before each kill
    freeze_s: float  # SIGSTOP this long: past the 10 s session timeout
    node_down_s: float
    rolling_restart: bool
    sink_down_s: float
    mint_faults: tuple[tuple[Fault, float], ...]
    settle_s: float  # after each fault, before the next
    timeout_s: int  # the whole test

    @property
    def faults(self) -> list[str]:
        return [fault.value for fault, _ in self.mint_faults]


FULL = Scale(
    name="full",
    melts_per_s=20.0,
    token_events_per_s=5.0,
    unspent_proofs=80,
    churn_tokens=12,
    warmup_s=20.0,
    worker_kills=5,
    kill_gap_s=(8.0, 20.0),
    freeze_s=16.0,
    node_down_s=20.0,
    rolling_restart=True,
    sink_down_s=60.0,
    mint_faults=(
        (Fault.DOWN, 30.0),
        (Fault.SLOW, 30.0),
        (Fault.RATE_LIMIT, 30.0),
        (Fault.GARBAGE, 30.0),
    ),
    settle_s=10.0,
    timeout_s=1800,
)

REDUCED = Scale(
    name="reduced",
    melts_per_s=15.0,
    token_events_per_s=4.0,
    unspent_proofs=60,
    churn_tokens=8,
    warmup_s=8.0,
    worker_kills=1,
    kill_gap_s=(3.0, 6.0),
    freeze_s=14.0,
    node_down_s=20.0,
    rolling_restart=False,
    sink_down_s=20.0,
    mint_faults=((Fault.DOWN, 12.0), (Fault.GARBAGE, 8.0)),
    settle_s=4.0,
    timeout_s=420,
)


def chosen() -> Scale:
    name = os.environ.get("PROOFRECON_RELIABILITY_SCALE", "reduced")
    scales = {s.name: s for s in (FULL, REDUCED)}
    if name not in scales:
        raise ValueError(f"PROOFRECON_RELIABILITY_SCALE must be one of {sorted(scales)}")
    return scales[name]
