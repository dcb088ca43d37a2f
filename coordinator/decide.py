"""What the coordinator decides: who runs what next, what a result means, when to stop. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from coordinator.acceptance import ClassEvidence, Evidence, Level, Look, combine, in_order, is_worse, look
from coordinator.state import VOLUNTEER_CLASS, SwarmState, TrialRecord
from swarm.core.config import AcceptanceSpec, StopSpec, TieBreakSpec
from swarm.core.stats import Direction, Noise, improvement, margin, mean
from swarm.core.values import CandidateInfo, TrialDigest, TrialKind, TrialOutcome, TrialStatus, Verdict

__all__ = [
    "Assignment", "Judgement", "assign", "next_judgement", "next_judgements", "budget_spent", "stop_reason",
    "failed_stop", "refusal_budget", "broken_baseline",
    "recent_trials", "checked_status", "is_duplicate", "counted_runs", "orphaned_trials",
    "earlier_announcement", "union_tried",
]


@dataclass(frozen=True)
class Assignment:
    action: Literal["evaluate", "propose", "wait", "stop"]
    kind: TrialKind | None = None  # for evaluate
    commit: str = ""  # "" for a union: the coordinator merges its parts onto best first
    tree: str = ""
    parent: str = ""
    of: str | None = None
    hypothesis: str = ""
    wait_s: float = 0.0
    parts: tuple[str, ...] = ()  # a union to build and evaluate: its parts, the largest gain first


# A worker whose proposals keep being refused waits longer each time (0.5 s doubling to 30 s);
# when the whole swarm has had this many refusals in a row, the run stops and says why.
FREE_REFUSALS = 3
MAX_REFUSALS_IN_A_ROW = 100
# stop.max_refusals by default: this share of max_trials, at least REFUSALS_AT_LEAST (a few
# duplicates from workers racing to the same change are normal).
REFUSAL_SHARE = 0.5
REFUSALS_AT_LEAST = 10
# Baseline runs of best that crash are retried this many times beyond baseline_runs; then
# judgements use the runs best has.
BASELINE_RETRIES = 2
# Promising trials wait to be combined into a union until their gains add up to this many
# noise spreads (a union that small is told from luck in a run or two), or until the oldest
# has seen PATIENCE newer candidates start: per worker, at least PATIENCE_AT_LEAST (with one
# worker, the next few proposals are its partners' chance; with many, the next round or two).
UNION_READY_SPREADS = 4.0
PATIENCE_PER_WORKER = 4
PATIENCE_AT_LEAST = 4
# A promising trial that waited this many patiences with no union taking it races alone.
RACE_ALONE_AFTER = 4
# Of each trial's feedback, the digest every proposer sees holds this much (its own proposer
# saw all of it).
DIGEST_FEEDBACK_CHARS = 400
WIND_DOWN_ROUNDS = 1  # evaluations per worker that owed work may take past max_trials
MAX_BASELINES = 8
BASELINE_PER_WORKERS = 8
# Re-runs a union may have in flight at once: it decides sooner, and the rest of the swarm
# waits on it to build on the new best.
UNION_RUNS_AT_ONCE = 2


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
    baseline = _baseline(state, acceptance, hardware, len(live))
    if winding_down and not _judgements_wait_for(state, hardware):
        baseline = None  # no proposal will need it
    trusted = worker not in volunteers
    owed = (baseline
            or (_confirmation(state, worker, live - volunteers, acceptance, winding_down)
                if trusted else None)
            or (_union(state, acceptance, len(live), winding_down) if trusted else None)
            or _rebased_winner(state))
    if owed or winding_down:
        return owed or Assignment("stop")
    parent = frontier(state, acceptance)
    return _backoff(state, worker, now) or Assignment("propose", commit=parent, parent=parent)


def frontier(state: SwarmState, acceptance: AcceptanceSpec) -> str:
    """Where new proposals go: best, or under the test the union on best being judged now once
    its first run kept at least half of what its parts gained alone: such a union is usually
    accepted, and the proposals made on it while it is judged are then on best (no stale
    re-runs). One that looks no better than its parts is not built on."""
    union = _pending_union(state) if acceptance.noise_k is None else None
    if union is None or union.verdict != "promising":
        return state.current_best.commit
    parts_gain = math.fsum(state.trials[p].gain or 0.0 for p in union.parts)
    return union.commit if (union.gain or 0.0) >= 0.5 * parts_gain else state.current_best.commit


def on_best(state: SwarmState, trial: TrialRecord) -> bool:
    """The trial was made on best: on its commit, or on a union whose tree became best."""
    best = state.current_best
    return trial.parent == best.commit or state.tree_of.get(trial.parent) == best.tree


def _on_pending_union(state: SwarmState, trial: TrialRecord) -> bool:
    union = _pending_union(state)
    return union is not None and trial.parent == union.commit


def _judgements_wait_for(state: SwarmState, hardware: str) -> bool:
    """Some finished run on this class cannot be judged until best's baselines on it are in."""
    return any(on_best(state, state.trials[t])
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


def confirmations_wanted(trial: TrialRecord, acceptance: AcceptanceSpec) -> int:
    """The re-runs a winner gets before it may be accepted. A volunteer's winner is re-run on a
    trusted worker even when confirm_runs is 0. Under the point rule, a rebased winner's run on
    the new best is its first re-run: the change has beaten the margin on its old parent
    already, and a second confirmation round would let the next winner on the new best make
    it stale again."""
    confirm_runs = acceptance.confirm_runs
    if trial.volunteer:
        return max(confirm_runs, 1)
    if trial.kind == "candidate" and trial.of and acceptance.noise_k is not None:
        return max(confirm_runs - 1, 0)
    return confirm_runs


def _runs_owed(trial: TrialRecord, runs: list[TrialRecord], acceptance: AcceptanceSpec,
               pending: set[str], candidates_started: int, workers: int, winding_down: bool) -> int:
    """How many re-runs a promising trial should have (finished or in flight) now. The point
    rule fixes them in advance; the test races: one more at a time while it is undecided, unless
    it waits to be combined with others in a union."""
    wanted = confirmations_wanted(trial, acceptance)
    if acceptance.noise_k is not None:
        return wanted
    if _waits_for_union(trial, pending, candidates_started, workers, winding_down):
        return wanted
    finished = sum(1 for r in runs if r.status is not None)
    at_once = UNION_RUNS_AT_ONCE if trial.parts else 1
    # In batches of `at_once`: the next batch goes out once the whole last one is in and looked at.
    return min(max(wanted, at_once * (finished // at_once + 1)), acceptance.max_runs - 1)


def _waits_for_union(trial: TrialRecord, pending: set[str], candidates_started: int, workers: int,
                     winding_down: bool = False) -> bool:
    """A promising trial is a union's part-to-be while newer candidates may still bring it
    partners, or while a union holding it is being judged. `pending`: parts of the union being
    judged; `candidates_started`: in the whole run. Not a union, a volunteer's, or one whose
    union was not accepted: those race alone; and once the budget is spent no partner will
    come, so all race."""
    if trial.parts or trial.volunteer or trial.failed_union:
        return False
    if trial.id in pending:
        return True
    waited = candidates_started - trial.number
    return not winding_down and waited <= RACE_ALONE_AFTER * _patience(workers)


def _patience(workers: int) -> int:
    return max(PATIENCE_AT_LEAST, PATIENCE_PER_WORKER * workers)


def _pending_union_parts(state: SwarmState) -> set[str]:
    """Parts of the union on best that is running or awaiting its verdict."""
    union = _pending_union(state)
    return set(union.parts) if union else set()


def union_candidates(state: SwarmState, acceptance: AcceptanceSpec, workers: int = 1,
                     winding_down: bool = False) -> tuple[str, ...]:
    """Promising trials whose changes a union on best should combine, the largest gain first:
    two or more, when no union on best is pending and either their gains add up to
    UNION_READY_SPREADS noise spreads (once half a round of candidates started after the
    oldest) or the oldest has waited its patience. Only under the test; a volunteer's trial
    joins no union (it races alone, its re-runs on trusted workers)."""
    if acceptance.noise_k is not None or _pending_union(state) is not None:
        return ()
    parts = [state.trials[t] for t in state.awaiting]
    eligible = [t for t in parts if not t.parts and not t.volunteer and not t.failed_union
                and (t.gain or 0.0) > acceptance.min_delta]
    if len(eligible) < 2:
        return ()
    spread = state.noise(None).spread
    ready = spread is None or math.fsum(t.gain or 0.0 for t in eligible) >= UNION_READY_SPREADS * spread
    waited = len(state.candidate_ids) - min(t.number for t in eligible)
    # half a round of candidates after the first part: a union takes the wave, not its front
    if not (ready and waited >= workers // 2) and waited <= _patience(workers) and not winding_down:
        return ()
    return tuple(t.id for t in sorted(eligible, key=lambda t: (-(t.gain or 0.0), t.id)))


def _pending_union(state: SwarmState) -> TrialRecord | None:
    """The union on best that is running or awaiting its verdict (one at a time)."""
    union = state.trials[state.last_union] if state.last_union else None
    if union is None or union.parent != state.current_best.commit:
        return None
    running = union.status is None or (union.status == "ok" and union.verdict in (None, "promising"))
    return union if running else None


def _union(state: SwarmState, acceptance: AcceptanceSpec, workers: int, winding_down: bool) -> Assignment | None:
    parts = union_candidates(state, acceptance, workers, winding_down)
    if not parts:
        return None
    best = state.current_best
    return Assignment("evaluate", "candidate", parent=best.commit, parts=parts,
                      hypothesis="union of " + ", ".join(parts))


def _backoff(state: SwarmState, worker: str, now: float) -> Assignment | None:
    """A wait until the worker's back-off after its last refusal is over, else None."""
    streak = state.refusal_streak.get(worker, 0)
    if streak < FREE_REFUSALS:
        return None
    until = state.refused_at.get(worker, 0.0) + min(0.5 * 2 ** (streak - FREE_REFUSALS), 30.0)
    return Assignment("wait", wait_s=round(until - now, 3)) if now < until else None


def _confirmation(state: SwarmState, worker: str, trusted_live: set[str],
                  acceptance: AcceptanceSpec, winding_down: bool = False) -> Assignment | None:
    pending = _pending_union_parts(state) if acceptance.noise_k is None else set()
    for trial_id in state.awaiting:
        trial = state.trials[trial_id]
        if not on_best(state, trial):
            continue  # best moved: it will be rebased and re-run instead (see next_judgement)
        runs = state.confirmations(trial_id)
        busy = {trial.worker} | {run.worker for run in runs}
        # Re-runs belong on other workers; only when none is left may a worker confirm itself.
        wanted = _runs_owed(trial, runs, acceptance, pending, len(state.candidate_ids), len(trusted_live),
                            winding_down)
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


def _baseline(state: SwarmState, acceptance: AcceptanceSpec, hardware: str, workers: int) -> Assignment | None:
    """A fresh run of best on this class, while it has fewer than baseline_runs. Under the test
    only baselines count: the runs that made a winner best were chosen for being good, and
    judging the next candidates against them alone would hold every gain to too high a bar.
    A large swarm runs more of them (one per BASELINE_PER_WORKERS workers, up to MAX_BASELINES):
    every verdict on best is judged against them, and a noise known from one or two degrees of
    freedom makes even a large gain doubtful."""
    best, wanted = state.current_best, acceptance.baseline_runs
    if acceptance.noise_k is None:
        wanted = max(wanted, min(MAX_BASELINES, workers // BASELINE_PER_WORKERS))
    running = sum(1 for t in state.inflight if _is_baseline_of(state.trials[t], best.commit, hardware))
    have = (len(state.best_samples(hardware)) if acceptance.noise_k is not None
            else state.baseline_ok.get((best.commit, hardware), 0))
    if have + running >= wanted or _baselines_given_up(state, wanted, hardware):
        return None
    return Assignment("evaluate", "baseline", best.commit, best.tree, best.commit,
                      hypothesis="baseline run of best")


def _is_baseline_of(trial: TrialRecord, commit: str, hardware: str) -> bool:
    return trial.kind == "baseline" and trial.commit == commit and trial.hardware == hardware


def _baselines_given_up(state: SwarmState, wanted: int, hardware: str) -> bool:
    """Best's baselines on this class failed so often that re-running it more would never end."""
    return state.baseline_tries.get((state.current_best.commit, hardware), 0) >= wanted + BASELINE_RETRIES


def next_judgement(state: SwarmState, acceptance: AcceptanceSpec, direction: Direction, workers: int = 1,
                   winding_down: bool = False, tiebreaks: Sequence[TieBreakSpec] = ()) -> Judgement | None:
    """The next verdict that can be made now; acceptances first, the largest gain first."""
    found = next_judgements(state, acceptance, direction, workers, winding_down, tiebreaks)
    return found[0] if found else None


def next_judgements(state: SwarmState, acceptance: AcceptanceSpec, direction: Direction, workers: int = 1,
                    winding_down: bool = False, tiebreaks: Sequence[TieBreakSpec] = ()) -> list[Judgement]:
    """The verdicts that can be made now: the acceptance with the largest gain alone (it moves
    best, and so changes every later verdict), or else every other verdict, in trial order
    (none of them changes another's). `tiebreaks` decide, in order, between candidates tied on
    the metric (see acceptance.in_order)."""
    union = _pending_union(state) if acceptance.noise_k is None else None
    judge = _Judge(direction, acceptance, tuple(tiebreaks))
    found = [j for j in _candidate_judgements(state, acceptance, judge)
             + _confirmation_judgements(state, acceptance, judge, workers, winding_down)
             if j and not (j.verdict == "accepted" and _larger_step_running(state, j))
             # a union being judged carries more than one of its parts, or than one change beside it
             and not (j.verdict == "accepted" and union is not None and j.trial != union.id)]
    accepts = [j for j in found if j.verdict == "accepted"]
    if accepts:
        return [max(accepts, key=lambda j: j.improvement)]
    return sorted(found, key=lambda j: j.trial)


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


def _candidate_judgements(state: SwarmState, acceptance: AcceptanceSpec, judge: _Judge) -> list[Judgement | None]:
    """First looks: a candidate whose first run finished."""
    found: list[Judgement | None] = []
    for trial_id in sorted(state.unjudged):
        trial = state.trials[trial_id]
        confirmed = confirmations_wanted(trial, acceptance) > 0
        judged = judge(state, trial, [trial])
        if judged is None:
            found.append(None)
            continue
        evidence, seen = judged
        verdict: Verdict = ("accepted" if seen.outcome == "clear" and not confirmed
                            else "discard" if seen.outcome == "lost" else "promising")
        found.append(_judgement(state, trial, verdict, evidence, seen, acceptance,
                                _union_falls_short(state, trial, evidence)))
    return found


def _confirmation_judgements(state: SwarmState, acceptance: AcceptanceSpec, judge: _Judge,
                             workers: int, winding_down: bool) -> list[Judgement | None]:
    """Later looks: a promising trial whose re-runs owed so far have finished."""
    found: list[Judgement | None] = []
    testing = acceptance.noise_k is None
    pending = _pending_union_parts(state) if testing else set()
    for trial_id in state.awaiting:
        trial = state.trials[trial_id]
        stale = not on_best(state, trial)  # judge now on the runs it has, then rebase
        # The filters below only skip; the cheap ones go first (a large swarm holds hundreds
        # of stale winners waiting for a union, and this runs twice per result).
        if stale and _on_pending_union(state, trial):
            continue  # made on the union being judged: its parent's verdict comes first
        if testing and stale and _waits_for_union(trial, pending, len(state.candidate_ids), workers, winding_down):
            continue  # a union on the new best may take its change as it is
        runs = state.confirmations(trial_id)
        wanted = confirmations_wanted(trial, acceptance)
        if any(r.status is None for r in runs) or (len(runs) < wanted and not stale):
            continue
        if testing and not stale and 1 + len(runs) <= trial.judged_runs:
            continue  # no run since its last look: it waits for a union or another run
        failed = [r for r in runs if r.status != "ok"]
        if failed:
            found.append(Judgement(trial_id, "unconfirmed", 0.0, _bar(state, acceptance, trial.hardware),
                                   0.0, len(runs) + 1, f"confirmation {failed[0].id} ended {failed[0].status}"))
            continue
        # A stale volunteer winner nobody trusted re-ran yet goes on its screening run: at
        # most it is rebased and re-run, which its volunteer flag makes confirmed again.
        counted = counted_runs(state, trial_id) or [trial]
        judged = judge(state, trial, counted)
        if judged is None:
            found.append(None)
            continue
        evidence, seen = judged
        if seen.outcome == "undecided" and not stale:
            continue  # racing: it is owed another run
        verdict: Verdict = "accepted" if seen.outcome == "clear" else "unconfirmed"
        if seen.outcome == "undecided" and evidence.gain > acceptance.min_delta:
            verdict = "accepted"  # stale and still in the race: its replay onto best decides
        found.append(_judgement(state, trial, verdict, evidence, seen, acceptance,
                                _union_falls_short(state, trial, evidence)))
    return found


def _judgement(state: SwarmState, trial: TrialRecord, verdict: Verdict, evidence: Evidence,
               seen: Look, acceptance: AcceptanceSpec, short: str | None = None) -> Judgement:
    reason = f"tied on the metric, better on {seen.by}" if seen.by else ""
    if verdict == "accepted" and short:
        verdict, reason = "discard", short  # its parts race alone
    # A winner whose parent is no longer best must be re-based and re-run before it counts.
    # Under the test, its first look makes it a union's part-to-be on the new best instead: a
    # union replays its change there (and the union's runs judge it); alone, it is rebased later.
    stale = not on_best(state, trial)
    if stale and verdict in ("accepted", "promising") and acceptance.noise_k is None \
            and not trial.parts and trial.id in state.unjudged and not trial.volunteer:
        verdict = "promising"
    elif stale and verdict in ("accepted", "promising"):
        verdict = "rebased"
    required = seen.required if math.isfinite(seen.required) else 0.0
    gain = evidence.point_gain if acceptance.noise_k is not None else evidence.gain
    return Judgement(trial.id, verdict, evidence.reference, required, gain, evidence.runs, reason)


def _union_falls_short(state: SwarmState, trial: TrialRecord, evidence: Evidence) -> str | None:
    """Why a union that beat best is still worse than its best part alone (then the part wins
    on its own), or None. Worse means below that part's gain by more than two standard errors
    of the union's estimate: the part's one run is noisy, and was chosen for being good."""
    if not trial.parts:
        return None
    best_part = max((state.trials[p] for p in trial.parts), key=lambda t: t.gain or 0.0)
    slack = 2 * evidence.se if evidence.se is not None else 0.0
    if evidence.gain + slack < (best_part.gain or 0.0):
        return (f"the union gained {evidence.gain:.6g}, less than its part {best_part.id} alone "
                f"({best_part.gain or 0.0:.6g})")
    return None


@dataclass(frozen=True)
class _Judge:
    """Judges a trial on its counted runs: the metric, then each tie-breaker (acceptance's
    in_order), every one with its own noise and min_delta."""

    direction: Direction
    acceptance: AcceptanceSpec
    tiebreaks: tuple[TieBreakSpec, ...] = ()

    def __call__(self, state: SwarmState, trial: TrialRecord,
                 runs: list[TrialRecord]) -> tuple[Evidence, Look] | None:
        """Each run is compared with the parent's runs on its own class of hardware. None when
        the look must wait (best's baselines on a class are owed); a trial whose parent nobody
        of its class ever measured is judged lost."""
        acceptance = self.acceptance
        if _on_pending_union(state, trial):
            return None  # made on the union being judged: its parent's verdict comes first
        is_on_best = on_best(state, trial)
        # Judge against best only once its baselines are in (the noise and the reference depend
        # on them); an older parent gets no more runs, so what it has must do.
        wanted = acceptance.baseline_runs if is_on_best else 1
        by_class: dict[str, list[TrialRecord]] = {}
        for run in runs:
            reference = state.reference_samples(trial.parent, run.hardware, _fresh(acceptance))
            if len(reference) < wanted:
                if is_on_best and not _baselines_given_up(state, acceptance.baseline_runs, run.hardware):
                    return None  # its baselines on this class are owed: wait for them
                if not reference and _baseline_running(state, trial.parent, run.hardware):
                    return None  # its parent's run on this class is seconds away
                if not reference:
                    continue  # no class-mate ever measured the parent: this run cannot count
            assert run.metric is not None, "only ok runs, which have a metric, are judged"
            by_class.setdefault(run.hardware, []).append(run)
        if not by_class:
            lost = Look("lost", 0.0)
            return Evidence(0.0, None, 0, len(runs), 0.0, None, 0.0), lost
        classes = [_class_evidence(state, trial.parent, cls, [r.metric for r in class_runs if r.metric is not None],
                                   self.direction, _fresh(acceptance))
                   for cls, class_runs in by_class.items()]
        evidence = combine(classes)
        # every run it had counts against max_runs, a volunteer's own screening run too
        looks_so_far = 1 + len(state.confirmations(trial.id))
        seen = look(evidence, acceptance, looks_so_far)
        if not self.tiebreaks or seen.outcome == "clear":
            return evidence, seen
        levels = [Level("", evidence, seen, is_worse(evidence, acceptance))]
        levels += [self._level(state, trial.parent, by_class, spec, looks_so_far) for spec in self.tiebreaks]
        return evidence, in_order(levels)

    def _level(self, state: SwarmState, parent: str, by_class: dict[str, list[TrialRecord]],
               spec: TieBreakSpec, looks_so_far: int) -> Level:
        """A tie-breaker's look, on the same runs and references as the metric's."""
        acceptance = self.acceptance.model_copy(update={"min_delta": spec.min_delta})
        classes = []
        for cls, class_runs in by_class.items():
            values = state.values_of(spec.name, (r.id for r in class_runs))
            reference = state.reference_values(spec.name, parent, cls, _fresh(acceptance))
            if len(values) < len(class_runs) or not reference:
                return Level(spec.name, None, Look("lost", math.inf), False)  # not recorded: it cannot break a tie
            centre = mean(reference)
            own = state.noise_of(spec.name, cls)
            noise = own if own.spread is not None else state.noise_of(spec.name)
            classes.append(ClassEvidence(
                improvement(mean(values), centre, spec.direction), len(values), len(reference), centre,
                noise, tuple(improvement(v, centre, spec.direction) for v in values)))
        evidence = combine(classes)
        seen = look(evidence, acceptance, looks_so_far)
        return Level(spec.name, evidence, seen, is_worse(evidence, acceptance))


def _fresh(acceptance: AcceptanceSpec) -> int:
    """Under the test, best's fresh baselines are the reference once there are baseline_runs of
    them (the point rule compares with every run of best, as it always did)."""
    return acceptance.baseline_runs if acceptance.noise_k is None else 0


def _class_evidence(state: SwarmState, parent: str, hardware: str, metrics: list[float],
                    direction: Direction, fresh: int) -> ClassEvidence:
    reference = state.reference_samples(parent, hardware, fresh)
    centre = mean(reference)
    return ClassEvidence(improvement(mean(metrics), centre, direction), len(metrics), len(reference), centre,
                         _noise(state, hardware), tuple(improvement(m, centre, direction) for m in metrics))


def _noise(state: SwarmState, hardware: str) -> Noise:
    """A class's own noise once some code ran twice on it, until then the trusted classes'."""
    own = state.noise(hardware)
    return own if own.spread is not None else state.noise(None)


def _bar(state: SwarmState, acceptance: AcceptanceSpec, hardware: str) -> float:
    """The gain a trial on this class had to beat, for the record of a verdict made without a
    look: the point rule's margin, or min_delta."""
    if acceptance.noise_k is None:
        return acceptance.min_delta
    return margin(acceptance.min_delta, acceptance.noise_k, _noise(state, hardware).spread)


def _baseline_running(state: SwarmState, commit: str, hardware: str) -> bool:
    return any(_is_baseline_of(state.trials[t], commit, hardware) for t in state.inflight)


def budget_spent(state: SwarmState, stop: StopSpec) -> str | None:
    """Why no new proposal should start (owed confirmations still run), or None."""
    if stop.max_trials is not None and state.evaluations >= stop.max_trials:
        return f"max_trials reached ({stop.max_trials})"
    if stop.max_cost_usd is not None and state.cost.usd >= stop.max_cost_usd:
        return f"max_cost_usd reached (${state.cost.usd:.4f} of ${stop.max_cost_usd:g})"
    return None


def stop_reason(state: SwarmState, stop: StopSpec, direction: Direction, elapsed_s: float,
                requested: bool, workers: int = 1, acceptance: AcceptanceSpec | None = None) -> str | None:
    """Why no new work at all should start, or None to go on. Owed work past `max_trials` may
    take one more evaluation per worker: racing could otherwise ask up to `max_runs - 1` more
    of every promising trial, and a user's budget of 6 became 9. A race cut short stays
    promising; a resume with a larger budget goes on with it. A broken target or proposer
    (`failed_stop`) comes last: a run that reached a rule of its own has not failed, whatever
    the proposals prepared for it cost as it stopped."""
    if requested:
        return "stop requested"
    if stop.max_trials is not None and state.evaluations >= stop.max_trials + WIND_DOWN_ROUNDS * workers:
        return f"max_trials reached ({stop.max_trials}) and its wind-down ({WIND_DOWN_ROUNDS * workers} more) spent"
    if stop.hours is not None and elapsed_s >= stop.hours * 3600:
        return f"hours reached ({stop.hours})"
    best_runs = state.trusted_best_samples()  # a volunteer's claim cannot end the run
    if stop.target_metric is not None and best_runs and improvement(
            mean(best_runs), stop.target_metric, direction) >= 0:
        return f"target_metric reached ({stop.target_metric})"
    return failed_stop(state, stop, acceptance or AcceptanceSpec())


def failed_stop(state: SwarmState, stop: StopSpec, acceptance: AcceptanceSpec) -> str | None:
    """Why the run cannot go on with this target or proposer (the run ends with exit 2), or
    None: best's baseline fails every time, or proposals keep being refused."""
    if state.refusals_in_a_row >= MAX_REFUSALS_IN_A_ROW:
        return (f"{state.refusals_in_a_row} proposals in a row were refused; "
                f"the last: {state.last_refusal[:200]}")
    return broken_baseline(state, acceptance) or _refusals_spent(state, stop)


def broken_baseline(state: SwarmState, acceptance: AcceptanceSpec) -> str | None:
    """Best's baseline failed baseline_runs times in a row on a class where no run of its code
    ever succeeded: every candidate on it would be judged against nothing."""
    best = state.current_best
    for (commit, hardware), tries in state.baseline_tries.items():
        if commit != best.commit or tries < acceptance.baseline_runs or hardware.startswith(VOLUNTEER_CLASS):
            continue  # a volunteer's broken machine is its own trouble, not the run's
        if state.baseline_ok.get((commit, hardware), 0) or state.samples.get(best.tree, {}).get(hardware):
            continue
        latest = _latest_baseline(state, commit, hardware)
        what = f"trial {latest.id} ended {latest.status}: {latest.reason}" if latest else "see logs/"
        return (f"best's baseline failed {tries} times in a row on {hardware or 'this hardware'}; "
                f"the latest, {what}")
    return None


def _latest_baseline(state: SwarmState, commit: str, hardware: str) -> TrialRecord | None:
    for trial_id in reversed(state.finish_order):
        trial = state.trials[trial_id]
        if _is_baseline_of(trial, commit, hardware) and trial.status != "lost":
            return trial
    return None


def refusal_budget(stop: StopSpec) -> int | None:
    """stop.max_refusals, or its default: a share of max_trials (None: no budget but the
    MAX_REFUSALS_IN_A_ROW rule, when max_trials is unset too)."""
    if stop.max_refusals is not None:
        return stop.max_refusals
    if stop.max_trials is None:
        return None
    return max(REFUSALS_AT_LEAST, math.ceil(REFUSAL_SHARE * stop.max_trials))


def _refusals_spent(state: SwarmState, stop: StopSpec) -> str | None:
    budget, refused = refusal_budget(stop), sum(state.session_refusals.values())
    if budget is None or refused < budget:
        return None
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(state.session_refusals.items()))
    touched = sorted(state.refused_paths.items(), key=lambda item: (-item[1], item[0]))
    paths = ", ".join(f"{path} ({n} times)" for path, n in touched[:5])
    kept = f"; the proposer kept touching {paths}, outside target.editable or readonly" if paths else ""
    return (f"{refused} proposals were refused or failed this session (stop.max_refusals {budget}): "
            f"{kinds}{kept}; the last: {state.last_refusal[:200]}")


def recent_trials(state: SwarmState, limit: int = 20) -> tuple[TrialDigest, ...]:
    """The latest candidates of every worker, for proposers to learn from: finished ones, then
    those running now (status "running"), so nobody proposes what another worker is trying."""
    if limit <= 0:
        return ()
    running = sorted(t for t in state.inflight if state.trials[t].kind == "candidate")[-limit:]
    finished: list[str] = []
    for trial_id in reversed(state.candidate_ids):
        if len(finished) + len(running) >= limit:
            break
        if state.trials[trial_id].status is not None:
            finished.append(trial_id)
    newest = [state.trials[t] for t in [*reversed(finished), *running]]
    return tuple(TrialDigest(t.id, t.worker, t.hypothesis, t.status or "running", t.metric, t.verdict,
                             _excerpt(t.feedback, DIGEST_FEEDBACK_CHARS))
                 for t in newest)


def _excerpt(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + " [...]"


def union_tried(state: SwarmState, parent: str, tree: str) -> bool:
    """The same union was run on this parent already; one whose run was lost (its worker died)
    may be built again."""
    unions = (state.trials[u] for u in state.unions)
    return any(u.parent == parent and u.tree == tree and u.status != "lost" for u in unions)


def is_duplicate(state: SwarmState, parent: str, tree: str) -> bool:
    """The same change was tried on this parent already, or it changes nothing."""
    return tree in state.tried.get(parent, ()) or tree == state.tree_of.get(parent)


def earlier_announcement(state: SwarmState, info: CandidateInfo, session: str) -> TrialRecord | None:
    """The trial this announcement already started, when it is a retry (a coordinator that
    restarted mid-call answered nothing): the worker's last trial of the session, on the same
    parent and tree, still running or refused as a duplicate."""
    last_id = state.last_of.get((info.worker_id, session))
    last = state.trials[last_id] if last_id else None
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
