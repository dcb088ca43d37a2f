"""A report's account of a run, from its replayed ledger. Pure: no git, no plotting, no I/O.

The figures `swarm status` shows too come from `coordinator/figures.py`, so the two never disagree.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise

from coordinator.figures import Estimate, WorkerFigures, estimate_of, gain_between, gpu_hours, worker_figures
from coordinator.results import result_status
from coordinator.state import VOLUNTEER_CLASS, SwarmState, TrialRecord
from swarm.core.events import LedgerEvent, SessionStarted
from swarm.core.stats import Direction, pooled_spread
from swarm.core.values import EVALUATED_STATUSES

__all__ = ["Change", "RunFacts", "run_facts", "session_spans", "shorten", "time_unit"]


@dataclass(frozen=True)
class Change:
    """One accepted change, in the order best moved."""

    number: int
    trial: str
    commit: str  # the best commit it made
    parent: str  # the best before it
    hypothesis: str
    before: Estimate
    after: Estimate
    gain: float  # after vs before, positive = better in the run's direction
    rebased_from: str | None  # the stale winner it re-ran, if it was one
    parts: tuple[str, ...]  # a union: the trials whose changes it combined
    accepted_at: float


@dataclass
class RunFacts:
    name: str
    metric: str
    direction: Direction
    started: float
    ended: float
    hours: float  # summed over sessions: time the swarm was running
    sessions: int
    baseline: Estimate
    best: Estimate
    best_trial: str | None
    best_commit: str
    noise: float | None
    by_status: dict[str, int]
    trials: list[TrialRecord]  # finished ones, in start order
    evaluated: int
    per_hour: float
    workers: list[WorkerFigures]
    gpus_per_worker: float
    gpu_hours: float
    worker_hours: float  # evaluating, any hardware
    cost_usd: float
    tokens_in: int
    tokens_out: int
    proposal_failures: int
    changes: list[Change]
    running_best: list[tuple[float, int, float]]  # (time, trial number, best mean from then)
    total_gain: float | None  # best vs the target as given, positive = better
    tiebreaks: tuple[str, ...] = ()  # target.tiebreak's names, in order
    heldout: str | None = None  # metric.heldout: the same measure on cases no proposer saw
    baseline_metrics: dict[str, float] = field(default_factory=dict)  # every metric's mean on the target as given
    best_metrics: dict[str, float] = field(default_factory=dict)  # and on best

    @property
    def clock(self) -> tuple[float, str]:
        """Seconds per unit of the charts' time axis, and its label, in a unit that fits the run."""
        seconds, unit = time_unit(self.ended - self.started)
        return seconds, f"time since the run started ({unit})"

    def since_start(self, ts: float) -> float:
        return max(ts - self.started, 0.0) / self.clock[0]



def time_unit(span_s: float) -> tuple[float, str]:
    """The unit a span of time reads best in, and its seconds: up to 3 of one unit before the
    next (a 14 s run in seconds, 40 minutes in minutes, a day in hours)."""
    if span_s < 3 * 60:
        return 1.0, "s"
    if span_s < 3 * 3600:
        return 60.0, "min"
    return 3600.0, "h"


def session_spans(events: list[LedgerEvent]) -> list[tuple[float, float]]:
    """(start, last event) of every session: the time the swarm was actually running."""
    spans: list[list[float]] = []
    for event in events:
        if isinstance(event, SessionStarted):
            spans.append([event.ts, event.ts])
        elif spans:
            spans[-1][1] = event.ts
    if not spans and events:
        spans = [[events[0].ts, events[-1].ts]]
    return [(start, end) for start, end in spans]


