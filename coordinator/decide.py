"""What the coordinator decides: who runs what next, what a result means, when to stop. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import get_args

from coordinator.state import SwarmState, TrialRecord
from swarm.config import AcceptanceSpec, StopSpec
from swarm.policy import Direction, improvement, margin, mean, pooled_spread
from swarm.types import TrialOutcome, TrialStatus

__all__ = [
    "Assignment", "Judgement", "assign", "next_judgement", "budget_spent", "stop_reason",
    "recent_trials", "checked_status",
]


@dataclass(frozen=True)
class Assignment:
    action: str  # evaluate | propose | wait | stop
    kind: str | None = None  # for evaluate: baseline | candidate | confirm
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
    trial: str
    verdict: str  # promising | discard | accept | unconfirmed | rebase
    reference: float
    required: float
    improvement: float
    runs: int
    reason: str = ""


def assign(state: SwarmState, worker: str, live: set[str], acceptance: AcceptanceSpec,
           stopping: str | None, winding_down: bool = False, now: float = 0.0) -> Assignment:
    """Confirmations and rebased winners first, then noise baselines, then a new proposal.

    Winding down (the trial budget is spent) still finishes owed work: the confirmations and
    re-runs that decide whether promising trials, already paid for, become best.
    """
    if stopping:
        return Assignment("stop")
    owed = (_confirmation(state, worker, live, acceptance.confirm_runs)
            or _rebased_winner(state)
            or (_baseline(state, acceptance.baseline_runs) if _judgements_wait_for_best(state)
                else None))
    if owed or winding_down:
        return owed or Assignment("stop")
    return (_baseline(state, acceptance.baseline_runs)
            or _backoff(state, worker, now)
            or Assignment("propose", commit=state.best.commit, parent=state.best.commit))


def _judgements_wait_for_best(state: SwarmState) -> bool:
    # Finished candidates cannot be judged until best's baselines are in: those are owed too
    # (and _baseline stops owing them once best's re-runs have failed too often).
    return any(state.trials[t].parent == state.best.commit for t in state.unjudged)


def _backoff(state: SwarmState, worker: str, now: float) -> Assignment | None:
    """A wait until the worker's back-off after its last refusal is over, else None."""
    streak = state.refusal_streak.get(worker, 0)
    if streak < FREE_REFUSALS:
        return None
    until = state.refused_at.get(worker, 0.0) + min(0.5 * 2 ** (streak - FREE_REFUSALS), 30.0)
    return Assignment("wait", wait_s=round(until - now, 3)) if now < until else None


def _confirmation(state: SwarmState, worker: str, live: set[str], wanted: int) -> Assignment | None:
    for trial_id in state.awaiting:
        trial = state.trials[trial_id]
        if trial.parent != state.best.commit:
            continue  # best moved: it will be rebased and re-run instead (see next_judgement)
        runs = state.confirmations(trial_id)
        busy = {trial.worker} | {run.worker for run in runs}
        # Re-runs belong on other workers; only when none is left may a worker confirm itself.
        if len(runs) < wanted and (worker not in busy or not (live - busy)):
            return Assignment("evaluate", "confirm", trial.commit, trial.tree, trial.parent,
                              of=trial.id, hypothesis=trial.hypothesis)
    return None


def _rebased_winner(state: SwarmState) -> Assignment | None:
    if not state.rebase_queue:
        return None
    pick = state.rebase_queue[0]
    return Assignment("evaluate", "candidate", pick["commit"], pick["tree"], pick["parent"],
                      of=pick["of"], hypothesis=pick["hypothesis"])


def _baseline(state: SwarmState, wanted: int) -> Assignment | None:
    best = state.best
    running = sum(1 for t in state.inflight if _is_baseline_of(state.trials[t], best.commit))
    if len(state.best_samples()) + running >= wanted or _baselines_given_up(state, wanted):
        return None
    return Assignment("evaluate", "baseline", best.commit, best.tree, best.commit,
                      hypothesis="baseline run of best")


def _is_baseline_of(trial: TrialRecord, commit: str) -> bool:
    return trial.kind == "baseline" and trial.commit == commit


def _baselines_given_up(state: SwarmState, wanted: int) -> bool:
    """Best's baselines failed so often that re-running it more would never end."""
    tried = sum(1 for t in state.trials.values() if _is_baseline_of(t, state.best.commit)
                and t.status not in (None, "lost"))
    return tried >= wanted + BASELINE_RETRIES


def next_judgement(state: SwarmState, acceptance: AcceptanceSpec,
                   direction: Direction) -> Judgement | None:
    """The next verdict that can be made now; acceptances first, the largest gain first.

    One at a time, because an acceptance moves best and so changes every later verdict.
    """
    spread = pooled_spread(state.samples.values())
    required = margin(acceptance.min_delta, acceptance.noise_k, spread)
    found = [j for j in _candidate_judgements(state, acceptance, direction, required)
             + _confirmation_judgements(state, acceptance, direction, required) if j]
    accepts = [j for j in found if j.verdict == "accept"]
    if accepts:
        return max(accepts, key=lambda j: j.improvement)
    return min(found, key=lambda j: j.trial, default=None)


