"""What the coordinator decides: who runs what next, what a result means, when to stop. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from coordinator.state import SwarmState, TrialRecord
from swarm.core.config import AcceptanceSpec, StopSpec
from swarm.core.stats import Direction, improvement, margin, mean, pooled_spread
from swarm.core.values import CandidateInfo, TrialDigest, TrialKind, TrialOutcome, TrialStatus, Verdict

__all__ = [
    "Assignment", "Judgement", "assign", "next_judgement", "budget_spent", "stop_reason",
    "recent_trials", "checked_status", "is_duplicate", "counted_runs", "orphaned_trials",
    "earlier_announcement",
]


@dataclass(frozen=True)
class Assignment:
    action: Literal["evaluate", "propose", "wait", "stop"]
    kind: TrialKind | None = None  # for evaluate
    commit: str = ""
    tree: str = ""
    parent: str = ""
    of: str | None = None
    hypothesis: str = ""
    wait_s: float = 0.0


# A worker whose proposals keep being refused waits longer each time (0.5 s doubling to 30 s);
# when the whole swarm has had this many refusals in a row, the run stops and says why.
FREE_REFUSALS = 3
MAX_REFUSALS_IN_A_ROW = 100
# Baseline runs of best that crash are retried this many times beyond baseline_runs; then
# judgements use the runs best has.
BASELINE_RETRIES = 2


@dataclass(frozen=True)
class Judgement:
    """A verdict and the numbers it rests on. `rebased` means "to be replayed onto best": the
    coordinator records it as such, or as stale_conflict or discard when the replay says so."""

    trial: str
    verdict: Verdict
    reference: float
    required: float
    improvement: float
    runs: int
    reason: str = ""


def assign(state: SwarmState, worker: str, live: set[str], acceptance: AcceptanceSpec,
           stopping: str | None, winding_down: bool = False, now: float = 0.0,
           hardware: str = "", volunteers: frozenset[str] = frozenset()) -> Assignment:
    """Best's baselines on the worker's class of hardware first (metrics are compared only
    within a class, so a class seen for the first time re-measures best), then confirmations
    and rebased winners, then a new proposal.

    Winding down (the trial budget is spent) still finishes owed work: the confirmations and
    re-runs that decide whether promising trials, already paid for, become best. Volunteers
    (`volunteers`, whose classes are their own) confirm nobody.
    """
    if stopping:
        return Assignment("stop")
    baseline = _baseline(state, acceptance.baseline_runs, hardware)
    if winding_down and not _judgements_wait_for(state, hardware):
        baseline = None  # no proposal will need it
    trusted = worker not in volunteers
    owed = (baseline
            or (_confirmation(state, worker, live - volunteers, acceptance.confirm_runs)
                if trusted else None)
            or _rebased_winner(state))
    if owed or winding_down:
        return owed or Assignment("stop")
    best = state.current_best.commit
    return _backoff(state, worker, now) or Assignment("propose", commit=best, parent=best)


def _judgements_wait_for(state: SwarmState, hardware: str) -> bool:
    """Some finished run on this class cannot be judged until best's baselines on it are in."""
    return any(state.trials[t].parent == state.current_best.commit
               and any(r.hardware == hardware for r in counted_runs(state, t))
               for t in [*state.unjudged, *state.awaiting])


def counted_runs(state: SwarmState, trial_id: str) -> list[TrialRecord]:
    """A candidate's finished ok runs that count: its own and its confirmations. A volunteer's
    own run only screened it: once trusted workers re-ran it, their runs alone count (and are
    what its best commit's Swarm-Metric says)."""
    trial = state.trials[trial_id]
    confirmations = [r for r in state.confirmations(trial_id) if r.status == "ok"]
    if trial.volunteer and confirmations:
        return confirmations
    if trial.volunteer and trial.id in state.awaiting:
        return []
    return [trial] + confirmations


def confirmations_wanted(trial: TrialRecord, confirm_runs: int) -> int:
    """A volunteer's winner is re-run on a trusted worker even when confirm_runs is 0. A
    rebased winner's run on the new best is its first re-run: the change has beaten the margin
    on its old parent already, and a second confirmation round would let the next winner on
    the new best make it stale again."""
    if trial.volunteer:
        return max(confirm_runs, 1)
    if trial.kind == "candidate" and trial.of:
        return max(confirm_runs - 1, 0)
    return confirm_runs


