"""The headline figures of a run, as a plain dict (shown live by the driver and by `swarm status`)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from coordinator.results import result_status
from coordinator.state import SwarmState
from swarm.config import SwarmConfig
from swarm.errors import RunDirError
from swarm.ledger import read_events
from swarm.policy import mean, pooled_spread
from swarm.types import EVALUATED_STATUSES

__all__ = ["summarize", "load_status"]


def summarize(state: SwarmState, config: SwarmConfig, live: dict[str, dict[str, Any]],
              session_start: float, stop_reason: str | None) -> dict[str, Any]:
    finished = [t for t in state.trials.values() if t.status is not None]
    session_done = [t for t in finished if t.session == (state.sessions or [""])[-1]
                    and t.status in EVALUATED_STATUSES]
    hours = max(time.time() - session_start, 1e-9) / 3600
    return {
        "name": config.name,
        "metric": config.target.metric.name,
        "direction": config.target.metric.direction,
        "best": _estimate(state, state.best),
        "baseline": _estimate(state, state.initial),
        "accepted": len(state.history) - 1,
        "noise": pooled_spread(state.sample_groups(trusted_only=True)),
        "trials_done": len(finished),
        "trials_running": len(state.inflight),
        "evaluations": state.evaluations,
        "by_status": dict(Counter(result_status(t) for t in finished)),
        "proposal_failures": state.proposal_failures,
        "last_proposal_failure": state.last_proposal_failure,
        "trials_per_hour": len(session_done) / hours,
        "workers": _workers(state, live),
        "cost_usd": state.cost_usd,
        "stop_reason": stop_reason,
    }


def _estimate(state: SwarmState, best: Any) -> dict[str, Any] | None:
    if best is None:
        return None
    # Every trusted class's runs together: a headline figure, not what verdicts compare
    by_class = state.trusted_samples(best.tree)
    runs = [m for class_runs in by_class.values() for m in class_runs]
    return {"commit": best.commit, "trial": best.trial, "hypothesis": best.hypothesis,
            "mean": mean(runs) if runs else None, "runs": len(runs),
            "by_class": {cls: mean(r) for cls, r in by_class.items() if r}}


def _workers(state: SwarmState, live: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    running = {worker: trial for trial, worker in state.inflight.items()}
    workers = {}
    for worker, where in sorted(live.items()):
        trial_id = running.get(worker)
        doing = "proposing"
        if trial_id:
            trial = state.trials[trial_id]
            doing = f"{trial.kind} {trial_id}: {trial.hypothesis}"[:80]
        workers[worker] = {**where, "doing": doing}
    return workers


def load_status(run_dir: Path) -> dict[str, Any]:
    """The same figures read from a run directory's ledger, with no Ray (live or finished runs)."""
    state = SwarmState()
    events = list(read_events(run_dir / "ledger.jsonl"))
    if not events:
        raise RunDirError(f"{run_dir}: no ledger.jsonl here; is it a run directory (runs/<name>)?")
    for event in events:
        state.apply(event)
    config = SwarmConfig.model_validate(state.run_info["config"])
    session_start = next(e["ts"] for e in reversed(events) if e["event"] == "session_started")
    active = {worker: {} for worker in sorted(set(state.inflight.values()))}
    return summarize(state, config, active, session_start, None)
