"""The coordinator's decisions, from states rebuilt by replaying hand-written ledger events.

Noise fixture: best c0 (tree t0) has baselines 0.75, 1.0, 1.25: mean 1.0, pooled spread 0.25,
so with noise_k 2 and min_delta 0 a result must beat 1.0 by more than 0.5.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from coordinator.decide import (
    Assignment, Judgement, assign, budget_spent, checked_status, counted_runs,
    earlier_announcement, is_duplicate, next_judgement, orphaned_trials, recent_trials,
    stop_reason,
)
from coordinator.state import BestRecord, RebasedWinner, RunInfo, SwarmState, TrialRecord
from swarm.core.config import AcceptanceSpec, StopSpec
from swarm.core.events import EventError, parse_event
from swarm.core.values import CandidateInfo, Cost, TrialDigest, TrialOutcome

ACCEPT = AcceptanceSpec(min_delta=0.0, noise_k=2.0, baseline_runs=3, confirm_runs=1)
AT_ONCE = AcceptanceSpec(min_delta=0.0, noise_k=2.0, baseline_runs=3, confirm_runs=0)
LIVE = {"w0", "w1", "w2"}

Event = dict[str, Any]


def feed(state: SwarmState, event: Event) -> None:
    """Applies a hand-written event as the ledger reader would: parsed into its typed form."""
    state.apply(parse_event(event))


def replay(*groups: list[Event]) -> SwarmState:
    state = SwarmState()
    for group in groups:
        for event in group:
            feed(state, event)
    return state


def started(trial: str, kind: str, worker: str, commit: str, tree: str, parent: str = "c0",
            **extra: Any) -> Event:
    return {"event": "trial_started", "trial": trial, "kind": kind, "worker": worker,
            "commit": commit, "tree": tree, "parent": parent, "session": "s1", **extra}


def finished(trial: str, status: str = "ok", metric: float | None = None, **extra: Any) -> Event:
    return {"event": "trial_finished", "trial": trial, "status": status, "metric": metric, **extra}


def verdict(trial: str, name: str, **extra: Any) -> Event:
    return {"event": "verdict", "trial": trial, "verdict": name, **extra}


START = [
    {"event": "run_started", "commit": "c0", "tree": "t0", "readonly_hashes": {},
     "config": {"name": "t"}},
    {"event": "session_started", "session": "s1"},
]
BASELINES = [  # 00001..00003: mean 1.0, spread 0.25
    started("00001", "baseline", "w0", "c0", "t0"), finished("00001", metric=0.75),
    started("00002", "baseline", "w1", "c0", "t0"), finished("00002", metric=1.0),
    started("00003", "baseline", "w2", "c0", "t0"), finished("00003", metric=1.25),
]


def candidate(trial: str, worker: str, metric: float | None, commit: str = "", tree: str = "",
              parent: str = "c0", **extra: Any) -> list[Event]:
    """A candidate started and, unless metric is None, finished ok."""
    n = trial[-1]
    events = [started(trial, "candidate", worker, commit or f"c{n}", tree or f"t{n}", parent,
                      hypothesis=f"h{n}", **extra)]
    return events + ([finished(trial, metric=metric)] if metric is not None else [])


def promising(metric: float = 0.25) -> list[Event]:
    """Candidate 00004 by w0 (c4/t4) judged promising, awaiting confirmation."""
    return candidate("00004", "w0", metric) + [verdict("00004", "promising")]


# -- replay ------------------------------------------------------------------------------

def test_replay_is_deterministic() -> None:
    events = START + BASELINES + promising() + [
        started("00005", "confirm", "w1", "c4", "t4", of="00004"), finished("00005", metric=0.25),
        verdict("00004", "accepted", best_commit="b4"),
    ] + candidate("00006", "w2", 0.5, parent="b4")
    first, second = replay(events), replay(events)
    assert (first.trials, first.best, first.samples) == (second.trials, second.best, second.samples)
    assert first == second


def test_run_started_sets_initial_best() -> None:
    state = replay(START)
    assert (state.best, state.history, state.tree_of) == (
        BestRecord("c0", "t0", None, "the target as given"),
        [BestRecord("c0", "t0", None, "the target as given")], {"c0": "t0"})


def test_run_started_keeps_run_info_without_event_and_ts() -> None:
    state = replay([dict(START[0], ts=1.0)])
    assert state.run_info == RunInfo(commit="c0", tree="t0", readonly_hashes={}, config={"name": "t"})


def test_trial_started_records_trial_in_flight() -> None:
    state = replay(START, candidate("00001", "w1", None, cost_usd=0.25))
    assert state.trials["00001"] == TrialRecord(
        id="00001", kind="candidate", worker="w1", commit="c1", tree="t1", parent="c0",
        session="s1", hypothesis="h1", cost=Cost(usd=0.25))
    assert (state.inflight, state.tried, state.cost.usd) == ({"00001": "w1"}, {"c0": {"t1": None}}, 0.25)


def test_trial_finished_records_result() -> None:
    state = replay(START, [started("00001", "baseline", "w0", "c0", "t0"),
                           finished("00001", metric=0.5, metrics={"peak_vram_mb": 10.0},
                                    seconds=2.0, hardware="cpu")])
    trial = state.trials["00001"]
    assert (trial.status, trial.metric, trial.metrics, trial.seconds, trial.hardware) == (
        "ok", 0.5, {"peak_vram_mb": 10.0}, 2.0, "cpu")
    assert (state.inflight, state.samples) == ({}, {"t0": {"cpu": [0.5]}})


def test_finished_ok_candidate_is_unjudged() -> None:
    state = replay(START, BASELINES, candidate("00004", "w0", 0.5))
    assert state.unjudged == {"00004"}


def test_crashed_trial_adds_no_sample() -> None:
    state = replay(START, [started("00001", "baseline", "w0", "c0", "t0"),
                           finished("00001", "crash", reason="exit code 1")])
    assert (state.samples, state.trials["00001"].reason) == ({}, "exit code 1")


def test_evaluations_count_what_ran_and_what_runs() -> None:
    state = replay(START, [
        started("00001", "baseline", "w0", "c0", "t0"), finished("00001", metric=1.0),
        started("00002", "candidate", "w1", "c2", "t2"), finished("00002", "duplicate"),
        started("00003", "candidate", "w1", "c3", "t3"), finished("00003", "out_of_scope"),
        started("00004", "candidate", "w2", "c4", "t4"), finished("00004", "lost"),
        started("00005", "candidate", "w0", "c5", "t5"), finished("00005", "crash"),
        started("00006", "candidate", "w1", "c6", "t6"), finished("00006", "timeout"),
        started("00007", "candidate", "w2", "c7", "t7"),  # in flight
    ])
    assert state.evaluations == 4  # 00001, 00005, 00006, 00007


def test_proposal_failed_counts_and_costs() -> None:
    state = replay(START, [{"event": "proposal_failed", "worker": "w0", "cost_usd": 0.5},
                           {"event": "proposal_failed", "worker": "w1"}])
    assert (state.proposal_failures, state.cost.usd, state.evaluations) == (2, 0.5, 0)


def test_unknown_event_is_refused() -> None:
    with pytest.raises(EventError, match="^unknown event kind 'bogus'; a ledger holds only run_started, "):
        feed(SwarmState(), {"event": "bogus"})


def test_next_trial_id_follows_the_trials() -> None:
    assert replay(START, BASELINES).next_trial_id() == "00004"


# -- verdict events ----------------------------------------------------------------------

def test_promising_verdict_awaits_confirmation() -> None:
    state = replay(START, BASELINES, promising())
    assert (state.awaiting, state.unjudged, state.trials["00004"].verdict) == (
        ["00004"], set(), "promising")


def test_accepted_verdict_moves_best_and_grows_history() -> None:
    state = replay(START, BASELINES, promising(), [
        started("00005", "confirm", "w1", "c4", "t4", of="00004"), finished("00005", metric=0.25),
        verdict("00004", "accepted", best_commit="b4"),
    ])
    assert state.best == BestRecord("b4", "t4", "00004", "h4")
    assert state.history == [BestRecord("c0", "t0", None, "the target as given"), state.best]
    assert (state.awaiting, state.tree_of["b4"], state.best_samples()) == ([], "t4", [0.25, 0.25])


def test_unconfirmed_verdict_stops_awaiting() -> None:
    state = replay(START, BASELINES, promising(), [
        started("00005", "confirm", "w1", "c4", "t4", of="00004"), finished("00005", "crash"),
        verdict("00004", "unconfirmed")])
    assert (state.awaiting, state.best.commit) == ([], "c0")


def test_rebased_verdict_of_a_promising_trial_stops_awaiting() -> None:
    state = replay(START, BASELINES, promising(),
                   [verdict("00004", "rebased", commit="r4", tree="u4", parent="b9")])
    assert (state.awaiting, [r.of for r in state.rebase_queue]) == ([], ["00004"])


def test_rebased_verdict_queues_the_picked_commit() -> None:
    state = replay(START, BASELINES, candidate("00004", "w0", 0.25),
                   [verdict("00004", "rebased", commit="r4", tree="u4", parent="b9")])
    assert state.rebase_queue == [RebasedWinner("r4", "u4", "b9", "00004", "h4")]


def test_starting_the_rebased_commit_takes_it_off_the_queue() -> None:
    state = replay(START, BASELINES, candidate("00004", "w0", 0.25), [
        verdict("00004", "rebased", commit="r4", tree="u4", parent="b9"),
        started("00005", "candidate", "w1", "r4", "u4", "b9", of="00004", hypothesis="h4"),
    ])
    assert state.rebase_queue == []


def test_lost_rebased_candidate_is_queued_again() -> None:
    state = replay(START, BASELINES, candidate("00004", "w0", 0.25), [
        verdict("00004", "rebased", commit="r4", tree="u4", parent="b9"),
        started("00005", "candidate", "w1", "r4", "u4", "b9", of="00004", hypothesis="h4"),
        finished("00005", "lost"),
    ])
    assert state.rebase_queue == [RebasedWinner("r4", "u4", "b9", "00004", "h4")]


def test_lost_plain_candidate_is_not_queued() -> None:
    state = replay(START, BASELINES, candidate("00004", "w0", None), [finished("00004", "lost")])
    assert state.rebase_queue == []


# -- assign ------------------------------------------------------------------------------

def test_fresh_run_hands_out_a_baseline() -> None:
    assert assign(replay(START), "w0", LIVE, ACCEPT, None) == Assignment(
        "evaluate", "baseline", "c0", "t0", "c0", hypothesis="baseline run of best")


def test_baselines_in_flight_count_towards_baseline_runs() -> None:
    state = replay(START, [started(f"0000{i}", "baseline", "w0", "c0", "t0") for i in (1, 2, 3)])
    assert assign(state, "w1", LIVE, ACCEPT, None) == Assignment(
        "propose", commit="c0", parent="c0")


def test_two_baselines_done_and_one_running_is_enough() -> None:
    state = replay(START, BASELINES[:4], [started("00003", "baseline", "w2", "c0", "t0")])
    assert assign(state, "w0", LIVE, ACCEPT, None).action == "propose"


def test_crashed_baseline_is_handed_out_again() -> None:
    state = replay(START, BASELINES[:4], [started("00003", "baseline", "w2", "c0", "t0"),
                                          finished("00003", "crash")])
    assert assign(state, "w0", LIVE, ACCEPT, None).kind == "baseline"


def test_with_baselines_done_a_worker_proposes_on_best() -> None:
    assert assign(replay(START, BASELINES), "w0", LIVE, ACCEPT, None) == Assignment(
        "propose", commit="c0", parent="c0")


def test_another_worker_gets_the_confirmation() -> None:
    state = replay(START, BASELINES, promising())
    assert assign(state, "w1", LIVE, ACCEPT, None) == Assignment(
        "evaluate", "confirm", "c4", "t4", "c0", of="00004", hypothesis="h4")


def test_own_worker_does_not_confirm_while_another_is_live() -> None:
    state = replay(START, BASELINES, promising())
    assert assign(state, "w0", {"w0", "w1"}, ACCEPT, None) == Assignment(
        "propose", commit="c0", parent="c0")


def test_own_worker_confirms_when_it_is_the_only_live_worker() -> None:
    state = replay(START, BASELINES, promising())
    assert assign(state, "w0", {"w0"}, ACCEPT, None).kind == "confirm"


def test_confirmation_in_flight_is_not_handed_out_twice() -> None:
    state = replay(START, BASELINES, promising(),
                   [started("00005", "confirm", "w1", "c4", "t4", of="00004")])
    assert assign(state, "w2", LIVE, ACCEPT, None).action == "propose"


def test_lost_confirmation_is_handed_out_again() -> None:
    state = replay(START, BASELINES, promising(),
                   [started("00005", "confirm", "w1", "c4", "t4", of="00004"),
                    finished("00005", "lost")])
    assert assign(state, "w2", LIVE, ACCEPT, None).kind == "confirm"


def test_second_confirmation_goes_to_a_third_worker() -> None:
    twice = AcceptanceSpec(min_delta=0.0, noise_k=2.0, baseline_runs=3, confirm_runs=2)
    state = replay(START, BASELINES, promising(),
                   [started("00005", "confirm", "w1", "c4", "t4", of="00004")])
    assert [assign(state, w, LIVE, twice, None).kind for w in ("w0", "w1", "w2")] == [
        None, None, "confirm"]


def _rebased_with_new_best() -> SwarmState:
    """00005 accepted as b5 (one sample, so best wants baselines); 00004 rebased onto it."""
    return replay(START, BASELINES, candidate("00004", "w0", 0.25), candidate("00005", "w1", 0.0), [
        verdict("00005", "accepted", best_commit="b5"),
        verdict("00004", "rebased", commit="r4", tree="u4", parent="b5"),
    ])


def test_best_s_baselines_come_before_a_rebased_winner_that_will_be_judged_on_them() -> None:
    state = _rebased_with_new_best()
    assert assign(state, "w2", LIVE, AT_ONCE, None).kind == "baseline"
    for trial, worker in (("00006", "w2"), ("00007", "w0")):  # best's second and third runs
        feed(state, started(trial, "baseline", worker, "b5", "t5", parent="b5"))
    assert assign(state, "w1", LIVE, AT_ONCE, None) == Assignment(
        "evaluate", "candidate", "r4", "u4", "b5", of="00004", hypothesis="h4")


def test_after_the_rebased_winner_starts_baselines_of_the_new_best_follow() -> None:
    state = _rebased_with_new_best()
    feed(state, started("00006", "candidate", "w2", "r4", "u4", "b5", of="00004"))
    assert assign(state, "w0", LIVE, AT_ONCE, None) == Assignment(
        "evaluate", "baseline", "b5", "t5", "b5", hypothesis="baseline run of best")


def test_confirmation_comes_before_rebased_winner() -> None:
    state = replay(START, BASELINES, promising(), candidate("00005", "w1", 0.0), [
        verdict("00005", "rebased", commit="r5", tree="u5", parent="c0")])
    assert assign(state, "w2", LIVE, ACCEPT, None).kind == "confirm"


def test_stopping_stops() -> None:
    state = replay(START, BASELINES, promising())
    assert assign(state, "w1", LIVE, ACCEPT, "stop requested") == Assignment("stop")


def test_winding_down_still_hands_out_owed_confirmation() -> None:
    state = replay(START, BASELINES, promising())
    assert assign(state, "w1", LIVE, ACCEPT, None, winding_down=True).kind == "confirm"


def test_winding_down_still_hands_out_rebased_winner() -> None:
    state = _rebased_with_new_best()
    assert assign(state, "w2", LIVE, AT_ONCE, None, winding_down=True).commit == "r4"


def test_winding_down_without_owed_work_stops() -> None:
    assert assign(replay(START), "w0", LIVE, ACCEPT, None, winding_down=True) == Assignment("stop")


# -- next_judgement ----------------------------------------------------------------------

def test_nothing_to_judge() -> None:
    assert next_judgement(replay(START, BASELINES), ACCEPT, "minimize") is None


STRICT = AcceptanceSpec(min_delta=0.8, noise_k=2.0, baseline_runs=3, confirm_runs=1)


# Best's baselines: mean 1.0, pooled spread 0.25, so with noise_k=2 the margin is 0.5.
@pytest.mark.parametrize(("metric", "acceptance", "direction", "verdict", "required", "gain"), [
    (0.25, ACCEPT, "minimize", "promising", 0.5, 0.75),   # beyond the noise: confirm it
    (0.25, AT_ONCE, "minimize", "accepted", 0.5, 0.75),     # confirm_runs 0: accepted at once
    (0.5, ACCEPT, "minimize", "discard", 0.5, 0.5),       # exactly the margin is not enough
    (0.25, STRICT, "minimize", "discard", 0.8, 0.75),     # min_delta above the noise rules
    (1.75, ACCEPT, "maximize", "promising", 0.5, 0.75),
    (0.25, ACCEPT, "maximize", "discard", 0.5, -0.75),
], ids=["promising", "accept-at-once", "margin-exactly", "min-delta", "max-higher", "max-lower"])
def test_a_candidate_on_best_is_judged_against_the_margin(
        metric: float, acceptance: AcceptanceSpec, direction: str, verdict: str, required: float,
        gain: float) -> None:
    state = replay(START, BASELINES, candidate("00004", "w0", metric))
    assert next_judgement(state, acceptance, direction) == Judgement(
        "00004", verdict, reference=1.0, required=required, improvement=gain, runs=1)


def test_candidate_is_deferred_until_its_parent_has_a_sample() -> None:
    state = replay(START, [started("00001", "baseline", "w0", "c0", "t0")],
                   candidate("00002", "w1", 0.25))
    assert next_judgement(state, ACCEPT, "minimize") is None


def test_deferred_candidate_is_judged_once_best_has_its_baseline_runs() -> None:
    early = [started("00001", "baseline", "w0", "c0", "t0"), started("00002", "baseline", "w2", "c0", "t0"),
             started("00003", "baseline", "w3", "c0", "t0")]
    late = [finished("00001", metric=0.75), finished("00002", metric=1.0)]
    state = replay(START, early, candidate("00004", "w1", 0.25), late)
    assert next_judgement(state, ACCEPT, "minimize") is None  # 2 of 3 baselines: noise unknown
    state = replay(START, early, candidate("00004", "w1", 0.25), late, [finished("00003", metric=1.25)])
    assert next_judgement(state, ACCEPT, "minimize") == Judgement(
        "00004", "promising", reference=1.0, required=0.5, improvement=0.75, runs=1)


def test_a_stale_trial_is_judged_on_whatever_runs_its_old_parent_has() -> None:
    moved = [started("00002", "candidate", "w1", "c2", "t2", parent="c0"),
             finished("00002", metric=0.1), verdict("00002", "accepted", best_commit="b2")]
    state = replay(START, [started("00001", "baseline", "w0", "c0", "t0"), finished("00001", metric=1.0)],
                   moved, candidate("00003", "w2", 0.25))
    assert next_judgement(state, ACCEPT, "minimize").verdict == "rebased"


def test_winding_down_owes_the_baselines_that_judgements_wait_for() -> None:
    state = replay(START, [started("00001", "baseline", "w0", "c0", "t0"), finished("00001", metric=1.0)],
                   candidate("00002", "w1", 0.25))
    assert assign(state, "w0", LIVE, ACCEPT, None, winding_down=True).kind == "baseline"
    assert assign(replay(START, BASELINES), "w0", LIVE, ACCEPT, None, winding_down=True).action == "stop"


def test_back_off_ends_when_its_time_is_up() -> None:
    timed = [dict(e, ts=100.0) for e in failures("w0", 4)]
    assert assign(replay(START, BASELINES, timed), "w0", LIVE, ACCEPT, None, now=100.2) == Assignment(
        "wait", wait_s=0.8)
    assert assign(replay(START, BASELINES, timed), "w0", LIVE, ACCEPT, None, now=101.0).action == "propose"


def test_a_new_session_forgets_the_refusals_of_the_last() -> None:
    state = replay(START, BASELINES, failures("w0", 99), [{"event": "session_started", "session": "s2"}])
    assert (state.refusal_streak, state.refusals_in_a_row) == ({}, 0)
    assert assign(state, "w0", LIVE, ACCEPT, None).action == "propose"


def test_candidates_without_accepts_are_judged_in_trial_order() -> None:
    state = replay(START, BASELINES, candidate("00005", "w1", 0.9), candidate("00004", "w0", 0.25))
    assert next_judgement(state, ACCEPT, "minimize").trial == "00004"


def test_confirmation_in_flight_defers_the_verdict() -> None:
    state = replay(START, BASELINES, promising(),
                   [started("00005", "confirm", "w1", "c4", "t4", of="00004")])
    assert next_judgement(state, ACCEPT, "minimize") is None


def test_confirmed_promising_trial_is_accepted() -> None:
    state = replay(START, BASELINES, promising(), [
        started("00005", "confirm", "w1", "c4", "t4", of="00004"), finished("00005", metric=0.25)])
    # spread now pools t0 (squares 0.125, 2 dof) and t4 (0.25, 0.25: squares 0, 1 dof)
    assert next_judgement(state, ACCEPT, "minimize") == Judgement(
        "00004", "accepted", reference=1.0, required=2.0 * math.sqrt(0.125 / 3), improvement=0.75,
        runs=2)


def test_regressing_confirmation_is_unconfirmed() -> None:
    state = replay(START, BASELINES, promising(), [
        started("00005", "confirm", "w1", "c4", "t4", of="00004"), finished("00005", metric=1.25)])
    # mean(0.25, 1.25) = 0.75; t4 squares 0.5 join t0's 0.125 over 3 dof
    assert next_judgement(state, ACCEPT, "minimize") == Judgement(
        "00004", "unconfirmed", reference=1.0, required=2.0 * math.sqrt(0.625 / 3),
        improvement=0.25, runs=2)


def test_crashed_confirmation_is_unconfirmed_naming_it() -> None:
    state = replay(START, BASELINES, promising(), [
        started("00005", "confirm", "w1", "c4", "t4", of="00004"), finished("00005", "crash")])
    assert next_judgement(state, ACCEPT, "minimize") == Judgement(
        "00004", "unconfirmed", reference=0.0, required=0.5, improvement=0.0, runs=2,
        reason="confirmation 00005 ended crash")


def test_lost_confirmation_does_not_decide() -> None:
    state = replay(START, BASELINES, promising(), [
        started("00005", "confirm", "w1", "c4", "t4", of="00004"), finished("00005", "lost")])
    assert next_judgement(state, ACCEPT, "minimize") is None


def test_larger_of_two_accepts_comes_first() -> None:
    state = replay(START, BASELINES, candidate("00004", "w0", 0.25), candidate("00005", "w1", 0.0))
    assert next_judgement(state, AT_ONCE, "minimize") == Judgement(
        "00005", "accepted", reference=1.0, required=0.5, improvement=1.0, runs=1)


def test_accept_comes_before_an_earlier_discard() -> None:
    state = replay(START, BASELINES, candidate("00004", "w0", 0.9), candidate("00005", "w1", 0.0))
    assert next_judgement(state, AT_ONCE, "minimize").verdict == "accepted"


def test_winner_on_a_former_best_is_rebased() -> None:
    state = replay(START, BASELINES, candidate("00004", "w0", 0.25), candidate("00005", "w1", 0.0),
                   [verdict("00005", "accepted", best_commit="b5")])
    assert next_judgement(state, AT_ONCE, "minimize") == Judgement(
        "00004", "rebased", reference=1.0, required=0.5, improvement=0.75, runs=1)


def test_promising_trial_on_a_former_best_is_rebased_after_confirmation() -> None:
    state = replay(START, BASELINES, promising(), candidate("00005", "w1", 0.0), [
        verdict("00005", "accepted", best_commit="b5"),
        started("00006", "confirm", "w2", "c4", "t4", of="00004"), finished("00006", metric=0.25)])
    assert next_judgement(state, ACCEPT, "minimize").verdict == "rebased"


def test_loser_on_a_former_best_is_discarded_not_rebased() -> None:
    state = replay(START, BASELINES, candidate("00004", "w0", 0.9), candidate("00005", "w1", 0.0),
                   [verdict("00005", "accepted", best_commit="b5")])
    assert next_judgement(state, AT_ONCE, "minimize").verdict == "discard"


# -- stopping ----------------------------------------------------------------------------

def test_requested_stop() -> None:
    assert stop_reason(replay(START), StopSpec(), "minimize", 0.0, True) == "stop requested"


def test_no_reason_to_stop() -> None:
    assert stop_reason(replay(START, BASELINES), StopSpec(), "minimize", 1e9, False) is None


def test_owed_work_past_max_trials_takes_at_most_one_evaluation_a_worker() -> None:
    state = replay(START, BASELINES)  # three evaluations
    assert budget_spent(state, StopSpec(max_trials=1)) == "max_trials reached (1)"
    assert stop_reason(state, StopSpec(max_trials=1), "minimize", 0.0, False, workers=3) is None
    assert stop_reason(state, StopSpec(max_trials=1), "minimize", 0.0, False, workers=2) == (
        "max_trials reached (1) and its wind-down (2 more) spent")


def test_hours_reached() -> None:
    stop = StopSpec(hours=0.5)
    assert stop_reason(replay(START), stop, "minimize", 1800.0, False) == "hours reached (0.5)"


def test_hours_not_yet_reached() -> None:
    assert stop_reason(replay(START), StopSpec(hours=0.5), "minimize", 1799.9, False) is None


@pytest.mark.parametrize(("target", "direction", "reason"), [
    (1.0, "minimize", "target_metric reached (1.0)"),  # best's mean is 1.0
    (0.9, "minimize", None),
    (0.9, "maximize", "target_metric reached (0.9)"),
    (1.1, "maximize", None),
])
def test_target_metric_is_reached_once_best_is_at_least_as_good(target: float, direction: str,
                                                                 reason: str | None) -> None:
    stop = StopSpec(target_metric=target)
    assert stop_reason(replay(START, BASELINES), stop, direction, 0.0, False) == reason


def test_target_metric_needs_samples_of_best() -> None:
    stop = StopSpec(target_metric=1e9)
    assert stop_reason(replay(START), stop, "minimize", 0.0, False) is None


def test_budget_spent_at_max_trials() -> None:
    state = replay(START, BASELINES)
    assert budget_spent(state, StopSpec(max_trials=3)) == "max_trials reached (3)"


def test_budget_not_spent_below_max_trials() -> None:
    assert budget_spent(replay(START, BASELINES), StopSpec(max_trials=4)) is None


def test_budget_counts_trials_in_flight() -> None:
    state = replay(START, BASELINES, candidate("00004", "w0", None))
    assert budget_spent(state, StopSpec(max_trials=4)) == "max_trials reached (4)"


def test_budget_spent_once_proposals_cost_max_cost_usd() -> None:
    """Candidates' costs and failed proposals' costs both count."""
    state = replay(START, BASELINES, candidate("00004", "w0", 0.5, cost_usd=0.03),
                   [{"event": "proposal_failed", "worker": "w1", "reason": "bad reply", "cost_usd": 0.02}])
    assert budget_spent(state, StopSpec(max_trials=None, max_cost_usd=0.06)) is None
    assert budget_spent(state, StopSpec(max_trials=None, max_cost_usd=0.05)) == (
        "max_cost_usd reached ($0.0500 of $0.05)")


def test_budget_without_max_trials_is_never_spent() -> None:
    assert budget_spent(replay(START, BASELINES), StopSpec(max_trials=None)) is None


# -- recent_trials -----------------------------------------------------------------------

def _history() -> SwarmState:
    return replay(START, BASELINES, candidate("00004", "w0", 0.5), [verdict("00004", "discard")],
                  candidate("00005", "w1", None), [finished("00005", "crash")],
                  candidate("00006", "w2", 0.25), candidate("00007", "w0", None))


def test_recent_trials_are_finished_candidates_newest_last_then_running_ones() -> None:
    assert recent_trials(_history()) == (
        TrialDigest("00004", "w0", "h4", "ok", 0.5, "discard"),
        TrialDigest("00005", "w1", "h5", "crash", None, None),
        TrialDigest("00006", "w2", "h6", "ok", 0.25, None),
        TrialDigest("00007", "w0", "h7", "running", None, None),
    )


def test_recent_trials_end_with_what_other_workers_are_trying_now() -> None:
    state = replay(START, BASELINES, candidate("00004", "w0", 0.5), candidate("00005", "w1", None))
    assert recent_trials(state)[-1] == TrialDigest("00005", "w1", "h5", "running", None, None)


def test_recent_trials_are_limited_to_the_newest() -> None:
    assert [t.trial for t in recent_trials(_history(), limit=2)] == ["00006", "00007"]


def test_recent_trials_limit_zero_is_empty() -> None:
    assert recent_trials(_history(), limit=0) == ()


def failures(worker: str, count: int, reason: str = "nothing to mutate") -> list[Event]:
    return [{"event": "proposal_failed", "worker": worker, "reason": reason}] * count


def test_a_worker_whose_proposals_keep_failing_waits_longer_each_time() -> None:
    waits = [assign(replay(START, BASELINES, failures("w0", n)), "w0", LIVE, ACCEPT, None)
             for n in (2, 3, 4, 5, 20)]
    assert [a.action for a in waits] == ["propose", "wait", "wait", "wait", "wait"]
    assert [a.wait_s for a in waits[1:]] == [0.5, 1.0, 2.0, 30.0]


def test_backoff_is_per_worker_and_ends_with_an_evaluation() -> None:
    state = replay(START, BASELINES, failures("w0", 5))
    assert assign(state, "w1", LIVE, ACCEPT, None).action == "propose"
    evaluated = [started("00004", "candidate", "w0", "c1", "t1"), finished("00004", metric=1.1)]
    state = replay(START, BASELINES, failures("w0", 5), evaluated)
    assert assign(state, "w0", LIVE, ACCEPT, None).action == "propose"


def test_duplicates_count_as_refusals() -> None:
    dups = []
    for n in range(4, 8):
        dups += [started(f"{n:05d}", "candidate", "w0", f"c{n}", "t0"),
                 finished(f"{n:05d}", "duplicate", reason="the same change")]
    assert assign(replay(START, BASELINES, dups), "w0", LIVE, ACCEPT, None).action == "wait"


def test_a_hundred_refusals_in_a_row_stop_the_run_and_say_why() -> None:
    state = replay(START, BASELINES, failures("w0", 50), failures("w1", 50, "bad edit"))
    assert stop_reason(state, StopSpec(max_trials=None), "minimize", 0.0, False) == (
        "100 proposals in a row were refused; the last: proposal failed: bad edit")
    state = replay(START, BASELINES, failures("w0", 99))
    assert stop_reason(state, StopSpec(max_trials=None), "minimize", 0.0, False) is None


def test_a_best_whose_baselines_keep_crashing_is_not_re_run_forever() -> None:
    crashed = []
    for n in range(2, 6):  # one ok run, then 4 crashes: 3 wanted + 2 retries = 5 tried
        crashed += [started(f"{n:05d}", "baseline", "w0", "c0", "t0"), finished(f"{n:05d}", "crash")]
    ok = [started("00001", "baseline", "w0", "c0", "t0"), finished("00001", metric=1.0)]
    waiting = candidate("00006", "w1", 0.25)
    state = replay(START, ok, crashed, waiting)
    assert assign(state, "w0", LIVE, ACCEPT, None, winding_down=True).action == "stop"
    assert next_judgement(state, ACCEPT, "minimize").verdict == "promising"  # on the one run
    assert assign(replay(START, ok, crashed[:6], waiting), "w0", LIVE, ACCEPT, None,
                  winding_down=True).kind == "baseline"  # 4 tried: one more retry is owed


@pytest.mark.parametrize(("status", "metric", "expected"), [
    ("ok", 0.5, ("ok", "")),
    ("ok", None, ("no_metric", "reported ok without a finite metric (None)")),
    ("ok", float("inf"), ("no_metric", "reported ok without a finite metric (inf)")),
    ("crash", None, ("crash", "exit code 1")),
    ("duplicate", None, ("crash", "the worker reported an unknown status 'duplicate'")),
    ("exploded", None, ("crash", "the worker reported an unknown status 'exploded'")),
])
def test_a_report_that_contradicts_itself_is_not_taken_at_its_word(
        status: str, metric: float | None, expected: tuple[str, str]) -> None:
    reason = "exit code 1" if status == "crash" else ""
    assert checked_status(TrialOutcome("00001", "w0", status, metric, reason=reason)) == expected


# -- hardware classes and volunteers ----------------------------------------------------------

FAST = "gpu:H100"  # BASELINES ran on class "" (no hardware recorded); these on a second class


def test_a_worker_of_a_new_class_measures_best_on_it_before_anything_else() -> None:
    state = replay(START, BASELINES, promising())
    assert assign(state, "w1", LIVE, ACCEPT, None).kind == "confirm"  # class "" has its baselines
    assert assign(state, "w1", LIVE, ACCEPT, None, hardware=FAST) == Assignment(
        "evaluate", "baseline", "c0", "t0", "c0", hypothesis="baseline run of best")


def test_a_run_is_compared_with_best_on_its_own_class_and_that_class_s_noise() -> None:
    fast_baselines = [e for i, m in ((5, 0.4), (6, 0.5), (7, 0.6)) for e in (
        started(f"0000{i}", "baseline", "w1", "c0", "t0", hardware=FAST), finished(f"0000{i}", metric=m))]
    # 0.75 beats best's 1.0 on class "" but is worse than best's 0.5 on the fast class
    state = replay(START, BASELINES, fast_baselines, candidate("00008", "w2", 0.75, hardware=FAST))
    judged = next_judgement(state, AT_ONCE, "minimize")
    assert (judged.trial, judged.verdict, judged.runs) == ("00008", "discard", 1)
    # the fast class's spread is 0.1 (class "" has 0.25): the margin is 2 x 0.1
    assert (judged.reference, judged.required, judged.improvement) == pytest.approx((0.5, 0.2, -0.25))
    assert state.best_samples(FAST) == [0.4, 0.5, 0.6] and len(state.best_samples()) == 6


def test_a_class_without_repeats_yet_borrows_the_trusted_noise() -> None:
    state = replay(START, BASELINES, [
        started("00004", "baseline", "w1", "c0", "t0", hardware=FAST), finished("00004", metric=0.5),
        started("00005", "candidate", "w2", "c5", "t5", hardware=FAST, hypothesis="h5"),
        finished("00005", metric=-0.1)])
    one_baseline = AcceptanceSpec(min_delta=0.0, noise_k=2.0, baseline_runs=1, confirm_runs=0)
    judged = next_judgement(state, one_baseline, "minimize")
    assert (judged.trial, judged.verdict) == ("00005", "accepted")
    assert (judged.reference, judged.required, judged.improvement) == pytest.approx((0.5, 0.5, 0.6))


VOLUNTEER = {"hardware": "volunteer/" + FAST, "volunteer": True}


def test_a_volunteer_s_winner_waits_for_a_trusted_confirmation_even_with_confirm_runs_0() -> None:
    volunteer_baselines = [e for i in (4, 5, 6) for e in (
        started(f"0000{i}", "baseline", "v1", "c0", "t0", hardware=VOLUNTEER["hardware"]),
        finished(f"0000{i}", metric=1.0 + (i - 5) * 0.25))]
    state = replay(START, BASELINES, volunteer_baselines,
                   candidate("00007", "v1", 0.0, **VOLUNTEER))
    judged = next_judgement(state, AT_ONCE, "minimize")
    assert (judged.trial, judged.verdict) == ("00007", "promising")  # screened on its own class
    feed(state, verdict("00007", "promising"))
    volunteers = frozenset({"v1", "v2"})
    live = LIVE | volunteers
    assert assign(state, "v2", live, AT_ONCE, None, hardware=VOLUNTEER["hardware"],
                  volunteers=volunteers).action == "propose"  # volunteers confirm nobody
    confirm = assign(state, "w1", live, AT_ONCE, None, volunteers=volunteers)
    assert (confirm.kind, confirm.of) == ("confirm", "00007")
    feed(state, started("00008", "confirm", "w1", "c7", "t7", of="00007"))
    feed(state, finished("00008", metric=1.0))
    # the volunteer said 0.0; the trusted re-run says 1.0, no better than best: its claim is ignored
    assert next_judgement(state, AT_ONCE, "minimize") == Judgement(
        "00007", "unconfirmed", reference=1.0, required=0.5, improvement=0.0, runs=1)


def test_a_volunteer_s_claimed_baseline_cannot_reach_the_target_metric() -> None:
    from swarm.core.config import StopSpec

    state = replay(START, BASELINES, [
        started("00004", "baseline", "v1", "c0", "t0", hardware="volunteer/x"), finished("00004", metric=-99.0)])
    assert stop_reason(state, StopSpec(target_metric=0.0), "minimize", 0.0, False) is None


def test_a_run_waits_for_its_parent_s_baseline_on_its_class_still_running_after_best_moved() -> None:
    state = replay(START, BASELINES, [
        started("00004", "baseline", "w1", "c0", "t0", hardware=FAST),  # in flight
        started("00005", "candidate", "w2", "c5", "t5", hardware=FAST, hypothesis="h5"),
        finished("00005", metric=-0.1)],
        candidate("00006", "w0", 0.0), [verdict("00006", "accepted", best_commit="b6")])
    assert state.best.commit == "b6"  # 00005's parent is no longer best
    waiting = next_judgement(state, AT_ONCE, "minimize")
    assert waiting is None or waiting.trial != "00005"  # not discarded for want of a reference
    feed(state, finished("00004", metric=0.5))
    judged = next_judgement(state, AT_ONCE, "minimize")
    assert (judged.trial, judged.verdict, judged.reference) == ("00005", "rebased", 0.5)


# -- the larger step first; a rebased winner's re-run is its confirmation ------------------

def _rebased_onto_b5_with_baselines(run_metric: float, **rerun: Any) -> SwarmState:
    """00005 accepted as b5 and measured twice more (mean 0.0; t0 and t5 pool to spread 0.25,
    so the margin stays 0.5); 00004, a winner by 0.75 on c0, rebased onto b5 and re-run there."""
    return replay(START, BASELINES, candidate("00004", "w0", 0.25), candidate("00005", "w1", 0.0), [
        verdict("00005", "accepted", best_commit="b5", improvement=1.0),
        verdict("00004", "rebased", commit="r4", tree="u4", parent="b5", improvement=0.75),
        started("00006", "baseline", "w0", "b5", "t5", parent="b5"), finished("00006", metric=-0.25),
        started("00007", "baseline", "w1", "b5", "t5", parent="b5"), finished("00007", metric=0.25),
        started("00008", "candidate", "w2", "r4", "u4", parent="b5", of="00004", **rerun),
        finished("00008", metric=run_metric)])


def test_a_rebased_winner_that_wins_again_on_the_new_best_is_accepted_without_a_confirmation() -> None:
    state = _rebased_onto_b5_with_baselines(-0.75)
    assert next_judgement(state, ACCEPT, "minimize") == Judgement(
        "00008", "accepted", reference=0.0, required=0.5, improvement=0.75, runs=1)


def test_a_rebased_winner_that_no_longer_wins_is_discarded() -> None:
    state = _rebased_onto_b5_with_baselines(-0.25)
    assert next_judgement(state, ACCEPT, "minimize").verdict == "discard"


def test_a_rebased_winner_still_owes_the_confirmations_beyond_the_first() -> None:
    twice = AcceptanceSpec(min_delta=0.0, noise_k=2.0, baseline_runs=3, confirm_runs=2)
    state = _rebased_onto_b5_with_baselines(-0.75)
    judgement = next_judgement(state, twice, "minimize")
    feed(state, verdict(judgement.trial, judgement.verdict, improvement=judgement.improvement))
    assert judgement.verdict == "promising"
    assert assign(state, "w0", LIVE, twice, None) == Assignment(
        "evaluate", "confirm", "r4", "u4", "b5", of="00008")
    feed(state, started("00009", "confirm", "w0", "r4", "u4", parent="b5", of="00008"))
    assert assign(state, "w1", LIVE, twice, None).kind != "confirm"  # one owed, not two


def test_a_volunteer_s_rebased_run_still_needs_a_trusted_confirmation() -> None:
    state = _rebased_onto_b5_with_baselines(-0.75, volunteer=True)
    assert next_judgement(state, ACCEPT, "minimize").verdict == "promising"


def _two_promising(larger_confirmation: list[Event]) -> SwarmState:
    """00004 (gain 0.75) confirmed; 00005 (gain 1.0, same parent) with its confirmation 00007."""
    return replay(START, BASELINES,
                  candidate("00004", "w0", 0.25), [verdict("00004", "promising", improvement=0.75)],
                  candidate("00005", "w1", 0.0), [verdict("00005", "promising", improvement=1.0)],
                  [started("00006", "confirm", "w2", "c4", "t4", of="00004"), finished("00006", metric=0.25),
                   started("00007", "confirm", "w0", "c5", "t5", of="00005"), *larger_confirmation])


def test_a_smaller_step_waits_while_a_larger_one_on_the_same_best_is_being_confirmed() -> None:
    assert next_judgement(_two_promising([]), ACCEPT, "minimize") is None


def test_once_the_larger_step_is_confirmed_it_is_accepted_first() -> None:
    state = _two_promising([finished("00007", metric=0.0)])
    assert (next_judgement(state, ACCEPT, "minimize").trial,
            next_judgement(state, ACCEPT, "minimize").verdict) == ("00005", "accepted")


def test_a_lost_confirmation_of_the_larger_step_lets_the_smaller_one_through() -> None:
    state = _two_promising([finished("00007", "lost")])
    assert next_judgement(state, ACCEPT, "minimize") == Judgement(
        "00004", "accepted", reference=1.0, required=2.0 * math.sqrt(0.125 / 3), improvement=0.75, runs=2)


def test_a_volunteer_s_larger_claimed_gain_holds_back_nobody() -> None:
    state = replay(START, BASELINES,
                   candidate("00004", "w0", 0.25), [verdict("00004", "promising", improvement=0.75)],
                   candidate("00005", "w1", -99.0, volunteer=True),
                   [verdict("00005", "promising", improvement=100.0),
                    started("00006", "confirm", "w2", "c4", "t4", of="00004"), finished("00006", metric=0.25),
                    started("00007", "confirm", "w0", "c5", "t5", of="00005")])
    assert next_judgement(state, ACCEPT, "minimize").trial == "00004"


def test_a_larger_step_re_run_that_started_after_the_smaller_winner_was_ready_holds_it_back_not() -> None:
    state = replay(START, BASELINES,
                   candidate("00004", "w0", 0.25), [verdict("00004", "promising", improvement=0.75)],
                   candidate("00005", "w1", 0.0), [verdict("00005", "promising", improvement=1.0)],
                   [started("00006", "confirm", "w2", "c4", "t4", of="00004"),
                    finished("00006", metric=0.25, ts=10.0),
                    started("00007", "confirm", "w0", "c5", "t5", of="00005", ts=11.0)])
    assert next_judgement(state, ACCEPT, "minimize").trial == "00004"


def test_a_larger_stale_winner_re_running_on_best_holds_a_smaller_accept_back() -> None:
    state = replay(START, BASELINES, candidate("00004", "w0", 0.0), candidate("00005", "w1", 0.5), [
        verdict("00005", "accepted", best_commit="b5", improvement=0.5),
        verdict("00004", "rebased", commit="r4", tree="u4", parent="b5", improvement=1.0),
        started("00006", "baseline", "w0", "b5", "t5", parent="b5"), finished("00006", metric=0.25),
        started("00007", "baseline", "w1", "b5", "t5", parent="b5"), finished("00007", metric=0.75),
        started("00008", "candidate", "w2", "r4", "u4", parent="b5", of="00004")])
    feed(state, started("00009", "candidate", "w0", "c9", "t9", parent="b5"))
    feed(state, finished("00009", metric=-0.25))  # beats b5 (0.5) by 0.75 > 0.5: but 00004 won by 1.0
    assert next_judgement(state, AT_ONCE, "minimize") is None
    feed(state, finished("00008", metric=-0.5))
    assert next_judgement(state, AT_ONCE, "minimize").trial == "00008"


def test_the_rebased_winner_with_the_largest_gain_runs_first() -> None:
    state = replay(START, BASELINES, candidate("00004", "w0", 0.5), candidate("00005", "w1", 0.25),
                   candidate("00006", "w2", 0.0), [
                       verdict("00006", "accepted", best_commit="b6", improvement=1.0),
                       verdict("00004", "rebased", commit="r4", tree="u4", parent="b6", improvement=0.5),
                       verdict("00005", "rebased", commit="r5", tree="u5", parent="b6", improvement=0.75)])
    for trial, worker in (("00007", "w0"), ("00008", "w1")):  # best's other two runs, in flight
        feed(state, started(trial, "baseline", worker, "b6", "t6", parent="b6"))
    assert assign(state, "w2", LIVE, AT_ONCE, None).commit == "r5"


# -- rules the coordinator carries out ---------------------------------------------------------

def test_a_change_tried_on_its_parent_or_one_that_changes_nothing_is_a_duplicate() -> None:
    state = replay(START, BASELINES, candidate("00004", "w0", 0.5))
    assert is_duplicate(state, "c0", "t4")  # tried on c0 already
    assert is_duplicate(state, "c0", "t0")  # c0's own tree: no change at all
    assert not is_duplicate(state, "c0", "t9")
    assert not is_duplicate(state, "c4", "t4")  # the same tree on another parent is new there


def test_a_retried_announcement_finds_the_trial_it_started() -> None:
    state = replay(START, BASELINES, candidate("00004", "w0", None))
    again = CandidateInfo("w0", "c0", "c4", "t4", "h4")
    assert earlier_announcement(state, again, "s1") == state.trials["00004"]
    assert earlier_announcement(state, again, "s2") is None  # a new session's worker w0 is another
    assert earlier_announcement(state, CandidateInfo("w1", "c0", "c4", "t4", "h4"), "s1") is None
    finished_ok = replay(START, BASELINES, candidate("00004", "w0", 0.5))
    assert earlier_announcement(finished_ok, again, "s1") is None  # it ran: this is a new proposal


def test_trials_in_flight_from_an_earlier_session_are_orphans() -> None:
    state = replay(START, BASELINES, candidate("00004", "w0", None),
                   [{"event": "session_started", "session": "s2"}],
                   [started("00005", "baseline", "w0", "c0", "t0", session="s2")])
    assert orphaned_trials(state, "s2") == ["00004"]
    assert orphaned_trials(state, "s1") == ["00005"]


def test_a_volunteers_winner_counts_only_its_trusted_confirmations() -> None:
    state = replay(START, BASELINES,
                   candidate("00004", "w0", 0.25, volunteer=True, hardware="volunteer/x"),
                   [verdict("00004", "promising")])
    assert counted_runs(state, "00004") == []  # its own run only screened it
    state = replay(START, BASELINES,
                   candidate("00004", "w0", 0.25, volunteer=True, hardware="volunteer/x"),
                   [verdict("00004", "promising"),
                    started("00005", "confirm", "w1", "c4", "t4", of="00004"), finished("00005", metric=0.3)])
    assert [r.id for r in counted_runs(state, "00004")] == ["00005"]
    trusted = replay(START, BASELINES, promising(),
                     [started("00005", "confirm", "w1", "c4", "t4", of="00004"), finished("00005", metric=0.3)])
    assert [r.id for r in counted_runs(trusted, "00004")] == ["00004", "00005"]