def _backoff(state: SwarmState, worker: str, now: float) -> Assignment | None:
    """A wait until the worker's back-off after its last refusal is over, else None."""
    streak = state.refusal_streak.get(worker, 0)
    if streak < FREE_REFUSALS:
        return None
    until = state.refused_at.get(worker, 0.0) + min(0.5 * 2 ** (streak - FREE_REFUSALS), 30.0)
    return Assignment("wait", wait_s=round(until - now, 3)) if now < until else None


def _confirmation(state: SwarmState, worker: str, trusted_live: set[str],
                  confirm_runs: int) -> Assignment | None:
    for trial_id in state.awaiting:
        trial = state.trials[trial_id]
        if trial.parent != state.current_best.commit:
            continue  # best moved: it will be rebased and re-run instead (see next_judgement)
        runs = state.confirmations(trial_id)
        busy = {trial.worker} | {run.worker for run in runs}
        # Re-runs belong on other workers; only when none is left may a worker confirm itself.
        wanted = confirmations_wanted(trial, confirm_runs)
        if len(runs) < wanted and (worker not in busy or not (trusted_live - busy)):
            return Assignment("evaluate", "confirm", trial.commit, trial.tree, trial.parent,
                              of=trial.id, hypothesis=trial.hypothesis)
    return None


def _rebased_winner(state: SwarmState) -> Assignment | None:
    if not state.rebase_queue:
        return None
    # The largest step first: it is the one the others should be rebased onto.
    pick = max(state.rebase_queue, key=lambda r: state.trials[r.of].gain or 0.0)
    return Assignment("evaluate", "candidate", pick.commit, pick.tree, pick.parent,
                      of=pick.of, hypothesis=pick.hypothesis)


def _baseline(state: SwarmState, wanted: int, hardware: str) -> Assignment | None:
    best = state.current_best
    running = sum(1 for t in state.inflight if _is_baseline_of(state.trials[t], best.commit, hardware))
    if (len(state.best_samples(hardware)) + running >= wanted
            or _baselines_given_up(state, wanted, hardware)):
        return None
    return Assignment("evaluate", "baseline", best.commit, best.tree, best.commit,
                      hypothesis="baseline run of best")


def _is_baseline_of(trial: TrialRecord, commit: str, hardware: str) -> bool:
    return trial.kind == "baseline" and trial.commit == commit and trial.hardware == hardware


def _baselines_given_up(state: SwarmState, wanted: int, hardware: str) -> bool:
    """Best's baselines on this class failed so often that re-running it more would never end."""
    tried = sum(1 for t in state.trials.values() if _is_baseline_of(t, state.current_best.commit, hardware)
                and t.status not in (None, "lost"))
    return tried >= wanted + BASELINE_RETRIES


def next_judgement(state: SwarmState, acceptance: AcceptanceSpec,
                   direction: Direction) -> Judgement | None:
    """The next verdict that can be made now; acceptances first, the largest gain first.

    One at a time, because an acceptance moves best and so changes every later verdict.
    """
    found = [j for j in _candidate_judgements(state, acceptance, direction)
             + _confirmation_judgements(state, acceptance, direction)
             if j and not (j.verdict == "accepted" and _larger_step_running(state, j))]
    accepts = [j for j in found if j.verdict == "accepted"]
    if accepts:
        return max(accepts, key=lambda j: j.improvement)
    return min(found, key=lambda j: j.trial, default=None)


def _larger_step_running(state: SwarmState, j: Judgement) -> bool:
    """A winner on the same parent and class with a larger gain is being re-run (its
    confirmation, or its run after a rebase), and that run started before j's last run ended.
    Accepting j first would make the larger step stale, to be rebased and run again; runs that
    start later do not hold j back, so the wait is at most the rest of the runs in flight then.
    A volunteer's gain is its own word, measured on its own class: it holds back nobody."""
    trial = state.trials[j.trial]
    ready_at = max([trial.finished] + [r.finished for r in state.confirmations(trial.id)])
    for trial_id in state.inflight:
        run = state.trials[trial_id]
        step = state.trials[run.of] if run.of and run.kind in ("confirm", "candidate") else None
        if (step is None or step.id == trial.id or run.parent != trial.parent
                or step.volunteer or run.volunteer or step.hardware != trial.hardware
                or run.started > ready_at):
            continue
        if (step.gain or 0.0) > j.improvement:
            return True
    return False


