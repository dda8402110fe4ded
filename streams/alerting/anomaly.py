"""ANOMALY: a window's discrepancy rate against an exponentially weighted baseline. Pure logic.

The rate is discrepancies per 1,000 proofs checked, so a busy hour is not mistaken for a bad one.
The baseline is an exponentially weighted mean and variance of previous windows' rates (West's
incremental form): recent windows count most, and a lasting change of level becomes the new normal
after a few windows instead of alerting forever.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


def rate_per_1k(count: int, checked: int) -> float | None:
    """Discrepancies per 1,000 proofs checked; None without a denominator."""
    if checked <= 0:
        return None
    return count * 1000.0 / checked


@dataclass(frozen=True, slots=True)
class Baseline:
    mean: float
    variance: float
    windows: int  # how many windows it has learnt from

    @classmethod
    def first(cls, rate: float) -> Baseline:
        return cls(rate, 0.0, 1)

    @property
    def deviation(self) -> float:
        return math.sqrt(max(self.variance, 0.0))

    def updated(self, rate: float, alpha: float) -> Baseline:
        diff = rate - self.mean
        step = alpha * diff
        return Baseline(
            self.mean + step, (1.0 - alpha) * (self.variance + diff * step), self.windows + 1
        )

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "variance": self.variance, "windows": self.windows}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Baseline:
        return cls(float(data["mean"]), float(data["variance"]), int(data["windows"]))


def learn(baseline: Baseline | None, rate: float, alpha: float) -> Baseline:
    return Baseline.first(rate) if baseline is None else baseline.updated(rate, alpha)


class Finding(StrEnum):
    WARMING_UP = "warming_up"
    TOO_FEW = "too_few"
    WITHIN_BASELINE = "within_baseline"
    ANOMALOUS = "anomalous"


@dataclass(frozen=True, slots=True)
class AnomalyCheck:
    finding: Finding
    limit: float | None  # the rate above which the window would be anomalous

    @property
    def anomalous(self) -> bool:
        return self.finding is Finding.ANOMALOUS


def check(
    baseline: Baseline | None,
    rate: float,
    count: int,
    *,
    deviations: float,
    min_deviation: float,
    min_count: int,
    warmup_windows: int,
) -> AnomalyCheck:
    """Judge one closed window against the baseline of the windows before it.

    `min_deviation` floors the deviation: after a perfectly steady history the variance is zero,
    and without a floor any wobble at all would be "infinitely many deviations" away.
    """
    if baseline is None or baseline.windows < warmup_windows:
        return AnomalyCheck(Finding.WARMING_UP, None)
    limit = baseline.mean + deviations * max(baseline.deviation, min_deviation)
    if count < min_count:
        return AnomalyCheck(Finding.TOO_FEW, limit)
    if rate > limit:
        return AnomalyCheck(Finding.ANOMALOUS, limit)
    return AnomalyCheck(Finding.WITHIN_BASELINE, limit)
