"""Acceptance: what a candidate's runs say against its parent's runs. Pure.

Each look at a candidate (after each of its runs) ends in one of three outcomes:
- `clear`: its gain's lower confidence bound clears `min_delta` at the false-accept level the
  config states (`acceptance.false_accept`, split over the `max_runs` looks a candidate can
  have), with the noise known only from repeated runs (a Student t bound, so two baselines'
  one degree of freedom demand a far larger gain than a run's worth of repeats);
- `lost`: even its point estimate does not beat `min_delta`, or it has had `max_runs` runs;
- `undecided`: another run will tell (racing).

Old configs that name `noise_k` keep the point rule they were written for: `clear` when the
mean gain beats `max(min_delta, noise_k * pooled spread)`, else `lost`.

With tie-breakers the looks are lexicographic (`in_order`): a candidate that does not clear
on the metric but is not worse by more than its margin (`is_worse`) is tied, and the first
tie-breaker decides with its own look (its own noise and min_delta), and so on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from swarm.core.config import AcceptanceSpec
from swarm.core.stats import Noise, margin, t_quantile

__all__ = ["Outcome", "ClassEvidence", "Evidence", "Look", "Level", "combine", "look", "is_worse", "in_order"]

Outcome = Literal["clear", "undecided", "lost"]

# A candidate is dropped once its gain estimate falls below min_delta by this many standard
# errors (0: once the point estimate says it is no better). Lower keeps more undecided
# candidates racing (more runs spent on losers), higher drops more real winners early.
KILL_BELOW_SE = 0.0


@dataclass(frozen=True)
class ClassEvidence:
    """A candidate's runs on one class of hardware against its parent's runs there."""

    gain: float  # improvement of the mean of its runs over the mean of the parent's
    runs: int
    reference_runs: int
    reference: float  # the parent's mean
    noise: Noise  # of this class (or of the trusted classes, until this one has repeats)
    gains: tuple[float, ...]  # each run's improvement over the parent's mean (the point rule)


@dataclass(frozen=True)
class Evidence:
    gain: float
    se: float | None  # None while no repeats measured the noise
    df: int
    runs: int
    reference: float
    spread: float | None  # the largest class's noise (the point rule's margin)
    point_gain: float  # the mean of the runs' gains (the point rule's)


@dataclass(frozen=True)
class Look:
    outcome: Outcome
    required: float  # the gain it had to beat at this look
    by: str = ""  # the tie-breaker that decided it; "" for the metric itself


@dataclass(frozen=True)
class Level:
    """One metric's look at a candidate, in the order the config ranks them."""

    name: str
    evidence: Evidence | None  # None: the candidate or its parent did not record this metric
    seen: Look
    worse: bool  # worse by more than its margin: no tie, the levels below do not count


def combine(classes: list[ClassEvidence]) -> Evidence:
    """One estimate over the classes it ran on: the gains weighted by their precision."""
    assert classes, "a candidate is judged on at least one run"
    runs, reference = sum(c.runs for c in classes), classes[0].reference
    point = math.fsum(g for c in classes for g in c.gains) / sum(len(c.gains) for c in classes)
    spread = max((c.noise.spread for c in classes if c.noise.spread is not None), default=None)
    plain = math.fsum(c.gain for c in classes) / len(classes)
    variances = [None if c.noise.spread is None else c.noise.spread ** 2 * (1 / c.runs + 1 / c.reference_runs)
                 for c in classes]
    if any(v is None for v in variances):
        return Evidence(plain, None, 0, runs, reference, spread, point)
    known = [v for v in variances if v is not None]
    df = min(c.noise.df for c in classes)
    if min(known) == 0:  # a class that never varies: a deterministic target
        return Evidence(plain, 0.0, df, runs, reference, spread, point)
    weights = [1 / v for v in known]
    gain = math.fsum(w * c.gain for w, c in zip(weights, classes, strict=True)) / math.fsum(weights)
    return Evidence(gain, math.sqrt(1 / math.fsum(weights)), df, runs, reference, spread, point)


def look(evidence: Evidence, acceptance: AcceptanceSpec, runs_so_far: int) -> Look:
    """What this look at a candidate says (see the module's docstring)."""
    if acceptance.noise_k is not None:
        required = margin(acceptance.min_delta, acceptance.noise_k, evidence.spread)
        return Look("clear" if evidence.point_gain > required else "lost", required)
    alpha, floor = acceptance.false_accept, acceptance.min_delta
    if alpha >= 0.5:  # the point estimate alone: autoresearch's keep-if-lower
        return Look("clear" if evidence.gain > floor else "lost", floor)
    if evidence.se is None or evidence.df == 0:
        out_of_runs = runs_so_far >= acceptance.max_runs
        return Look("lost" if out_of_runs or evidence.gain <= floor else "undecided", math.inf)
    # Each look may accept: the level is split over the looks a candidate can have, so that
    # false_accept is the chance over all of them (Bonferroni).
    # (-ppf(a) rather than ppf(1 - a): 1 - a rounds to 1 for a tiny level)
    required = floor - t_quantile(alpha / acceptance.max_runs, evidence.df) * evidence.se
    if evidence.gain > required:
        return Look("clear", required)
    if evidence.gain + KILL_BELOW_SE * evidence.se <= floor or runs_so_far >= acceptance.max_runs:
        return Look("lost", required)
    return Look("undecided", required)


def is_worse(evidence: Evidence, acceptance: AcceptanceSpec) -> bool:
    """Worse by more than its margin, so not a tie: its mean is below the parent's by more
    than min_delta. The point estimate, not a confidence bound: with two baselines' degrees of
    freedom a bound would call a large loss a tie, and a tie-breaker would then trade the
    metric, which comes first, for time or tokens."""
    gain = evidence.point_gain if acceptance.noise_k is not None else evidence.gain
    return gain < -acceptance.min_delta


def in_order(levels: list[Level]) -> Look:
    """The lexicographic look: the first level that clears wins, unless a level above it is
    worse; a tie at every level is lost, or undecided while a level may still clear with
    another run. The gain it had to beat is the metric's."""
    assert levels, "a candidate is judged on its metric at least"
    undecided = False
    for level in levels:
        if level.seen.outcome == "clear":
            return Look("clear", levels[0].seen.required, "" if level is levels[0] else level.name)
        if level.worse:
            break
        undecided = undecided or level.seen.outcome == "undecided"
    return Look("undecided" if undecided else "lost", levels[0].seen.required)
