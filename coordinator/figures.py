"""A run's figures from its replayed state: what `swarm status` shows live and `swarm report`
writes. Pure: no git, no plotting, no I/O. Both read the numbers here, so they never disagree."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from coordinator.state import BestRecord, SwarmState, TrialRecord
from swarm.core.stats import Direction, improvement, mean, pooled_spread
from swarm.core.values import EVALUATED_STATUSES

__all__ = ["Estimate", "WorkerFigures", "estimate_of", "gain_between", "gpu_hours", "worker_figures"]


@dataclass(frozen=True)
class Estimate:
    """A commit's metric: the mean of its trusted runs and their standard deviation."""

    mean: float | None
    spread: float | None  # sample std of the runs; None with fewer than two
    runs: int

    def text(self) -> str:
        if self.mean is None:
            return "not measured"
        spread = f" ± {self.spread:.6g}" if self.spread is not None else ""
        return f"{self.mean:.6g}{spread} ({self.runs} run{'s' if self.runs != 1 else ''})"


@dataclass(frozen=True)
class WorkerFigures:
    worker: str
    node: str
    trials: int  # evaluated: trials that ran an experiment
    ok: int
    failed: int  # crash, timeout, guard_failed, no_metric
    busy_s: float  # from each trial's start to its finish
    span_s: float  # from its first trial's start to its last trial's finish

    @property
    def per_hour(self) -> float:
        return self.trials * 3600 / self.span_s if self.span_s > 0 else 0.0


def estimate_of(state: SwarmState, best: BestRecord | None) -> Estimate:
    """Every trusted class's runs together for the mean (a headline figure); the spread is
    pooled within classes, since the gap between two kinds of GPU is not noise."""
    if best is None:
        return Estimate(None, None, 0)
    by_class = state.trusted_samples(best.tree)
    runs = [m for class_runs in by_class.values() for m in class_runs]
    if not runs:
        return Estimate(None, None, 0)
    return Estimate(mean(runs), pooled_spread(by_class.values()), len(runs))


def gain_between(state: SwarmState, before: BestRecord, after: BestRecord, direction: Direction) -> float | None:
    """How much better `after` measured than `before`, class by class as verdicts compare
    (the mean over the classes both ran on); all runs together where they share none."""
    old, new = state.trusted_samples(before.tree), state.trusted_samples(after.tree)
    shared = [cls for cls in new if old.get(cls) and new[cls]]
    if shared:
        return mean([improvement(mean(new[c]), mean(old[c]), direction) for c in shared])
    old_all, new_all = estimate_of(state, before), estimate_of(state, after)
    if old_all.mean is None or new_all.mean is None:
        return None
    return improvement(new_all.mean, old_all.mean, direction)


def gpu_hours(trials: list[TrialRecord], gpus_per_worker: float,
              by_session: dict[str, float] | None = None) -> float:
    """GPU time spent in experiments: each evaluated trial's seconds times its worker's GPUs,
    as its session configured them (a resumed run may change them)."""
    by_session = by_session or {}
    return sum(t.seconds * by_session.get(t.session, gpus_per_worker)
               for t in trials if t.status in EVALUATED_STATUSES) / 3600


def worker_figures(finished: list[TrialRecord]) -> list[WorkerFigures]:
    mine: dict[str, list[TrialRecord]] = defaultdict(list)
    for trial in finished:
        if trial.status in EVALUATED_STATUSES:
            mine[trial.worker].append(trial)
    figures = []
    for worker, trials in sorted(mine.items()):
        ok = sum(1 for t in trials if t.status == "ok")
        nodes = sorted({t.node for t in trials if t.node})
        figures.append(WorkerFigures(worker, ", ".join(nodes), len(trials), ok, len(trials) - ok,
                                     sum(t.finished - t.started for t in trials), _span(trials)))
    return figures


def _span(trials: list[TrialRecord]) -> float:
    """A worker's time from its first trial to its last, session by session: a resumed run
    reuses worker ids, and the days between sessions are not the worker's."""
    by_session: dict[str, list[TrialRecord]] = defaultdict(list)
    for trial in trials:
        by_session[trial.session].append(trial)
    return sum(max(t.finished for t in group) - min(t.started for t in group)
               for group in by_session.values())