def _candidate_judgements(state: SwarmState, acceptance: AcceptanceSpec,
                          direction: Direction) -> list[Judgement | None]:
    found = []
    for trial_id in sorted(state.unjudged):
        trial = state.trials[trial_id]
        confirmed = confirmations_wanted(trial, acceptance.confirm_runs) > 0
        found.append(_judge(state, trial, [trial], direction, acceptance,
                            success="promising" if confirmed else "accepted"))
    return found


def _confirmation_judgements(state: SwarmState, acceptance: AcceptanceSpec,
                             direction: Direction) -> list[Judgement | None]:
    found: list[Judgement | None] = []
    for trial_id in state.awaiting:
        trial = state.trials[trial_id]
        runs = state.confirmations(trial_id)
        stale = trial.parent != state.current_best.commit  # judge now on the runs it has, then rebase
        wanted = confirmations_wanted(trial, acceptance.confirm_runs)
        if any(r.status is None for r in runs) or (len(runs) < wanted and not stale):
            continue
        failed = [r for r in runs if r.status != "ok"]
        if failed:
            found.append(Judgement(trial_id, "unconfirmed", 0.0,
                                   _required(state, acceptance, trial.hardware), 0.0, len(runs) + 1,
                                   f"confirmation {failed[0].id} ended {failed[0].status}"))
            continue
        # A stale volunteer winner nobody trusted re-ran yet goes on its screening run: at
        # most it is rebased and re-run, which its volunteer flag makes confirmed again.
        counted = counted_runs(state, trial_id) or [trial]
        found.append(_judge(state, trial, counted, direction, acceptance, success="accepted",
                            failure="unconfirmed"))
    return found


def _judge(state: SwarmState, trial: TrialRecord, runs: list[TrialRecord], direction: Direction,
           acceptance: AcceptanceSpec, success: Verdict,
           failure: Verdict = "discard") -> Judgement | None:
    """Each run is compared with the parent's runs on its own class of hardware; the verdict
    is on the mean gain, against the noise of those classes."""
    on_best = trial.parent == state.current_best.commit
    # Judge against best only once its noise baselines are in (the margin depends on them);
    # an older parent gets no more runs, so what it has must do.
    wanted = acceptance.baseline_runs if on_best else 1
    gains, references, classes = [], [], set()
    for run in runs:
        reference = state.reference_samples(trial.parent, run.hardware)
        if len(reference) < wanted:
            if on_best and not _baselines_given_up(state, acceptance.baseline_runs, run.hardware):
                return None  # its baselines on this class are owed: wait for them
            if not reference and _baseline_running(state, trial.parent, run.hardware):
                return None  # its parent's run on this class is seconds away
            if not reference:
                continue  # no class-mate ever measured the parent: this run cannot count
        references.append(mean(reference))
        assert run.metric is not None, "only ok runs, which have a metric, are judged"
        gains.append(improvement(run.metric, references[-1], direction))
        classes.add(run.hardware)
    if not gains:
        return Judgement(trial.id, failure, 0.0, 0.0, 0.0, len(runs),
                         "its parent was never measured on the hardware it ran on")
    required = max(_required(state, acceptance, cls) for cls in classes)
    gain = mean(gains)
    verdict = success if gain > required else failure
    # A winner whose parent is no longer best must be re-based and re-run before it counts.
    if verdict in ("accepted", "promising") and not on_best:
        verdict = "rebased"
    return Judgement(trial.id, verdict, references[0], required, gain, len(gains))


def _baseline_running(state: SwarmState, commit: str, hardware: str) -> bool:
    return any(_is_baseline_of(state.trials[t], commit, hardware) for t in state.inflight)


