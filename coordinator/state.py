"""The coordinator's state, rebuilt by replaying ledger events. Pure: no Ray, no git, no I/O.

Every change goes through `SwarmState.apply(event)`. The coordinator appends an event to the
ledger first and applies it second, so replaying the ledger after a crash gives the same state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from swarm.core.values import EVALUATED_STATUSES

__all__ = ["TrialRecord", "BestRecord", "SwarmState", "trial_name", "VOLUNTEER_CLASS"]

# The hardware class of a volunteer's runs starts with this: they are compared only with runs
# of the same volunteer class (to screen its candidates), never with a trusted worker's.
VOLUNTEER_CLASS = "volunteer/"


def trial_name(number: int) -> str:
    """Trial ids sort as text in the order they were started."""
    return f"{number:05d}"


@dataclass
class TrialRecord:
    id: str
    kind: str  # baseline | candidate | confirm
    worker: str
    commit: str
    tree: str
    parent: str  # the best it was proposed on (candidates) or the best it re-runs (baselines)
    session: str
    of: str | None = None  # confirm: the trial it re-runs; rebased candidate: the stale winner
    hypothesis: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    status: str | None = None  # None while in flight
    metric: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    hardware: str = ""  # the class of machine it ran on: metrics compare within a class
    volunteer: bool = False  # a volunteer's candidate: accepted only once a trusted worker re-ran it
    reason: str = ""
    verdict: str | None = None  # promising | discard | accepted | unconfirmed | rebased | stale_conflict
    gain: float | None = None  # the verdict's improvement over its parent (positive: better)
    node: str = ""  # the Ray node (or host) it ran on, as the coordinator was told
    started: float = 0.0  # ledger timestamps: when it was assigned, finished, judged
    finished: float = 0.0
    decided: float = 0.0


@dataclass(frozen=True)
class BestRecord:
    commit: str
    tree: str
    trial: str | None  # None for the target as it was given
    hypothesis: str


@dataclass
class SwarmState:
    """Everything the coordinator decides from; see `apply` for the events that change it."""

    initial: BestRecord | None = None
    best: BestRecord | None = None
    history: list[BestRecord] = field(default_factory=list)
    trials: dict[str, TrialRecord] = field(default_factory=dict)
    # tree -> hardware class -> ok metrics of that code on trusted workers of that class
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    tree_of: dict[str, str] = field(default_factory=dict)  # commit -> tree, for every best
    inflight: dict[str, str] = field(default_factory=dict)  # trial -> worker
    unjudged: set[str] = field(default_factory=set)  # finished ok candidates without a verdict
    awaiting: list[str] = field(default_factory=list)  # promising trials waiting for confirmation
    rebase_queue: list[dict[str, Any]] = field(default_factory=list)  # clean picks to evaluate
    tried: dict[str, set[str]] = field(default_factory=dict)  # parent -> trees tried on it
    sessions: list[str] = field(default_factory=list)
    session_gpus: dict[str, float] = field(default_factory=dict)  # session -> GPUs per worker
    run_info: dict[str, Any] = field(default_factory=dict)
    evaluations: int = 0  # trials that ran or will run an experiment
    proposal_failures: int = 0
    last_proposal_failure: dict[str, Any] | None = None  # a provider that stays down shows here
    # Proposals refused (failed, duplicate, out of scope) since the last evaluation: a proposer
    # that only ever fails must back off and, in the end, stop the run instead of spinning.
    refusal_streak: dict[str, int] = field(default_factory=dict)  # per worker
    refused_at: dict[str, float] = field(default_factory=dict)  # per worker: the last refusal
    refusals_in_a_row: int = 0  # swarm-wide
    last_refusal: str = ""
    cost_usd: float = 0.0

    def apply(self, event: dict[str, Any]) -> None:
        handler = getattr(self, "_on_" + event["event"], None)
        if handler is None:
            raise ValueError(f"unknown ledger event {event['event']!r}")
        handler(event)

    # -- events ---------------------------------------------------------------------------

    def _on_run_started(self, event: dict[str, Any]) -> None:
        self.run_info = {k: v for k, v in event.items() if k not in ("event", "ts")}
        self.initial = BestRecord(event["commit"], event["tree"], None, "the target as given")
        self._set_best(self.initial)

    def _on_session_started(self, event: dict[str, Any]) -> None:
        self.sessions.append(event["session"])
        if "gpus_per_worker" in event:  # a resumed run may change it; GPU-hours follow
            self.session_gpus[event["session"]] = event["gpus_per_worker"]
        # A new session may bring a fixed proposer, and its workers reuse the old ids.
        self.refusal_streak, self.refused_at, self.refusals_in_a_row = {}, {}, 0

    def _on_trial_started(self, event: dict[str, Any]) -> None:
        fields = {k: v for k, v in event.items() if k in TrialRecord.__dataclass_fields__}
        trial = TrialRecord(id=event["trial"], **{k: v for k, v in fields.items() if k != "id"})
        trial.started = event.get("ts", 0.0)
        self.trials[trial.id] = trial
        self.inflight[trial.id] = trial.worker
        self.evaluations += 1
        self.cost_usd += trial.cost_usd
        if trial.kind == "candidate":
            self.tried.setdefault(trial.parent, set()).add(trial.tree)
        if trial.kind == "candidate" and trial.of:
            self.rebase_queue = [r for r in self.rebase_queue if r["commit"] != trial.commit]

    def _on_trial_finished(self, event: dict[str, Any]) -> None:
        trial = self.trials[event["trial"]]
        self.inflight.pop(trial.id, None)
        trial.status = event["status"]
        trial.metric = event.get("metric")
        trial.metrics = event.get("metrics", {})
        trial.seconds = event.get("seconds", 0.0)
        trial.hardware = event.get("hardware", trial.hardware)
        trial.reason = event.get("reason", "")
        trial.finished = event.get("ts", 0.0)
        if trial.status not in EVALUATED_STATUSES:
            self.evaluations -= 1
        if trial.status in EVALUATED_STATUSES:
            self.refusal_streak[trial.worker] = 0
            self.refusals_in_a_row = 0
        elif trial.status in ("duplicate", "out_of_scope") and trial.kind == "candidate":
            self._refused(trial.worker, f"{trial.status}: {event.get('reason', '')}",
                          event.get("ts", 0.0))
        if trial.status == "ok" and trial.metric is not None:
            self.samples.setdefault(trial.tree, {}).setdefault(trial.hardware, []).append(trial.metric)
        if trial.kind == "candidate" and trial.status == "ok":
            self.unjudged.add(trial.id)
        if trial.status == "lost" and trial.kind == "candidate" and trial.of:
            # A stale winner's re-evaluation is owed work, not a fresh idea: queue it again.
            self.rebase_queue.append({"commit": trial.commit, "tree": trial.tree,
                                      "parent": trial.parent, "of": trial.of,
                                      "hypothesis": trial.hypothesis})

    def _on_verdict(self, event: dict[str, Any]) -> None:
        trial = self.trials[event["trial"]]
        trial.verdict = event["verdict"]
        trial.gain = event.get("improvement")
        trial.decided = event.get("ts", 0.0)
        self.unjudged.discard(trial.id)
        if trial.verdict == "promising":
            self.awaiting.append(trial.id)
        elif trial.id in self.awaiting:
            self.awaiting.remove(trial.id)
        if trial.verdict == "accepted":
            self._set_best(BestRecord(event["best_commit"], trial.tree, trial.id, trial.hypothesis))
        if trial.verdict == "rebased":
            self.rebase_queue.append({k: event[k] for k in ("commit", "tree", "parent")} | {
                "of": trial.id, "hypothesis": trial.hypothesis})

    def _on_proposal_failed(self, event: dict[str, Any]) -> None:
        self.proposal_failures += 1
        self.last_proposal_failure = {"worker": event["worker"], "reason": event.get("reason", ""),
                                      "ts": event.get("ts", 0.0)}
        self.cost_usd += event.get("cost_usd", 0.0)
        self._refused(event["worker"], f"proposal failed: {event.get('reason', '')}",
                      event.get("ts", 0.0))

    def _refused(self, worker: str, reason: str, when: float) -> None:
        self.refusal_streak[worker] = self.refusal_streak.get(worker, 0) + 1
        self.refused_at[worker] = when
        self.refusals_in_a_row += 1
        self.last_refusal = reason

    def _set_best(self, best: BestRecord) -> None:
        self.best = best
        self.history.append(best)
        self.tree_of[best.commit] = best.tree

    # -- questions ------------------------------------------------------------------------

    def confirmations(self, trial_id: str) -> list[TrialRecord]:
        """Confirmation runs of a trial that did not get lost (finished or in flight)."""
        return [t for t in self.trials.values()
                if t.kind == "confirm" and t.of == trial_id and t.status != "lost"]

    def reference_samples(self, parent: str, hardware: str) -> list[float]:
        """The runs, on one class of hardware, of the best a trial was proposed on."""
        return self.samples.get(self.tree_of.get(parent, ""), {}).get(hardware, [])

    def best_samples(self, hardware: str | None = None) -> list[float]:
        """Best's trusted runs on one class of hardware, or on all of them."""
        by_class = self.samples.get(self.best.tree, {}) if self.best else {}
        if hardware is not None:
            return by_class.get(hardware, [])
        return [m for runs in by_class.values() for m in runs]

    def trusted_samples(self, tree: str) -> dict[str, list[float]]:
        """A tree's runs by class, volunteers' classes left out."""
        return {cls: runs for cls, runs in self.samples.get(tree, {}).items()
                if not cls.startswith(VOLUNTEER_CLASS)}

    def trusted_best_samples(self) -> list[float]:
        by_class = self.trusted_samples(self.best.tree) if self.best else {}
        return [m for runs in by_class.values() for m in runs]

    def sample_groups(self, hardware: str | None = None, trusted_only: bool = False) -> list[list[float]]:
        """Runs of the same code on the same class (one class, or all): what noise is measured on."""
        return [runs for by_class in self.samples.values() for cls, runs in by_class.items()
                if (hardware is None or cls == hardware)
                and not (trusted_only and cls.startswith(VOLUNTEER_CLASS))]

    def inflight_of(self, worker: str) -> list[str]:
        return [trial for trial, owner in self.inflight.items() if owner == worker]

    def next_trial_id(self) -> str:
        return trial_name(len(self.trials) + 1)
