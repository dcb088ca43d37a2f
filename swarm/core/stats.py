"""Statistics of metrics: improvement, mean, pooled spread, margin. Pure: no Ray, no git, no subprocess."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["Direction", "improvement", "pooled_spread", "margin", "mean", "Group", "Noise", "robust_noise",
           "t_quantile", "f_quantile", "standard_error"]

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


@dataclass(frozen=True)
class Group:
    """Repeated runs of one piece of code on one class of hardware: their count, mean and sum
    of squared deviations (Welford), enough to pool noise without keeping the runs."""

    n: int
    mean: float
    m2: float

    def plus(self, x: float) -> Group:
        n = self.n + 1
        delta = x - self.mean
        centre = self.mean + delta / n
        return Group(n, centre, self.m2 + delta * (x - centre))

    @staticmethod
    def of(samples: Sequence[float]) -> Group:
        group = Group(0, 0.0, 0.0)
        for x in samples:
            group = group.plus(x)
        return group


@dataclass(frozen=True)
class Noise:
    """The noise of one class of hardware as the repeat groups tell it: the pooled standard
    deviation, its degrees of freedom, and how many groups were left out as disturbed."""

    spread: float | None
    df: int
    excluded: int = 0


def robust_noise(groups: Iterable[Group], level: float = 0.001, max_excluded: float = 0.25) -> Noise:
    """Pooled noise of the groups with two or more runs, leaving out groups whose variance is
    an outlier against the rest (an F test of the largest at `level`): one run taken while another job loaded
    the machine must not widen every later margin. At most `max_excluded` of the groups go."""
    kept = [g for g in groups if g.n >= 2]
    excluded = 0
    while len(kept) >= 3 and excluded < max_excluded * (len(kept) + excluded):
        squares, df = math.fsum(g.m2 for g in kept), sum(g.n - 1 for g in kept)
        worst = max(kept, key=lambda g: g.m2 / (g.n - 1))
        rest_df = df - (worst.n - 1)
        rest_var = (squares - worst.m2) / rest_df if rest_df else 0.0
        if rest_var <= 0 or rest_df < 2:
            break
        # the largest of len(kept) variances: Sidak's level, so that `level` is the chance any
        # calm group is left out, not each one
        cutoff = f_quantile((1 - level) ** (1 / len(kept)), worst.n - 1, rest_df)
        if worst.m2 / (worst.n - 1) / rest_var <= cutoff:
            break
        kept.remove(worst)
        excluded += 1
    df = sum(g.n - 1 for g in kept)
    if not df:
        return Noise(None, 0, excluded)
    return Noise(math.sqrt(math.fsum(g.m2 for g in kept) / df), df, excluded)


@functools.lru_cache(maxsize=4096)
def t_quantile(p: float, df: int) -> float:
    """Student's t quantile (scipy), cached: the same few (level, df) pairs recur all run long."""
    from scipy import stats  # on first use: half a second that `swarm status` need not pay

    return float(stats.t.ppf(p, df))


@functools.lru_cache(maxsize=4096)
def f_quantile(p: float, df_num: int, df_den: int) -> float:
    from scipy import stats

    return float(stats.f.ppf(p, df_num, df_den))


def standard_error(spread: float, runs: int, reference_runs: int) -> float:
    """The standard error of a difference of two means of runs with the same noise."""
    return spread * math.sqrt(1 / runs + 1 / reference_runs)
