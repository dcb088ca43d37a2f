"""The headline figures of a run, as a plain dict (shown live by the driver and by `swarm status`)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from coordinator.figures import estimate_of, gain_between, gpu_hours, worker_figures
from coordinator.results import result_status
from coordinator.state import SwarmState
from swarm.core.config import SwarmConfig
from swarm.core.errors import RunDirError
from swarm.core.ledger import read_events
from swarm.core.stats import mean, pooled_spread
from swarm.core.values import EVALUATED_STATUSES

__all__ = ["summarize", "load_status", "replay_run"]


def summarize(state: SwarmState, config: SwarmConfig, live: dict[str, dict[str, Any]],
              session_start: float, stop_reason: str | None, now: float | None = None,
              idle: str = "proposing") -> dict[str, Any]:
    """`now`: the time rates are taken at (a finished run's last event); `idle`: what a worker
    with no trial in flight is said to be doing."""
    finished = [t for t in state.trials.values() if t.status is not None]
    session_done = [t for t in finished if t.session == (state.sessions or [""])[-1]
                    and t.status in EVALUATED_STATUSES]
    hours = max((now or time.time()) - session_start, 1e-9) / 3600
    gpus = config.workers.gpus_per_worker
    return {
        "name": config.name,
        "metric": config.target.metric.name,
        "direction": config.target.metric.direction,
        "best": _estimate(state, state.best),
        "baseline": _estimate(state, state.initial),
        # better than the baseline in the run's direction, class by class as the report says it
        "gain": (gain_between(state, state.initial, state.best, config.target.metric.direction)
                 if state.initial and state.best else None),
        "accepted": len(state.history) - 1,
        "noise": pooled_spread(state.sample_groups(trusted_only=True)),
        "trials_done": len(finished),
        "trials_running": len(state.inflight),
        "evaluations": state.evaluations,
        "by_status": dict(Counter(result_status(t) for t in finished)),
        "proposal_failures": state.proposal_failures,
        "last_proposal_failure": state.last_proposal_failure,
        "trials_per_hour": len(session_done) / hours,
        "workers": _workers(state, live, finished, idle),
        "gpus_per_worker": gpus,
        "gpu_hours": gpu_hours(finished, gpus, state.session_gpus),
        "worker_hours": gpu_hours(finished, 1.0),
        "cost_usd": state.cost_usd,
        "tokens": sum(t.tokens_in + t.tokens_out for t in state.trials.values()),
        "stop_reason": stop_reason,
    }


def _estimate(state: SwarmState, best: Any) -> dict[str, Any] | None:
    if best is None:
        return None
    # Every trusted class's runs together: a headline figure, not what verdicts compare
    figure = estimate_of(state, best)
    by_class = state.trusted_samples(best.tree)
    return {"commit": best.commit, "trial": best.trial, "hypothesis": best.hypothesis,
            "mean": figure.mean, "spread": figure.spread, "runs": figure.runs,
            "by_class": {cls: mean(r) for cls, r in by_class.items() if r}}


def _workers(state: SwarmState, live: dict[str, dict[str, Any]],
             finished: list[Any], idle: str) -> dict[str, dict[str, Any]]:
    running = {worker: trial for trial, worker in state.inflight.items()}
    rates = {w.worker: w for w in worker_figures(finished)}
    workers = {}
    for worker, where in sorted(live.items()):
        trial_id = running.get(worker)
        doing = idle
        if trial_id:
            trial = state.trials[trial_id]
            doing = f"{trial.kind} {trial_id}: {trial.hypothesis}"[:80]
        done = rates.get(worker)
        workers[worker] = {**where, "doing": doing, "trials": done.trials if done else 0,
                           "per_hour": done.per_hour if done else 0.0}
    return workers


def replay_run(run_dir: Path) -> tuple[list[dict[str, Any]], SwarmState]:
    """A run directory's ledger and the state it replays to (what `status` and `report` read)."""
    events = list(read_events(run_dir / "ledger.jsonl"))
    if not events:
        raise RunDirError(f"{run_dir}: no ledger.jsonl here; is it a run directory (runs/<name>)?")
    state = SwarmState()
    for event in events:
        state.apply(event)
    return events, state


def load_status(run_dir: Path) -> dict[str, Any]:
    """The same figures read from a run directory's ledger, with no Ray (live or finished runs)."""
    events, state = replay_run(run_dir)
    config = SwarmConfig.model_validate(state.run_info["config"])
    session_start = next(e["ts"] for e in reversed(events) if e["event"] == "session_started")
    # The ledger knows who ran trials, not who is proposing: every worker of the latest session
    session = state.sessions[-1] if state.sessions else ""
    active = {t.worker: {"node": t.node} for t in state.trials.values() if t.session == session}
    # a run that is over: its rate is over its own time, not up to today
    ended = events[-1]["ts"] if not state.inflight else None
    return summarize(state, config, active, session_start, None, now=ended,
                     idle="between trials" if state.inflight else "stopped")