def _required(state: SwarmState, acceptance: AcceptanceSpec, hardware: str) -> float:
    """The gain a result on this class must beat: its own noise once some code ran twice on
    it, until then the noise of the trusted classes."""
    spread = pooled_spread(state.sample_groups(hardware))
    if spread is None:
        spread = pooled_spread(state.sample_groups(trusted_only=True))
    return margin(acceptance.min_delta, acceptance.noise_k, spread)


def budget_spent(state: SwarmState, stop: StopSpec) -> str | None:
    """Why no new proposal should start (owed confirmations still run), or None."""
    if stop.max_trials is not None and state.evaluations >= stop.max_trials:
        return f"max_trials reached ({stop.max_trials})"
    if stop.max_cost_usd is not None and state.cost.usd >= stop.max_cost_usd:
        return f"max_cost_usd reached (${state.cost.usd:.4f} of ${stop.max_cost_usd:g})"
    return None


def stop_reason(state: SwarmState, stop: StopSpec, direction: Direction, elapsed_s: float,
                requested: bool) -> str | None:
    """Why no new work at all should start, or None to go on."""
    if requested:
        return "stop requested"
    if state.refusals_in_a_row >= MAX_REFUSALS_IN_A_ROW:
        return (f"{state.refusals_in_a_row} proposals in a row were refused; "
                f"the last: {state.last_refusal[:200]}")
    if stop.hours is not None and elapsed_s >= stop.hours * 3600:
        return f"hours reached ({stop.hours})"
    best_runs = state.trusted_best_samples()  # a volunteer's claim cannot end the run
    if stop.target_metric is not None and best_runs and improvement(
            mean(best_runs), stop.target_metric, direction) >= 0:
        return f"target_metric reached ({stop.target_metric})"
    return None


def recent_trials(state: SwarmState, limit: int = 20) -> tuple[TrialDigest, ...]:
    """The latest candidates of every worker, for proposers to learn from: finished ones, then
    those running now (status "running"), so nobody proposes what another worker is trying."""
    candidates = [t for t in state.trials.values() if t.kind == "candidate"]
    finished = [t for t in candidates if t.status]
    running = [t for t in candidates if t.id in state.inflight]
    newest = (finished + running)[-limit:] if limit > 0 else []
    return tuple(TrialDigest(t.id, t.worker, t.hypothesis, t.status or "running", t.metric, t.verdict)
                 for t in newest)


def is_duplicate(state: SwarmState, parent: str, tree: str) -> bool:
    """The same change was tried on this parent already, or it changes nothing."""
    return tree in state.tried.get(parent, ()) or tree == state.tree_of.get(parent)


def earlier_announcement(state: SwarmState, info: CandidateInfo, session: str) -> TrialRecord | None:
    """The trial this announcement already started, when it is a retry (a coordinator that
    restarted mid-call answered nothing): the worker's last trial of the session, on the same
    parent and tree, still running or refused as a duplicate."""
    mine = [t for t in state.trials.values() if t.worker == info.worker_id and t.session == session]
    last = mine[-1] if mine else None
    if last and (last.kind, last.parent, last.tree) == ("candidate", info.parent, info.tree) \
            and last.status in (None, "duplicate"):
        return last
    return None


def orphaned_trials(state: SwarmState, session: str) -> list[str]:
    """Trials in flight from an earlier session: its workers are gone and will never report."""
    return [t for t in state.inflight if state.trials[t].session != session]


# What a worker may report; duplicate and stale_conflict are the coordinator's own findings.
_REPORTABLE = frozenset(get_args(TrialStatus)) - {"duplicate", "stale_conflict"}


def checked_status(outcome: TrialOutcome) -> tuple[TrialStatus, str]:
    """The worker's status and reason, unless the report contradicts itself (workers are not
    trusted to be bug-free, and a volunteer's even less)."""
    if outcome.status not in _REPORTABLE:
        return "crash", f"the worker reported an unknown status {outcome.status!r}"
    metric = outcome.metric
    if outcome.status == "ok" and not (isinstance(metric, (int, float)) and math.isfinite(metric)):
        return "no_metric", f"reported ok without a finite metric ({metric!r})"
    return outcome.status, outcome.reason
