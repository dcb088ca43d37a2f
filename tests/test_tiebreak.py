"""Lexicographic acceptance: the metric first, then each tie-breaker with its own noise and
min_delta, judged from states rebuilt by replaying ledger events (no Ray, no git).

Fixture: best c0 (tree t0) has three baselines with pass_rate 0.5 each (a deterministic
metric: no noise), tokens 100, 102, 98 (spread 2) and seconds 10 each.
"""

from __future__ import annotations

from typing import Any

import pytest

from coordinator.acceptance import Evidence, Level, Look, in_order
from coordinator.decide import next_judgement
from coordinator.state import SwarmState
from swarm.core.config import AcceptanceSpec, TieBreakSpec
from swarm.core.events import parse_event

TEST = AcceptanceSpec(min_delta=0.0, baseline_runs=3, confirm_runs=0, max_runs=4)
TOKENS = TieBreakSpec(name="tokens", direction="minimize")
SECONDS = TieBreakSpec(name="seconds", direction="minimize", min_delta=0.5)


def event(**fields: Any) -> Any:
    return parse_event(fields)


def run(trial: str, kind: str, commit: str, tree: str, pass_rate: float, **metrics: float) -> list[Any]:
    return [event(event="trial_started", trial=trial, kind=kind, worker=f"w{trial[-1]}", commit=commit,
                  tree=tree, parent="c0", session="s1", hypothesis=f"h{trial}"),
            event(event="trial_finished", trial=trial, status="ok", metric=pass_rate,
                  metrics={"pass_rate": pass_rate, **metrics}, hardware="cpu")]


def state_with(*candidate: list[Any], tokens: tuple[float, ...] = (100, 102, 98),
               rates: tuple[float, ...] = (0.5, 0.5, 0.5)) -> SwarmState:
    state = SwarmState()
    events = [event(event="run_started", commit="c0", tree="t0", readonly_hashes={}, config={"name": "t"}),
              event(event="session_started", session="s1")]
    for n, (used, rate) in enumerate(zip(tokens, rates, strict=True), start=1):
        events += run(f"0000{n}", "baseline", "c0", "t0", rate, tokens=used, seconds=10.0)
    for group in candidate:
        events += group
    for e in events:
        state.apply(e)
    return state


def judged(state: SwarmState, *tiebreaks: TieBreakSpec, direction: str = "maximize") -> Any:
    return next_judgement(state, TEST, direction, tiebreaks=tiebreaks)  # type: ignore[arg-type]


def test_a_tie_on_the_metric_is_broken_by_the_first_tiebreaker_that_clears() -> None:
    state = state_with(run("00004", "candidate", "c4", "t4", 0.5, tokens=40.0, seconds=10.0))
    verdict = judged(state, TOKENS)
    assert (verdict.verdict, verdict.improvement) == ("accepted", 0.0)
    assert "tokens" in verdict.reason
    assert judged(state).verdict == "discard"  # without the tie-breaker a tie is no gain


def test_a_tie_with_a_worse_tiebreaker_is_discarded() -> None:
    state = state_with(run("00004", "candidate", "c4", "t4", 0.5, tokens=160.0, seconds=10.0))
    assert judged(state, TOKENS).verdict == "discard"


def test_a_worse_metric_is_not_saved_by_a_better_tiebreaker() -> None:
    state = state_with(run("00004", "candidate", "c4", "t4", 0.4, tokens=10.0, seconds=1.0))
    assert judged(state, TOKENS, SECONDS).verdict == "discard"


def test_a_better_metric_wins_whatever_the_tiebreakers_say() -> None:
    state = state_with(run("00004", "candidate", "c4", "t4", 0.6, tokens=500.0, seconds=60.0))
    verdict = judged(state, TOKENS, SECONDS)
    assert (verdict.verdict, verdict.reason) == ("accepted", "")
    assert verdict.improvement == pytest.approx(0.1)


def test_tiebreakers_are_judged_in_order() -> None:
    # seconds within its min_delta of 0.5 is a tie, so tokens decides
    within = state_with(run("00004", "candidate", "c4", "t4", 0.5, tokens=40.0, seconds=10.4))
    assert "tokens" in judged(within, SECONDS, TOKENS).reason
    # seconds worse by more than its min_delta ends it there: tokens is never asked
    beyond = state_with(run("00004", "candidate", "c4", "t4", 0.5, tokens=40.0, seconds=11.0))
    assert judged(beyond, SECONDS, TOKENS).verdict == "discard"
    # the other order: tokens clears first
    assert "tokens" in judged(beyond, TOKENS, SECONDS).reason


def test_a_tiebreaker_the_candidate_did_not_record_cannot_break_a_tie() -> None:
    state = state_with(run("00004", "candidate", "c4", "t4", 0.5, seconds=10.0))
    assert judged(state, TOKENS).verdict == "discard"


def test_a_tiebreaker_gain_inside_its_noise_races_for_another_run() -> None:
    # tokens spread 2 on 2 degrees of freedom: a gain of 10 is above min_delta but not clear
    state = state_with(run("00004", "candidate", "c4", "t4", 0.5, tokens=90.0, seconds=10.0))
    assert judged(state, TOKENS).verdict == "promising"


def test_a_confirmation_run_settles_a_racing_tiebreaker() -> None:
    first = run("00004", "candidate", "c4", "t4", 0.5, tokens=80.0, seconds=10.0)
    assert judged(state_with(first), TOKENS).verdict == "promising"  # a gain of 20 < 46 needed
    again = [event(event="verdict", trial="00004", verdict="promising", improvement=0.0, runs=1),
             event(event="trial_started", trial="00005", kind="confirm", worker="w5", commit="c4", tree="t4",
                   parent="c0", of="00004", session="s1"),
             event(event="trial_finished", trial="00005", status="ok", metric=0.5,
                   metrics={"pass_rate": 0.5, "tokens": 80.5}, hardware="cpu")]
    # t4's repeats (80, 80.5) add a degree of freedom: 19.75 now clears the 15.3 needed
    verdict = judged(state_with(first, again), TOKENS)
    assert (verdict.verdict, verdict.runs) == ("accepted", 2)


@pytest.mark.parametrize(("pass_rate", "verdict"), [(0.5, "accepted"), (0.49, "discard")])
def test_a_noisy_metric_is_tied_only_where_its_mean_is_not_worse(pass_rate: float, verdict: str) -> None:
    """The metric's spread (0.1 on 2 df) would put a confidence bound many spreads wide: a
    tie there would trade pass rate for tokens. Only a mean no worse than min_delta ties."""
    state = state_with(run("00004", "candidate", "c4", "t4", pass_rate, tokens=40.0, seconds=10.0),
                       rates=(0.4, 0.5, 0.6))
    assert judged(state, TOKENS).verdict == verdict


def test_in_order_is_undecided_while_a_level_may_still_clear() -> None:
    tied = Level("", Evidence(0.0, 0.0, 2, 1, 0.5, 0.0, 0.0), Look("lost", 0.0), False)
    racing = Level("tokens", Evidence(10.0, 2.3, 2, 1, 100.0, 2.0, 10.0), Look("undecided", 46.0), False)
    lost = Level("seconds", Evidence(0.0, 0.0, 2, 1, 10.0, 0.0, 0.0), Look("lost", 0.5), False)
    assert in_order([tied, racing, lost]).outcome == "undecided"
    assert in_order([tied, lost]).outcome == "lost"
