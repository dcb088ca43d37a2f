"""What a tracker (MLflow, W&B) is told of a run, made from the ledger's events. Pure: no I/O.

One step per evaluated trial (a trial that ran an experiment: ok or failed), numbered by its
place among them in ledger order (1, 2, ...): the same ledger always gives the same steps, so
a resumed run, or a tracker that was down, continues from the last step the tracker holds and
logs nothing twice. Each accepted change is a `TrackedChange` (its diff is an artifact).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from coordinator.figures import estimate_of
from coordinator.state import SwarmState
from swarm.core.events import Judged, LedgerEvent, RunStarted, TrialFinished
from swarm.core.values import EVALUATED_STATUSES

__all__ = ["TrackedStep", "TrackedChange", "StepMaker", "steps_of", "run_key", "flat_params",
           "PARAM_CHARS", "CURSOR_METRIC"]

PARAM_CHARS = 500  # MLflow's limit on a parameter's value (older servers; newer allow more)
CURSOR_METRIC = "ok"  # logged at every step, last: the highest step of it is the tracker's cursor


@dataclass(frozen=True)
class TrackedStep:
    step: int  # the evaluated trial's ordinal in ledger order, from 1
    trial: str
    kind: str
    status: str
    worker: str
    hardware: str
    metric: float | None  # the config's metric (None: the trial failed)
    metrics: dict[str, float]  # every numeric key of its result block
    seconds: float
    cost_usd: float  # what proposing it cost
    total_cost_usd: float  # every proposal's so far, failed ones included
    best_so_far: float | None  # the best metric any ok trial has shown so far (monotone)
    best_estimate: float | None  # the mean of best's trusted runs after it (what `swarm status` says)
    best_trial: str | None  # the trial that made best (None: the target as given)
    ts: float

    def numbers(self, metric_name: str) -> dict[str, float]:
        """The step's numeric values under their tracker names; the cursor metric last."""
        values: dict[str, float] = {}
        if self.metric is not None and math.isfinite(self.metric):
            values[metric_name] = self.metric
        values.update({f"result/{k}": float(v) for k, v in self.metrics.items() if math.isfinite(v)})
        if self.best_so_far is not None:
            values["best_so_far"] = self.best_so_far
        if self.best_estimate is not None and math.isfinite(self.best_estimate):
            values["best_estimate"] = self.best_estimate
        values.update(seconds=self.seconds, cost_usd=self.cost_usd, total_cost_usd=self.total_cost_usd)
        values[CURSOR_METRIC] = 1.0 if self.status == "ok" else 0.0
        return values

    def row(self) -> dict[str, Any]:
        """The step as one line of a table: its strings (which MLflow metrics cannot hold) too."""
        return {"step": self.step, "trial": self.trial, "kind": self.kind, "status": self.status,
                "worker": self.worker, "hardware": self.hardware, "metric": self.metric,
                "best_so_far": self.best_so_far, "best_trial": self.best_trial, "ts": self.ts}


@dataclass(frozen=True)
class TrackedChange:
    """An accepted change: best moved from `parent` to `commit` after `step` steps."""

    step: int
    trial: str
    parent: str
    commit: str
    hypothesis: str


@dataclass
class StepMaker:
    """Folds the ledger's events, in order, into steps and changes (replaying the state itself)."""

    state: SwarmState = field(default_factory=SwarmState)
    steps: int = 0
    first: RunStarted | None = None
    metric_name: str = "metric"
    minimize: bool = True
    _counted: set[str] = field(default_factory=set)
    _best_seen: float | None = None

    def feed(self, event: LedgerEvent) -> list[TrackedStep | TrackedChange]:
        before = self.state.best
        self.state.apply(event)
        if isinstance(event, RunStarted):
            self.first = event
            metric = event.config.get("target", {}).get("metric", {})
            self.metric_name = str(metric.get("name", "metric"))
            self.minimize = metric.get("direction", "minimize") != "maximize"
        elif isinstance(event, TrialFinished) and event.status in EVALUATED_STATUSES \
                and event.trial not in self._counted:
            return [self._step(event)]
        elif isinstance(event, Judged) and event.verdict == "accepted" and before is not None:
            trial = self.state.trials[event.trial]
            return [TrackedChange(self.steps, trial.id, before.commit, event.best_commit or "", trial.hypothesis)]
        return []

    def _step(self, event: TrialFinished) -> TrackedStep:
        self._counted.add(event.trial)
        self.steps += 1
        trial = self.state.trials[event.trial]
        if event.status == "ok" and event.metric is not None and math.isfinite(event.metric):
            seen = self._best_seen
            better = seen is None or (event.metric < seen if self.minimize else event.metric > seen)
            self._best_seen = event.metric if better else seen
        best = self.state.current_best
        return TrackedStep(self.steps, trial.id, trial.kind, event.status, trial.worker, trial.hardware,
                           trial.metric, dict(trial.metrics), trial.seconds, trial.cost.usd,
                           self.state.cost.usd, self._best_seen, estimate_of(self.state, best).mean,
                           best.trial, event.ts)


def steps_of(events: list[LedgerEvent]) -> list[TrackedStep]:
    """Every step a ledger's events make (what a tracker holds once it has caught up)."""
    maker = StepMaker()
    return [item for event in events for item in maker.feed(event) if isinstance(item, TrackedStep)]


def run_key(first: RunStarted) -> str:
    """The run's identity in a tracker, from its first event: the same after every resume."""
    return hashlib.sha1(f"{first.commit}:{first.tree}:{first.ts!r}".encode()).hexdigest()[:16]


def flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """The config as dotted keys and text values, each cut to PARAM_CHARS characters."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flat_params(value, dotted + "."))
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            flat[dotted] = text if len(text) <= PARAM_CHARS else text[:PARAM_CHARS - 3] + "..."
    return flat
