"""What the dashboard shows, from a replayed run: typed view values, turned into JSON only at
the edge (`*_json`). Pure: no I/O, no git, no clock (the caller gives `now` and the heartbeat).

The page gets one snapshot, then deltas: the trials an update touched, and the panels whose
figures every update may move (headline, pool, workers), which are small.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from coordinator.liveness import Beat, driver_state
from coordinator.results import result_status
from coordinator.state import SwarmState, TrialRecord
from coordinator.status import RunStatus, summarize
from swarm.core.config import SwarmConfig
from swarm.core.events import LedgerEvent
from swarm.core.values import FAILED_STATUSES, Placement, WorkerSite
from swarm.shell.pace import pace_rows
from swarm.shell.progress import describe_driver, format_metric
from swarm.shell.report.facts import accepted_changes, run_facts, running_best
from swarm.shell.report.lessons import lessons, tally_kinds

__all__ = ["PointView", "HeadlineView", "ChangeView", "WinnerView", "WorkerView", "PoolView",
           "Panels", "status_from_state", "point_of", "headline_of", "pool_of", "workers_of",
           "lessons_of", "panels_of", "points_json", "panels_json", "POINT_COLUMNS", "HYPOTHESIS_CHARS"]

HYPOTHESIS_CHARS = 300  # a point's hypothesis as the chart's tooltip shows it; the panel has it whole
POINT_COLUMNS = ("id", "n", "t", "metric", "status", "kind", "worker", "hypothesis", "gain")


@dataclass(frozen=True)
class PointView:
    """One trial on the progress chart."""

    id: str
    n: int  # its number: trial ids count trials started
    t: float  # seconds from the run's start to its finish (to its start while in flight)
    metric: float | None
    status: str  # results.tsv's status (keep, discard, crash, ...), or "running"
    kind: str
    worker: str
    hypothesis: str
    gain: float | None


@dataclass(frozen=True)
class HeadlineView:
    rows: list[tuple[str, str]]  # (label, text), as `swarm status` words them
    best: float | None
    baseline: float | None
    trials_done: int
    trials_running: int
    per_hour: float
    stop_rule: str  # the first limit and how far it is, or what ends the run
    share: float | None  # of the limit nearest to being reached, 0..1


@dataclass(frozen=True)
class ChangeView:
    number: int
    trial: str
    commit: str
    hypothesis: str
    gain: str
    after: str
    parts: list[str]  # a union: the trials whose changes it combined
    rebased_from: str | None


@dataclass(frozen=True)
class WinnerView:
    """A winner that did not become best as it was: rebased onto a newer best, or conflicting."""

    trial: str
    status: str
    hypothesis: str
    gain: str


@dataclass(frozen=True)
class PoolView:
    best_commit: str
    best_trial: str | None
    changes: list[ChangeView]
    stale: list[WinnerView]
    conflicts: list[WinnerView]
    best_line: list[tuple[int, float, float]]  # (trial number, seconds since start, best mean from then)


@dataclass(frozen=True)
class WorkerView:
    worker: str
    where: str
    doing: str
    trials: int
    per_hour: float
    latest_failure: str


@dataclass(frozen=True)
class Panels:
    headline: HeadlineView
    pool: PoolView
    workers: list[WorkerView] = field(default_factory=list)


def status_from_state(state: SwarmState, config: SwarmConfig, beat: Beat | None, now: float) -> RunStatus:
    """What `load_status` makes of a run directory, from a state already replayed."""
    session = state.sessions[-1] if state.sessions else ""
    driver = driver_state(state, beat, now)
    nodes = {t.worker: t.node for t in state.trials.values() if t.session == session}
    active = {worker: (WorkerSite(), Placement(node=node)) for worker, node in nodes.items()}
    if driver.phase in ("gone", "ended"):
        at, idle = driver.since, "gone with the driver" if driver.phase == "gone" else "stopped"
    else:
        at = state.last_event_ts if not state.inflight else now
        idle = "between trials" if state.inflight else "stopped"
    return summarize(state, config, active, state.session_starts.get(session, 0.0), None,
                     now=at, idle=idle, driver=driver)


def start_of(events: list[LedgerEvent]) -> float:
    return events[0].ts if events else 0.0


def point_of(trial: TrialRecord, start: float) -> PointView:
    done = trial.status is not None
    at = trial.finished if done else trial.started
    return PointView(trial.id, _number(trial.id), round(max(at - start, 0.0), 3),
                     trial.metric if trial.metric is not None and math.isfinite(trial.metric) else None,
                     result_status(trial) if done else "running", trial.kind, trial.worker,
                     trial.hypothesis[:HYPOTHESIS_CHARS], trial.gain)


def _number(trial_id: str) -> int:
    return int(trial_id) if trial_id.isdigit() else 0


def headline_of(status: RunStatus, config: SwarmConfig, now: float) -> HeadlineView:
    best, baseline = status.best, status.baseline
    rows: list[tuple[str, str]] = [("run", f"{status.name} ({status.metric}, {status.direction})")]
    if driver := describe_driver(status, now):
        rows.append(("driver", driver))
    if best is not None:
        gain = ""
        if status.gain is not None and baseline is not None and baseline.mean is not None:
            was = _estimate(baseline.mean, baseline.spread, baseline.runs)
            gain = f" ({format_metric(status.gain, signed=True)} better than the baseline {was})"
        rows.append(("best", _estimate(best.mean, best.spread, best.runs) + gain))
        origin = f"trial {best.trial}: {best.hypothesis}" if best.trial else "the target as given"
        rows.append(("from", f"{origin} [{best.commit[:7]}], {status.accepted} accepted so far"))
    rows.append(("trials", f"{status.trials_done} done, {status.trials_running} running, "
                           f"{status.trials_per_hour:.0f}/hour this session"))
    rows.extend(pace_rows(status, now))
    if status.gpus_per_worker:
        rows.append(("GPU-hours", f"{status.gpu_hours:.2f} ({status.gpus_per_worker:g} GPU per worker)"))
    else:
        rows.append(("GPU-hours", f"0 (CPU workers: {status.worker_hours:.2f} worker-hours)"))
    rows.append(("cost", f"${status.cost_usd:.4f} for proposals ({status.tokens} tokens)"))
    if status.latest_failure:
        failure = status.latest_failure
        rows.append(("latest failure", f"{failure.status} in {failure.kind} {failure.trial}: {failure.reason[:200]}"))
    if status.stop_reason:
        rows.append(("stopping", status.stop_reason))
    stop_rule, share = _stop_rule(status, config)
    return HeadlineView(rows, best.mean if best else None, baseline.mean if baseline else None,
                        status.trials_done, status.trials_running, status.trials_per_hour, stop_rule, share)


def _estimate(mean: float | None, spread: float | None, runs: int) -> str:
    plus = f" ± {format_metric(spread)}" if spread is not None else ""
    return f"{format_metric(mean)}{plus} over {runs} runs"


def _stop_rule(status: RunStatus, config: SwarmConfig) -> tuple[str, float | None]:
    parts, share = [], None
    budget = status.budget
    if budget is not None and budget.limits:
        first = budget.first or max(budget.limits, key=lambda limit: limit.share)
        share = first.share
        names = {"trials": "stop.max_trials", "hours": "stop.hours", "cost": "stop.max_cost_usd"}
        used = f"{first.used:.0f}" if first.name == "trials" else f"{first.used:.2f}"
        parts.append(f"{names[first.name]} {first.limit:g}: {used} used ({100 * first.share:.0f}%)")
    if (target := config.stop.target_metric) is not None:
        parts.append(f"stop.target_metric {target:g} (best {format_metric(status.best.mean if status.best else None)})")
    return "; ".join(parts) or "no limit set: it runs until stopped", share


def pool_of(state: SwarmState, config: SwarmConfig, start: float) -> PoolView:
    direction = config.target.metric.direction
    changes = accepted_changes(state, direction)
    views = [ChangeView(c.number, c.trial, c.commit[:7], c.hypothesis, format_metric(c.gain, signed=True),
                        c.after.text(), list(c.parts), c.rebased_from) for c in changes]
    stale: list[WinnerView] = []
    conflicts: list[WinnerView] = []
    for trial in state.trials.values():
        if trial.verdict in ("rebased", "stale_conflict"):
            view = WinnerView(trial.id, str(trial.verdict), trial.hypothesis, format_metric(trial.gain, signed=True))
            (stale if trial.verdict == "rebased" else conflicts).append(view)
    line = [(n, round(max(ts - start, 0.0), 3), value) for ts, n, value in running_best(state, changes, start)]
    best = state.best
    return PoolView(best.commit[:7] if best else "", best.trial if best else None, views, stale, conflicts, line)


_BROKE = FAILED_STATUSES | {"out_of_scope"}


def workers_of(state: SwarmState, status: RunStatus) -> list[WorkerView]:
    failures: dict[str, str] = {}
    wanted = set(status.workers)
    for trial_id in reversed(state.finish_order):
        if not wanted - failures.keys():
            break
        trial = state.trials[trial_id]
        if trial.worker in wanted and trial.worker not in failures and trial.status in _BROKE:
            failures[trial.worker] = f"{trial.status} in trial {trial.id}: {trial.reason[:160]}"
    views = []
    for name, row in status.workers.items():
        shown = {"host": row.host, "node": row.node, "gpus": row.gpus, "hardware": row.hardware,
                 "volunteer": "yes" if row.volunteer else ""}
        where = " ".join(f"{k}={v}" for k, v in shown.items() if v)
        views.append(WorkerView(name, where, row.doing, row.trials, round(row.per_hour, 2), failures.get(name, "")))
    return views


def lessons_of(state: SwarmState, events: list[LedgerEvent], diffs: dict[str, str]) -> list[str]:
    """The report's lessons, from the same facts; `diffs`: the candidates' diffs at hand."""
    if state.run_info is None:
        return []
    facts = run_facts(state, events)
    return lessons(facts, tally_kinds(facts.trials, diffs))


def panels_of(state: SwarmState, config: SwarmConfig, status: RunStatus, start: float, now: float) -> Panels:
    return Panels(headline_of(status, config, now), pool_of(state, config, start), workers_of(state, status))


# -- the JSON edge ----------------------------------------------------------------------------

def points_json(points: list[PointView]) -> list[list[Any]]:
    """Rows in POINT_COLUMNS' order: 10,000 trials stay a few hundred kB."""
    return [[p.id, p.n, p.t, _finite(p.metric), p.status, p.kind, p.worker, p.hypothesis, _finite(p.gain)]
            for p in points]


def panels_json(panels: Panels) -> dict[str, Any]:
    return {name: _clean(value) for name, value in asdict(panels).items()}


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value