def _candidate_judgements(state: SwarmState, acceptance: AcceptanceSpec, direction: Direction,
                          required: float) -> list[Judgement | None]:
    found = []
    for trial_id in sorted(state.unjudged):
        trial = state.trials[trial_id]
        found.append(_judge(state, trial, [trial.metric], direction, required,
                            success="accept" if acceptance.confirm_runs == 0 else "promising",
                            baseline_runs=acceptance.baseline_runs))
    return found


def _confirmation_judgements(state: SwarmState, acceptance: AcceptanceSpec,
                             direction: Direction, required: float) -> list[Judgement | None]:
    found: list[Judgement | None] = []
    for trial_id in state.awaiting:
        trial = state.trials[trial_id]
        runs = state.confirmations(trial_id)
        stale = trial.parent != state.best.commit  # judge now on the runs it has, then rebase
        if any(r.status is None for r in runs) or (len(runs) < acceptance.confirm_runs
                                                   and not stale):
            continue
        failed = [r for r in runs if r.status != "ok"]
        if failed:
            found.append(Judgement(trial_id, "unconfirmed", 0.0, required, 0.0, len(runs) + 1,
                                   f"confirmation {failed[0].id} ended {failed[0].status}"))
            continue
        metrics = [trial.metric] + [r.metric for r in runs]
        found.append(_judge(state, trial, metrics, direction, required, success="accept",
                            failure="unconfirmed", baseline_runs=acceptance.baseline_runs))
    return found


def _judge(state: SwarmState, trial: TrialRecord, metrics: list[float | None], direction: Direction,
           required: float, success: str, failure: str = "discard",
           baseline_runs: int = 1) -> Judgement | None:
    reference_runs = state.reference_samples(trial.parent)
    # Judge against best only once its noise baselines are in (the margin depends on them);
    # an older parent gets no more runs, so what it has must do.
    wanted = baseline_runs if trial.parent == state.best.commit else 1
    if len(reference_runs) < wanted and not (reference_runs and
                                             _baselines_given_up(state, baseline_runs)):
        return None
    reference = mean(reference_runs)
    gain = improvement(mean([m for m in metrics if m is not None]), reference, direction)
    verdict = success if gain > required else failure
    # A winner whose parent is no longer best must be re-based and re-run before it counts.
    if verdict in ("accept", "promising") and trial.parent != state.best.commit:
        verdict = "rebase"
    return Judgement(trial.id, verdict, reference, required, gain, len(metrics))


def budget_spent(state: SwarmState, stop: StopSpec) -> str | None:
    """Why no new proposal should start (owed confirmations still run), or None."""
    if stop.max_trials is not None and state.evaluations >= stop.max_trials:
        return f"max_trials reached ({stop.max_trials})"
    if stop.max_cost_usd is not None and state.cost_usd >= stop.max_cost_usd:
        return f"max_cost_usd reached (${state.cost_usd:.4f} of ${stop.max_cost_usd:g})"
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
    best_runs = state.best_samples()
    if stop.target_metric is not None and best_runs and improvement(
            mean(best_runs), stop.target_metric, direction) >= 0:
        return f"target_metric reached ({stop.target_metric})"
    return None


def recent_trials(state: SwarmState, limit: int = 20) -> list[dict]:
    """The latest candidates of every worker, for proposers to learn from: finished ones, then
    those running now (status "running"), so nobody proposes what another worker is trying."""
    candidates = [t for t in state.trials.values() if t.kind == "candidate"]
    finished = [t for t in candidates if t.status]
    running = [t for t in candidates if t.id in state.inflight]
    newest = (finished + running)[-limit:] if limit > 0 else []
    return [{"trial": t.id, "worker": t.worker, "hypothesis": t.hypothesis,
             "status": t.status or "running", "metric": t.metric, "verdict": t.verdict} for t in newest]


# What a worker may report; duplicate and stale_conflict are the coordinator's own findings.
_REPORTABLE = frozenset(get_args(TrialStatus)) - {"duplicate", "stale_conflict"}


def checked_status(outcome: TrialOutcome) -> tuple[str, str]:
    """The worker's status and reason, unless the report contradicts itself (workers are not
    trusted to be bug-free, and a volunteer's even less)."""
    if outcome.status not in _REPORTABLE:
        return "crash", f"the worker reported an unknown status {outcome.status!r}"
    metric = outcome.metric
    if outcome.status == "ok" and not (isinstance(metric, (int, float)) and math.isfinite(metric)):
        return "no_metric", f"reported ok without a finite metric ({metric!r})"
    return outcome.status, outcome.reason
