"""The headline figures of a run, shown live by the driver and by `swarm status`. No Ray, no git.

The coordinator builds a `RunStatus` from its state; `load_status` builds the same from a run
directory's ledger alone (a live run, a finished one, or a copy).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from coordinator.budget import Budget, budget_of
from coordinator.figures import estimate_of, gain_between, gpu_hours, worker_figures
from coordinator.liveness import RUNNING, DriverState, driver_state, read_heartbeat
from coordinator.results import result_status
from coordinator.state import BestRecord, FailureNote, SwarmState, TrialRecord
from swarm.core.config import SwarmConfig
from swarm.core.errors import RunDirError
from swarm.core.events import EventError, LedgerEvent
from swarm.core.ledger import bad_line, numbered_events
from swarm.core.stats import Direction, mean, pooled_spread
from swarm.core.values import EVALUATED_STATUSES, FAILED_STATUSES, Placement, WorkerSite

__all__ = ["Headline", "WorkerRow", "Latency", "LatestFailure", "RunStatus", "latest_failure",
           "summarize", "load_status", "replay_run", "replay_ledger", "latency_of"]


@dataclass(frozen=True)
class Headline:
    """A commit's figure: every trusted class's runs together (what verdicts compare is class
    by class; this is for people)."""

    commit: str
    trial: str | None
    hypothesis: str
    mean: float | None
    spread: float | None
    runs: int
    by_class: dict[str, float] = field(default_factory=dict)
    # the mean of each other metric the config names (tie-breakers, the held-out one) on those runs
    others: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerRow:
    worker: str
    doing: str
    trials: int
    per_hour: float
    host: str = ""
    node: str = ""
    gpus: str = ""
    hardware: str = ""
    pid: int = 0
    root: str = ""  # its clone's directory on its node
    volunteer: bool = False


@dataclass(frozen=True)
class Latency:
    """How long the coordinator took to handle each result, in milliseconds."""

    median_ms: float
    p90_ms: float
    count: int


@dataclass(frozen=True)
class LatestFailure:
    """The newest trial that ran and broke, or was refused: what a broken target shows first."""

    trial: str
    kind: str
    status: str
    reason: str
    ts: float


@dataclass(frozen=True)
class RunStatus:
    name: str
    metric: str
    direction: Direction
    best: Headline | None
    baseline: Headline | None
    gain: float | None  # better than the baseline in the run's direction, class by class
    accepted: int
    noise: float | None
    trials_done: int
    trials_running: int
    evaluations: int
    by_status: dict[str, int]
    proposal_failures: int
    last_proposal_failure: FailureNote | None
    trials_per_hour: float  # this session's
    workers: dict[str, WorkerRow]
    gpus_per_worker: float
    gpu_hours: float
    worker_hours: float
    cost_usd: float
    tokens: int
    stop_reason: str | None
    report_latency: Latency | None = None
    latest_failure: LatestFailure | None = None
    stop_failed: bool = False  # the stop says the target or proposer is broken: exit 2
    driver: DriverState = RUNNING  # a driver gone or ended runs no trials
    trials_unfinished: int = 0  # in flight when the driver went: lost once the run is resumed
    budget: Budget | None = None  # elapsed time, each limit's share used, and the ETA


def summarize(state: SwarmState, config: SwarmConfig,
              live: dict[str, tuple[WorkerSite, Placement]], session_start: float,
              stop_reason: str | None, now: float | None = None,
              idle: str = "proposing", driver: DriverState = RUNNING) -> RunStatus:
    """`now`: the time rates are taken at (a finished run's last event); `idle`: what a worker
    with no trial in flight is said to be doing; `driver`: a driver gone or ended runs no
    trials, whatever the ledger has in flight."""
    running = {} if driver.phase in ("gone", "ended") else state.inflight
    finished = [t for t in state.trials.values() if t.status is not None]
    session_done = [t for t in finished if t.session == (state.sessions or [""])[-1]
                    and t.status in EVALUATED_STATUSES]
    hours = max((now or time.time()) - session_start, 1e-9) / 3600
    direction = config.target.metric.direction
    return RunStatus(
        name=config.name, metric=config.target.metric.name, direction=direction,
        best=_headline(state, state.best, config.target.other_metrics()),
        baseline=_headline(state, state.initial, config.target.other_metrics()),
        gain=(gain_between(state, state.initial, state.best, direction)
              if state.initial and state.best else None),
        accepted=len(state.history) - 1,
        noise=pooled_spread(state.sample_groups(trusted_only=True)),
        trials_done=len(finished), trials_running=len(running),
        trials_unfinished=len(state.inflight) - len(running), driver=driver,
        evaluations=state.evaluations,
        by_status=dict(Counter(result_status(t) for t in finished)),
        proposal_failures=state.proposal_failures,
        last_proposal_failure=state.last_proposal_failure,
        trials_per_hour=len(session_done) / hours,
        workers=_workers(state, live, running, finished, idle),
        gpus_per_worker=config.workers.gpus_per_worker,
        gpu_hours=gpu_hours(finished, config.workers.gpus_per_worker, state.session_gpus),
        worker_hours=gpu_hours(finished, 1.0),
        cost_usd=state.cost.usd, tokens=sum(t.cost.tokens for t in state.trials.values()),
        stop_reason=stop_reason, latest_failure=latest_failure(state),
        budget=budget_of(state, config.stop, session_start, now or time.time()))


_FAILURES = FAILED_STATUSES | {"out_of_scope"}


def latest_failure(state: SwarmState) -> LatestFailure | None:
    """The newest finished trial that failed (crash, timeout, no_metric, guard_failed) or was out
    of scope; lost and duplicate trials say nothing about the target."""
    for trial_id in reversed(state.finish_order):
        trial = state.trials[trial_id]
        if trial.status in _FAILURES:
            return LatestFailure(trial.id, trial.kind, trial.status, trial.reason, trial.finished)
    return None


def _headline(state: SwarmState, best: BestRecord | None, others: tuple[str, ...] = ()) -> Headline | None:
    if best is None:
        return None
    figure = estimate_of(state, best)
    by_class = state.trusted_samples(best.tree)
    runs = [t for cls, ids in state.sample_runs.get(best.tree, {}).items() if cls in by_class for t in ids]
    means = {name: mean(values) for name in others if (values := state.values_of(name, runs))}
    return Headline(best.commit, best.trial, best.hypothesis, figure.mean, figure.spread,
                    figure.runs, {cls: mean(r) for cls, r in by_class.items() if r}, means)


def _workers(state: SwarmState, live: dict[str, tuple[WorkerSite, Placement]],
             inflight: dict[str, str], finished: list[TrialRecord], idle: str) -> dict[str, WorkerRow]:
    running = {worker: trial for trial, worker in inflight.items()}
    rates = {w.worker: w for w in worker_figures(finished)}
    rows = {}
    for worker, (site, placed) in sorted(live.items()):
        trial_id = running.get(worker)
        doing = idle
        if trial_id:
            trial = state.trials[trial_id]
            doing = f"{trial.kind} {trial_id}: {trial.hypothesis}"[:80]
        done = rates.get(worker)
        rows[worker] = WorkerRow(worker, doing, done.trials if done else 0,
                                 done.per_hour if done else 0.0, host=site.host,
                                 node=placed.node or site.node, gpus=site.gpus,
                                 hardware=placed.hardware or site.hardware, pid=site.pid,
                                 root=site.root, volunteer=placed.volunteer)
    return rows


def latency_of(seconds: list[float]) -> Latency | None:
    if not seconds:
        return None
    ordered = sorted(seconds)
    return Latency(1000 * ordered[len(ordered) // 2], 1000 * ordered[int(len(ordered) * 0.9)],
                   len(ordered))


def replay_run(run_dir: Path) -> tuple[list[LedgerEvent], SwarmState]:
    """A run directory's ledger and the state it replays to (what `status` and `report` read)."""
    events, state = replay_ledger(run_dir / "ledger.jsonl")
    if not events:
        raise RunDirError(f"{run_dir}: no ledger.jsonl here; is it a run directory (runs/<name>)?")
    return events, state


def replay_ledger(path: Path) -> tuple[list[LedgerEvent], SwarmState]:
    """A ledger's events and the state they replay to. A line that is not an event, or an event
    that cannot follow those before it, is one error naming the file and the line."""
    events, state = [], SwarmState()
    for number, event in numbered_events(path):
        try:
            state.apply(event)
        except EventError as exc:
            raise bad_line(path, number, str(exc)) from None
        events.append(event)
    return events, state


def load_status(run_dir: Path) -> RunStatus:
    """The same figures read from a run directory's ledger, with no Ray (live or finished runs)."""
    _events, state = replay_run(run_dir)
    config = recorded_config(run_dir, state)
    session = state.sessions[-1] if state.sessions else ""
    now = time.time()
    driver = driver_state(state, read_heartbeat(run_dir), now)
    # The ledger knows who ran trials, not who is proposing: every worker of the latest session
    active = {t.worker: (WorkerSite(), Placement(node=t.node))
              for t in state.trials.values() if t.session == session}
    if driver.phase in ("gone", "ended"):  # its rate is over its own time, not up to today
        at, idle = driver.since, "gone with the driver" if driver.phase == "gone" else "stopped"
    else:  # a run of an older swarm keeps no heartbeat: what the ledger alone says
        at = state.last_event_ts if not state.inflight else None
        idle = "between trials" if state.inflight else "stopped"
    return summarize(state, config, active, state.session_starts.get(session, 0.0), None,
                     now=at, idle=idle, driver=driver)


def recorded_config(run_dir: Path, state: SwarmState) -> SwarmConfig:
    """The config the run was started with, as its first event recorded it."""
    assert state.run_info is not None, "replay_ledger refuses a ledger that does not start the run"
    try:
        return SwarmConfig.model_validate(state.run_info.config)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "the config"
        raise RunDirError(f"{run_dir / 'ledger.jsonl'}: the config its run_started event records "
                          f"is not one this swarm reads ({where}: {error['msg']}); read it with "
                          "the swarm version that wrote it") from None
