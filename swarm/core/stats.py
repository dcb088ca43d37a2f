"""Statistics of metrics: improvement, mean, pooled spread, margin. Pure: no Ray, no git, no subprocess."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal

__all__ = ["Direction", "improvement", "pooled_spread", "margin", "mean"]

Direction = Literal["minimize", "maximize"]


def improvement(value: float, reference: float, direction: Direction) -> float:
    """How much better `value` is than `reference`; positive means better."""
    return reference - value if direction == "minimize" else value - reference


def mean(samples: Sequence[float]) -> float:
    return math.fsum(samples) / len(samples)


def pooled_spread(groups: Iterable[Sequence[float]]) -> float | None:
    """Pooled standard deviation of repeated runs of the same code; None until some code ran twice.

    Noise is a property of the target and hardware, not of one commit, so every group of
    repeats (baselines of each best, confirmations) sharpens the one estimate.
    """
    squares, freedom = 0.0, 0
    for samples in groups:
        if len(samples) >= 2:
            centre = mean(samples)
            squares += math.fsum((x - centre) ** 2 for x in samples)
            freedom += len(samples) - 1
    return math.sqrt(squares / freedom) if freedom else None


def margin(min_delta: float, noise_k: float, spread: float | None) -> float:
    """The improvement a result must exceed: max(min_delta, noise_k * spread)."""
    return max(min_delta, noise_k * (spread or 0.0))