def run_facts(state: SwarmState, events: list[LedgerEvent]) -> RunFacts:
    config = state.run_info.config if state.run_info else {}
    target = config.get("target", {})
    direction: Direction = target.get("metric", {}).get("direction", "minimize")
    finished = sorted((t for t in state.trials.values() if t.status is not None), key=lambda t: t.id)
    evaluated = [t for t in finished if t.status in EVALUATED_STATUSES]
    spans = session_spans(events)
    hours = sum(end - start for start, end in spans) / 3600
    gpus = float(config.get("workers", {}).get("gpus_per_worker", 0) or 0)
    changes = accepted_changes(state, direction)
    total = (gain_between(state, state.initial, state.best, direction)
             if state.initial and state.best else None)
    return RunFacts(
        name=config.get("name", "?"), metric=target.get("metric", {}).get("name", "metric"),
        direction=direction, started=spans[0][0] if spans else 0.0,
        ended=spans[-1][1] if spans else 0.0, hours=hours, sessions=len(spans),
        baseline=estimate_of(state, state.initial), best=estimate_of(state, state.best),
        best_trial=state.best.trial if state.best else None,
        best_commit=state.best.commit if state.best else "",
        noise=pooled_spread(state.sample_groups(trusted_only=True)),
        by_status=dict(Counter(result_status(t) for t in finished)),
        trials=finished, evaluated=len(evaluated),
        per_hour=len(evaluated) / hours if hours > 0 else 0.0,
        workers=worker_figures(finished),
        gpus_per_worker=gpus, gpu_hours=gpu_hours(finished, gpus, state.session_gpus),
        worker_hours=gpu_hours(finished, 1.0),
        cost_usd=state.cost.usd, tokens_in=sum(t.cost.tokens_in for t in state.trials.values()),
        tokens_out=sum(t.cost.tokens_out for t in state.trials.values()),
        proposal_failures=state.proposal_failures, changes=changes,
        running_best=running_best(state, changes, spans[0][0] if spans else 0.0), total_gain=total,
        tiebreaks=tuple(t.get("name", "") for t in target.get("tiebreak", [])),
        heldout=target.get("metric", {}).get("heldout"),
        baseline_metrics=metric_means(state, state.initial.commit) if state.initial else {},
        best_metrics=metric_means(state, state.best.commit) if state.best else {})


def metric_means(state: SwarmState, commit: str) -> dict[str, float]:
    """The mean of each metric over a best's trusted runs, all classes pooled: a rough account
    for people and the changelog; the decisions (class by class) are in the primary's gains."""
    tree = state.tree_of.get(commit, "")
    ids = [t for cls, runs in state.sample_runs.get(tree, {}).items()
           if not cls.startswith(VOLUNTEER_CLASS) for t in runs]
    values: dict[str, list[float]] = {}
    for trial in ids:
        for name, value in state.trials[trial].metrics.items():
            values.setdefault(name, []).append(float(value))
    return {name: statistics.fmean(v) for name, v in values.items() if v}


def accepted_changes(state: SwarmState, direction: Direction) -> list[Change]:
    changes = []
    history = state.history
    for number, (before, after) in enumerate(pairwise(history), start=1):
        trial = state.trials[after.trial] if after.trial else None
        old, new = estimate_of(state, before), estimate_of(state, after)
        gain = gain_between(state, before, after, direction)
        if gain is None:
            gain = math.nan
        changes.append(Change(number, after.trial or "", after.commit, before.commit,
                              after.hypothesis, old, new, gain,
                              trial.of if trial and trial.kind == "candidate" else None,
                              trial.parts if trial else (), trial.decided if trial else 0.0))
    return changes


def running_best(state: SwarmState, changes: list[Change], start: float) -> list[tuple[float, int, float]]:
    """The best's estimate as a step function of time and of trial number."""
    steps = []
    initial = estimate_of(state, state.initial)
    if initial.mean is not None:
        steps.append((start, 0, initial.mean))
    for change in changes:
        if change.after.mean is not None:
            # by trial number, best moves at the trial that made it (ids count trials started)
            steps.append((change.accepted_at, int(change.trial or 0), change.after.mean))
    return steps


def shorten(text: str, width: int) -> str:
    """A label that fits beside a point in a chart."""
    return text if len(text) <= width else text[: width - 1] + "…"
