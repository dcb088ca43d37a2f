"""`swarm status --json`: a run's status as one JSON object, for scripts. Pure.

The keys are spelled out here, not derived from `RunStatus`'s fields, so that renaming or
adding a field inside the swarm does not change what scripts read; README.md's status
section documents them. `schema` grows by one when a key changes meaning or goes away (new
keys may be added within a version). Figures are the display's, unrounded.
"""

from __future__ import annotations

import json
import math
from typing import Any

from coordinator.status import Headline, RunStatus, WorkerRow

__all__ = ["SCHEMA", "status_object", "status_json"]

SCHEMA = 1


def status_json(status: RunStatus) -> str:
    return json.dumps(_finite(status_object(status)), allow_nan=False)


def _finite(value: Any) -> Any:
    # NaN and Infinity are not JSON (many parsers refuse them): a figure that is not a number
    # is null, as one not known yet is
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def status_object(status: RunStatus) -> dict[str, Any]:
    driver = status.driver
    latest = status.latest_failure
    last_proposal = status.last_proposal_failure
    return {
        "schema": SCHEMA,
        "run": status.name,
        "metric": status.metric,
        "direction": status.direction,
        "driver": {"state": driver.phase, "since": driver.since, "reason": driver.reason},
        "best": _headline(status.best),
        "baseline": _headline(status.baseline),
        "gain": status.gain,
        "accepted": status.accepted,
        "noise": status.noise,
        "trials": {
            "done": status.trials_done,
            "running": status.trials_running,
            "unfinished": status.trials_unfinished,
            "evaluations": status.evaluations,
            "per_hour": status.trials_per_hour,
            "by_status": dict(sorted(status.by_status.items())),
        },
        "latest_failure": None if latest is None else {
            "trial": latest.trial, "kind": latest.kind, "status": latest.status,
            "reason": latest.reason, "ts": latest.ts},
        "proposals": {
            "failed": status.proposal_failures,
            "latest_failure": None if last_proposal is None else {
                "worker": last_proposal.worker, "reason": last_proposal.reason, "ts": last_proposal.ts},
        },
        "workers": [_worker(row) for row in status.workers.values()],
        "gpus_per_worker": status.gpus_per_worker,
        "gpu_hours": status.gpu_hours,
        "worker_hours": status.worker_hours,
        "cost_usd": status.cost_usd,
        "tokens": status.tokens,
        "stop_reason": status.stop_reason,
    }


def _headline(figure: Headline | None) -> dict[str, Any] | None:
    if figure is None:
        return None
    return {"commit": figure.commit, "trial": figure.trial, "hypothesis": figure.hypothesis,
            "mean": figure.mean, "spread": figure.spread, "runs": figure.runs,
            "by_class": dict(sorted(figure.by_class.items())), "others": dict(figure.others)}


def _worker(row: WorkerRow) -> dict[str, Any]:
    return {"worker": row.worker, "doing": row.doing, "trials": row.trials,
            "per_hour": row.per_hour, "host": row.host, "node": row.node, "gpus": row.gpus,
            "hardware": row.hardware, "volunteer": row.volunteer}
