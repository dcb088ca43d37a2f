"""The coordinator's state, rebuilt by replaying ledger events. Pure: no Ray, no git, no I/O.

Every change goes through `SwarmState.apply(event)`. The coordinator appends an event to the
ledger first and applies it second, so replaying the ledger after a crash gives the same state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from swarm.core.events import (
    EventError, Judged, LedgerEvent, ProposalFailed, RunStarted, SessionEnded, SessionStarted,
    TrialFinished, TrialStarted, cost_of,
)
from swarm.core.scope import paths_named
from swarm.core.stats import Group, Noise, robust_noise
from swarm.core.values import EVALUATED_STATUSES, Cost, TrialKind, TrialStatus, Verdict

__all__ = ["TrialRecord", "BestRecord", "RebasedWinner", "RunInfo", "FailureNote", "SessionEnd",
           "SwarmState", "trial_name", "replay", "VOLUNTEER_CLASS"]

# The hardware class of a volunteer's runs starts with this: they are compared only with runs
# of the same volunteer class (to screen its candidates), never with a trusted worker's.
VOLUNTEER_CLASS = "volunteer/"


def trial_name(number: int) -> str:
    """Trial ids sort as text in the order they were started."""
    return f"{number:05d}"


@dataclass
class TrialRecord:
    id: str
    kind: TrialKind
    worker: str
    commit: str
    tree: str
    parent: str  # the best it was proposed on (candidates) or the best it re-runs (baselines)
    session: str
    of: str | None = None  # confirm: the trial it re-runs; rebased candidate: the stale winner
    parts: tuple[str, ...] = ()  # a union: the trials whose changes it combines
    hypothesis: str = ""
    cost: Cost = Cost()
    status: TrialStatus | None = None  # None while in flight
    metric: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    hardware: str = ""  # the class of machine it ran on: metrics compare within a class
    volunteer: bool = False  # a volunteer's candidate: accepted only once a trusted worker re-ran it
    reason: str = ""
    feedback: str = ""  # the start of what its checks said for the proposer
    verdict: Verdict | None = None
    gain: float | None = None  # the verdict's improvement over its parent (positive: better)
    node: str = ""  # the Ray node (or host) it ran on, as the coordinator was told
    started: float = 0.0  # ledger timestamps: when it was assigned, finished, judged
    finished: float = 0.0
    decided: float = 0.0
    number: int = 0  # candidates only: how many candidates started before it, in all
    judged_runs: int = 0  # the runs its latest verdict rested on
    finish_number: int = -1  # how many trials finished before it (-1: in flight)
    failed_union: bool = False  # it was a part of a union that was not accepted: it races alone

    @classmethod
    def from_event(cls, event: TrialStarted) -> TrialRecord:
        return cls(id=event.trial, kind=event.kind, worker=event.worker, commit=event.commit,
                   tree=event.tree, parent=event.parent, session=event.session, of=event.of,
                   parts=tuple(event.parts or ()),
                   hypothesis=event.hypothesis, cost=cost_of(event), hardware=event.hardware,
                   volunteer=event.volunteer, node=event.node, started=event.ts)


@dataclass(frozen=True)
class BestRecord:
    commit: str
    tree: str
    trial: str | None  # None for the target as it was given
    hypothesis: str


@dataclass(frozen=True)
class RebasedWinner:
    """A stale winner replayed onto a newer best, owed a run there before it can count."""

    commit: str
    tree: str
    parent: str  # the best it was replayed onto
    of: str  # the stale winner's trial
    hypothesis: str


@dataclass(frozen=True)
class RunInfo:
    """What the run was started with (its first event)."""

    commit: str
    tree: str
    readonly_hashes: dict[str, str]
    config: dict[str, Any]  # as recorded: the config is validated where it is used
    briefing: dict[str, str] = field(default_factory=dict)  # proposer.context: path -> text


@dataclass(frozen=True)
class FailureNote:
    worker: str
    reason: str
    ts: float


@dataclass(frozen=True)
class SessionEnd:
    ts: float
    reason: str


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
    rebase_queue: list[RebasedWinner] = field(default_factory=list)  # clean picks to evaluate
    tried: dict[str, dict[str, None]] = field(default_factory=dict)  # parent -> trees tried on it, in order
    sessions: list[str] = field(default_factory=list)
    session_starts: dict[str, float] = field(default_factory=dict)  # session -> when it started
    session_gpus: dict[str, float] = field(default_factory=dict)  # session -> GPUs per worker
    session_ends: dict[str, SessionEnd] = field(default_factory=dict)  # sessions that ended cleanly
    run_info: RunInfo | None = None
    evaluations: int = 0  # trials that ran or will run an experiment
    proposal_failures: int = 0
    last_proposal_failure: FailureNote | None = None  # a provider that stays down shows here
    # Proposals refused (failed, duplicate, out of scope) since the last evaluation: a proposer
    # that only ever fails must back off and, in the end, stop the run instead of spinning.
    refusal_streak: dict[str, int] = field(default_factory=dict)  # per worker
    refused_at: dict[str, float] = field(default_factory=dict)  # per worker: the last refusal
    refusals_in_a_row: int = 0  # swarm-wide
    last_refusal: str = ""
    # This session's refusals by kind (out_of_scope, duplicate, proposal_failed), and the paths
    # the out-of-scope ones touched: stop.max_refusals ends the run and names them.
    session_refusals: dict[str, int] = field(default_factory=dict)
    refused_paths: dict[str, int] = field(default_factory=dict)
    cost: Cost = Cost()  # every proposal's, failed ones included
    last_event_ts: float = 0.0
    # Indexes, so that no question below walks every trial (a run may hold 100,000).
    groups: dict[str, dict[str, Group]] = field(default_factory=dict)  # class -> tree -> its runs
    repeats: dict[str, dict[str, Group]] = field(default_factory=dict)  # the groups of two runs or more
    confirms_of: dict[str, list[str]] = field(default_factory=dict)  # trial -> its confirmation runs
    candidate_ids: list[str] = field(default_factory=list)  # in start order
    finish_order: list[str] = field(default_factory=list)  # trials, as they finished
    last_of: dict[tuple[str, str], str] = field(default_factory=dict)  # (worker, session) -> its last trial
    baseline_tries: dict[tuple[str, str], int] = field(default_factory=dict)  # (commit, class) -> runs ended
    baseline_ok: dict[tuple[str, str], int] = field(default_factory=dict)  # (commit, class) -> ok runs
    baseline_samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # tree -> class -> baselines
    # The same runs by trial id (tree -> class -> ids): a tie-breaker's values are read from
    # their `metrics`, so that only the primary metric is kept twice.
    sample_runs: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    baseline_runs: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    last_union: str | None = None  # the latest union started
    unions: list[str] = field(default_factory=list)  # every union, in start order

    def __post_init__(self) -> None:
        self._noise: dict[str | None, Noise] = {}  # a cache, not state: not a field
        self._other_noise: dict[tuple[str, str | None], tuple[int, Noise]] = {}  # (name, class) -> (runs, noise)

    def apply(self, event: LedgerEvent) -> None:
        """Changes the state by one event; an event that cannot follow those before it (a
        trial never started, a second start of the run) is an EventError saying so, and
        changes nothing."""
        self._check_follows(event)
        match event:
            case RunStarted():
                self._on_run_started(event)
            case SessionStarted():
                self._on_session_started(event)
            case SessionEnded():
                self.session_ends[event.session] = SessionEnd(event.ts, event.reason)
            case TrialStarted():
                self._on_trial_started(event)
            case TrialFinished():
                self._on_trial_finished(event)
            case Judged():
                self._on_verdict(event)
            case ProposalFailed():
                self._on_proposal_failed(event)
        self.last_event_ts = event.ts

    # -- events ---------------------------------------------------------------------------

    def _check_follows(self, event: LedgerEvent) -> None:
        # What the handlers below take for granted; a ledger edited by hand (or by something
        # that should not write there) must be refused with its line, not crash the replay.
        if isinstance(event, RunStarted) != (self.run_info is None):
            raise EventError("a second run_started event; a ledger holds one, as its first line"
                             if self.run_info else f"a {event.event} event before the "
                             "run_started event every ledger begins with")
        match event:
            case TrialStarted():
                if event.trial in self.trials:
                    raise EventError(f"a second trial_started event of trial {event.trial!r}")
                self._check_known(event, event.parts or [])
            case TrialFinished():
                self._check_known(event, [event.trial])
            case Judged():
                self._check_known(event, [event.trial])
                if event.verdict == "accepted" and not event.best_commit:
                    raise EventError("an accepted verdict without its 'best_commit' field")
                if event.verdict == "rebased" and not (event.commit and event.tree and event.parent):
                    raise EventError("a rebased verdict without its 'commit', 'tree' and 'parent'")

    def _check_known(self, event: TrialStarted | TrialFinished | Judged, trials: list[str]) -> None:
        for trial in trials:
            if trial not in self.trials:
                raise EventError(f"a {event.event} event for trial {trial!r}, but no "
                                 "trial_started event before it starts that trial")

    def _on_run_started(self, event: RunStarted) -> None:
        self.run_info = RunInfo(event.commit, event.tree, event.readonly_hashes, event.config, event.briefing)
        self.initial = BestRecord(event.commit, event.tree, None, "the target as given")
        self._set_best(self.initial)

    def _on_session_started(self, event: SessionStarted) -> None:
        self.sessions.append(event.session)
        self.session_starts[event.session] = event.ts
        if event.gpus_per_worker is not None:  # a resumed run may change it; GPU-hours follow
            self.session_gpus[event.session] = event.gpus_per_worker
        # A new session may bring a fixed proposer, and its workers reuse the old ids.
        self.refusal_streak, self.refused_at, self.refusals_in_a_row = {}, {}, 0
        self.session_refusals, self.refused_paths = {}, {}

    def _on_trial_started(self, event: TrialStarted) -> None:
        trial = TrialRecord.from_event(event)
        self.trials[trial.id] = trial
        self.inflight[trial.id] = trial.worker
        self.evaluations += 1
        self.cost += trial.cost
        self.last_of[trial.worker, trial.session] = trial.id
        if trial.kind == "confirm" and trial.of:
            self.confirms_of.setdefault(trial.of, []).append(trial.id)
        if trial.kind == "candidate":
            trial.number = len(self.candidate_ids)
            self.candidate_ids.append(trial.id)
            self.tried.setdefault(trial.parent, {})[trial.tree] = None
        if trial.kind == "candidate" and trial.of:
            self.rebase_queue = [r for r in self.rebase_queue if r.commit != trial.commit]
        if trial.parts:
            self.tree_of[trial.commit] = trial.tree  # proposals are made on a union being judged
            self.last_union = trial.id
            self.unions.append(trial.id)

    def _on_trial_finished(self, event: TrialFinished) -> None:
        trial = self.trials[event.trial]
        self.inflight.pop(trial.id, None)
        if trial.status is None:
            trial.finish_number = len(self.finish_order)
            self.finish_order.append(trial.id)
        trial.status = event.status
        trial.metric = event.metric
        trial.metrics = event.metrics
        trial.seconds = event.seconds
        if event.hardware is not None:
            trial.hardware = event.hardware
        trial.reason = event.reason
        trial.feedback = event.feedback
        trial.finished = event.ts
        if trial.status not in EVALUATED_STATUSES:
            self.evaluations -= 1
        if trial.status in EVALUATED_STATUSES:
            self.refusal_streak[trial.worker] = 0
            self.refusals_in_a_row = 0
        elif trial.status in ("duplicate", "out_of_scope") and trial.kind == "candidate":
            self._refused(trial.worker, f"{trial.status}: {event.reason}", event.ts, trial.status)
        if trial.kind == "baseline" and trial.status != "lost":
            key = (trial.commit, trial.hardware)
            self.baseline_tries[key] = self.baseline_tries.get(key, 0) + 1
            if trial.status == "ok" and trial.metric is not None:
                self.baseline_ok[key] = self.baseline_ok.get(key, 0) + 1
                fresh = self.baseline_samples.setdefault(trial.tree, {}).setdefault(trial.hardware, [])
                fresh.append(trial.metric)
                self.baseline_runs.setdefault(trial.tree, {}).setdefault(trial.hardware, []).append(trial.id)
        if trial.status == "ok" and trial.metric is not None:
            self.samples.setdefault(trial.tree, {}).setdefault(trial.hardware, []).append(trial.metric)
            self.sample_runs.setdefault(trial.tree, {}).setdefault(trial.hardware, []).append(trial.id)
            by_tree = self.groups.setdefault(trial.hardware, {})
            group = by_tree[trial.tree] = by_tree.get(trial.tree, Group(0, 0.0, 0.0)).plus(trial.metric)
            if group.n >= 2:  # a lone run says nothing of the noise: only repeats change it
                self.repeats.setdefault(trial.hardware, {})[trial.tree] = group
                self._noise.pop(trial.hardware, None)
                self._noise.pop(None, None)
        if trial.kind == "candidate" and trial.status == "ok":
            self.unjudged.add(trial.id)
        if trial.status == "lost" and trial.kind == "candidate" and trial.of:
            # A stale winner's re-evaluation is owed work, not a fresh idea: queue it again.
            self.rebase_queue.append(RebasedWinner(trial.commit, trial.tree, trial.parent,
                                                   trial.of, trial.hypothesis))

    def _on_verdict(self, event: Judged) -> None:
        trial = self.trials[event.trial]
        trial.verdict = event.verdict
        trial.gain = event.improvement
        trial.decided = event.ts
        trial.judged_runs = event.runs
        self.unjudged.discard(trial.id)
        if trial.verdict == "promising":
            if trial.id not in self.awaiting:  # a second look at a promising trial changes nothing here
                self.awaiting.append(trial.id)
        elif trial.id in self.awaiting:
            self.awaiting.remove(trial.id)
        if event.alone:
            trial.failed_union = True
        if trial.parts and trial.verdict in ("discard", "unconfirmed", "stale_conflict"):
            # its larger half may make the next union; the rest race alone
            for part in trial.parts[len(trial.parts) // 2:]:
                self.trials[part].failed_union = True
        if trial.verdict == "accepted":
            assert event.best_commit is not None, "checked in _check_follows"
            self._set_best(BestRecord(event.best_commit, trial.tree, trial.id, trial.hypothesis))
            for part in trial.parts:  # the union's acceptance is its parts' verdict: one event
                self._merged(self.trials[part], event.ts)
        if trial.verdict == "rebased":
            assert event.commit and event.tree and event.parent, "checked in _check_follows"
            self.rebase_queue.append(RebasedWinner(event.commit, event.tree, event.parent,
                                                   trial.id, trial.hypothesis))

    def _merged(self, part: TrialRecord, when: float) -> None:
        part.verdict, part.decided = "merged", when
        self.unjudged.discard(part.id)
        if part.id in self.awaiting:
            self.awaiting.remove(part.id)

    def _on_proposal_failed(self, event: ProposalFailed) -> None:
        self.proposal_failures += 1
        self.last_proposal_failure = FailureNote(event.worker, event.reason, event.ts)
        self.cost += cost_of(event)
        self._refused(event.worker, f"proposal failed: {event.reason}", event.ts, "proposal_failed")

    def _refused(self, worker: str, reason: str, when: float, kind: str) -> None:
        self.session_refusals[kind] = self.session_refusals.get(kind, 0) + 1
        for path in paths_named(reason):
            self.refused_paths[path] = self.refused_paths.get(path, 0) + 1
        self.refusal_streak[worker] = self.refusal_streak.get(worker, 0) + 1
        self.refused_at[worker] = when
        self.refusals_in_a_row += 1
        self.last_refusal = reason

    def _set_best(self, best: BestRecord) -> None:
        self.best = best
        self.history.append(best)
        self.tree_of[best.commit] = best.tree

    # -- questions ------------------------------------------------------------------------

    @property
    def current_best(self) -> BestRecord:
        """Best, once the run has started (every question below assumes it has)."""
        assert self.best is not None, "a run's state starts with its run_started event"
        return self.best

    def confirmations(self, trial_id: str) -> list[TrialRecord]:
        """Confirmation runs of a trial that did not get lost (finished or in flight)."""
        runs = (self.trials[t] for t in self.confirms_of.get(trial_id, ()))
        return [t for t in runs if t.status != "lost"]

    def noise(self, hardware: str | None = None) -> Noise:
        """The noise of one class of hardware (None: of every trusted class), from repeated
        runs of the same code, disturbed groups left out; kept until a run of the class adds."""
        if hardware not in self._noise:
            if hardware is None:
                groups = [g for cls, by_tree in self.repeats.items() if not cls.startswith(VOLUNTEER_CLASS)
                          for g in by_tree.values()]
            else:
                groups = list(self.repeats.get(hardware, {}).values())
            self._noise[hardware] = robust_noise(groups)
        return self._noise[hardware]

    def reference_samples(self, parent: str, hardware: str, fresh: int = 0) -> list[float]:
        """The runs, on one class of hardware, of the best a trial was proposed on. fresh: once
        it has that many baseline runs, those alone (not the runs that made it best, which were
        chosen for being good); until then, all its runs, so that judging need not wait."""
        tree = self.tree_of.get(parent, "")
        baselines = self.baseline_samples.get(tree, {}).get(hardware, [])
        if fresh and len(baselines) >= fresh:
            return baselines
        return self.samples.get(tree, {}).get(hardware, [])

    def reference_values(self, name: str, parent: str, hardware: str, fresh: int = 0) -> list[float]:
        """`reference_samples` of another metric (a tie-breaker): the values of `name` that
        those runs recorded."""
        tree = self.tree_of.get(parent, "")
        ids = self.baseline_runs.get(tree, {}).get(hardware, [])
        if not (fresh and len(ids) >= fresh):
            ids = self.sample_runs.get(tree, {}).get(hardware, [])
        return self.values_of(name, ids)

    def values_of(self, name: str, trial_ids: Iterable[str]) -> list[float]:
        """The values of metric `name` the trials recorded (those that recorded none left out)."""
        found = (self.trials[t].metrics.get(name) for t in trial_ids)
        return [float(v) for v in found if v is not None]

    def noise_of(self, name: str, hardware: str | None = None) -> Noise:
        """`noise` of another metric (a tie-breaker), from the same repeated runs; cached until
        a run is added."""
        runs = len(self.finish_order)
        cached = self._other_noise.get((name, hardware))
        if cached is None or cached[0] != runs:
            groups = [Group.of(values) for by_class in self.sample_runs.values()
                      for cls, ids in by_class.items()
                      if (cls == hardware if hardware is not None else not cls.startswith(VOLUNTEER_CLASS))
                      if len(values := self.values_of(name, ids)) >= 2]
            cached = self._other_noise[(name, hardware)] = (runs, robust_noise(groups))
        return cached[1]

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


def replay(events: Iterable[LedgerEvent]) -> SwarmState:
    """The state a run's events lead to."""
    state = SwarmState()
    for event in events:
        state.apply(event)
    return state
