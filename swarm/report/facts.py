"""What a run amounts to, computed from its replayed ledger. Pure: no git, no plotting, no I/O.

`swarm status` shows the headline of a live run and `swarm report` writes all of it; both read
the same numbers from here, so the two never disagree.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from coordinator.results import result_status
from coordinator.state import BestRecord, SwarmState, TrialRecord
from swarm.policy import Direction, improvement, mean, pooled_spread
from swarm.types import EVALUATED_STATUSES

__all__ = ["Estimate", "WorkerFigures", "Change", "RunFacts", "run_facts", "estimate_of",
           "gain_between", "session_spans", "gpu_hours", "worker_figures", "shorten"]


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

    @property
    def clock(self) -> tuple[float, str]:
        """Seconds per unit of the charts' time axis, and its label: minutes for short runs."""
        if self.ended - self.started < 3 * 3600:
            return 60.0, "minutes since the run started"
        return 3600.0, "hours since the run started"

    def since_start(self, ts: float) -> float:
        return max(ts - self.started, 0.0) / self.clock[0]



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


def session_spans(events: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(start, last event) of every session: the time the swarm was actually running."""
    spans: list[list[float]] = []
    for event in events:
        if event["event"] == "session_started":
            spans.append([event["ts"], event["ts"]])
        elif spans:
            spans[-1][1] = event["ts"]
    if not spans and events:
        spans = [[events[0]["ts"], events[-1]["ts"]]]
    return [(start, end) for start, end in spans]


def gpu_hours(trials: list[TrialRecord], gpus_per_worker: float,
              by_session: dict[str, float] | None = None) -> float:
    """GPU time spent in experiments: each evaluated trial's seconds times its worker's GPUs,
    as its session configured them (a resumed run may change them)."""
    by_session = by_session or {}
    return sum(t.seconds * by_session.get(t.session, gpus_per_worker)
               for t in trials if t.status in EVALUATED_STATUSES) / 3600


def run_facts(state: SwarmState, events: list[dict[str, Any]]) -> RunFacts:
    config = state.run_info.get("config", {})
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
        cost_usd=state.cost_usd, tokens_in=sum(t.tokens_in for t in state.trials.values()),
        tokens_out=sum(t.tokens_out for t in state.trials.values()),
        proposal_failures=state.proposal_failures, changes=changes,
        running_best=running_best(state, changes, spans[0][0] if spans else 0.0), total_gain=total)


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


def accepted_changes(state: SwarmState, direction: Direction) -> list[Change]:
    changes = []
    history = state.history
    for number, (before, after) in enumerate(zip(history, history[1:]), start=1):
        trial = state.trials[after.trial] if after.trial else None
        old, new = estimate_of(state, before), estimate_of(state, after)
        gain = gain_between(state, before, after, direction)
        if gain is None:
            gain = math.nan
        changes.append(Change(number, after.trial or "", after.commit, before.commit,
                              after.hypothesis, old, new, gain,
                              trial.of if trial and trial.kind == "candidate" else None,
                              trial.decided if trial else 0.0))
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
