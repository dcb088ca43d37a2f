"""Acceptance as a statistical test, racing, and unions (coordinator/acceptance.py and the test
rule's paths in coordinator/decide.py), on states replayed from hand-written events.

Noise fixture (tests/test_decide.py): best c0 has baselines 0.75, 1.0, 1.25: mean 1.0, spread
0.25 with 2 degrees of freedom.
"""

from __future__ import annotations

import math

import pytest

from coordinator.acceptance import ClassEvidence, Evidence, combine, look
from coordinator.decide import (
    PATIENCE_AT_LEAST, PATIENCE_PER_WORKER, RACE_ALONE_AFTER, assign, frontier, next_judgement, union_candidates,
)
from swarm.core.config import AcceptanceSpec, load_config
from swarm.core.errors import ConfigError
from swarm.core.stats import Group, Noise, robust_noise, t_quantile
from tests.test_decide import BASELINES, START, candidate, feed, finished, replay, started, verdict

__all__: list[str] = []

TEST = AcceptanceSpec(false_accept=0.01, baseline_runs=3, max_runs=4)
LIVE = {"w0", "w1", "w2"}


# 00004 and 00005 promising on best, 00005 the larger gain
TWO_PARTS = [candidate("00004", "w0", 0.5), [verdict("00004", "promising", improvement=0.5, runs=1)],
             candidate("00005", "w1", 0.25), [verdict("00005", "promising", improvement=0.75, runs=1)]]


def evidence(gain: float, se: float | None, df: int) -> Evidence:
    return Evidence(gain, se, df, 1, 1.0, None, gain)


# -- one look ------------------------------------------------------------------------------


def test_a_gain_whose_lower_bound_clears_min_delta_is_clear() -> None:
    required = t_quantile(1 - 0.01 / 4, 10) * 0.25  # the level split over max_runs looks
    assert required == pytest.approx(0.8954, abs=1e-4)
    seen = look(evidence(0.90, 0.25, 10), TEST, runs_so_far=1)
    assert (seen.outcome, seen.required) == ("clear", pytest.approx(required))


def test_a_positive_gain_below_the_bound_races_on_and_a_negative_one_is_dropped() -> None:
    assert look(evidence(0.5, 0.25, 10), TEST, runs_so_far=1).outcome == "undecided"
    assert look(evidence(-0.01, 0.25, 10), TEST, runs_so_far=1).outcome == "lost"
    assert look(evidence(0.5, 0.25, 10), TEST, runs_so_far=4).outcome == "lost"  # out of runs


def test_few_degrees_of_freedom_ask_far_more_of_a_gain() -> None:
    # two baselines give one degree of freedom: a spread that came out small by luck cannot
    # make a do-nothing change look significant (the null target's false accepts)
    assert look(evidence(0.70, 0.25, 1), TEST, runs_so_far=1).outcome == "undecided"
    assert t_quantile(0.99, 1) * 0.25 > 7.9


def test_without_any_repeat_yet_nothing_is_clear() -> None:
    assert look(evidence(5.0, None, 0), TEST, runs_so_far=1).outcome == "undecided"
    assert look(evidence(-1.0, None, 0), TEST, runs_so_far=1).outcome == "lost"


def test_false_accept_one_half_is_keep_if_lower() -> None:
    keep_if_lower = AcceptanceSpec(false_accept=0.5, baseline_runs=1, max_runs=1)
    assert look(evidence(1e-9, None, 0), keep_if_lower, 1).outcome == "clear"
    assert look(evidence(0.0, None, 0), keep_if_lower, 1).outcome == "lost"


def test_an_old_config_keeps_its_point_rule() -> None:
    point = AcceptanceSpec(noise_k=2.0, baseline_runs=3)
    assert point.confirm_runs == 1  # as the old default was
    seen = look(Evidence(0.51, 0.01, 30, 1, 1.0, 0.25, 0.51), point, 1)
    assert (seen.outcome, seen.required) == ("clear", 0.5)
    assert look(Evidence(0.49, 0.01, 30, 1, 1.0, 0.25, 0.49), point, 1).outcome == "lost"


def test_classes_combine_weighted_by_their_precision() -> None:
    precise = ClassEvidence(1.0, 4, 4, 1.0, Noise(0.1, 10), (1.0,) * 4)
    rough = ClassEvidence(0.0, 1, 1, 1.0, Noise(1.0, 10), (0.0,))
    combined = combine([precise, rough])
    w_precise, w_rough = 1 / (0.01 * 0.5), 1 / (1.0 * 2)
    assert combined.gain == pytest.approx(w_precise / (w_precise + w_rough))
    assert combined.se == pytest.approx(math.sqrt(1 / (w_precise + w_rough)))


def test_max_runs_must_leave_room_for_the_confirmations() -> None:
    with pytest.raises(ValueError, match=r"max_runs \(2\) must exceed confirm_runs \(2\)"):
        AcceptanceSpec(confirm_runs=2, max_runs=2)


def test_a_config_with_a_bad_false_accept_is_refused_naming_the_key(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "c.yaml"
    path.write_text((__import__("pathlib").Path(__file__).parents[1] / "configs" / "manyknob.yaml").read_text()
                    .replace("false_accept: 0.005", "false_accept: 0.9"))
    with pytest.raises(ConfigError, match=r"key 'acceptance.false_accept': Input should be less than or equal to 0.5"):
        load_config(path)


# -- the noise estimate --------------------------------------------------------------------


def test_one_disturbed_group_does_not_widen_the_noise() -> None:
    calm = [Group.of([1.0, 1.1]) for _ in range(6)]
    disturbed = Group.of([1.0, 3.0])  # one run taken while another job loaded the machine
    noise = robust_noise([*calm, disturbed])
    assert (noise.spread, noise.df, noise.excluded) == (pytest.approx(math.sqrt(0.005)), 6, 1)
    assert robust_noise(calm) == Noise(pytest.approx(math.sqrt(0.005)), 6, 0)


def test_lone_runs_say_nothing_of_the_noise() -> None:
    assert robust_noise([Group.of([1.0]), Group.of([2.0])]) == Noise(None, 0, 0)


def test_groups_pool_their_degrees_of_freedom() -> None:
    noise = robust_noise([Group.of([0.75, 1.0, 1.25]), Group.of([2.0, 2.5])])
    squares = 0.125 + 0.125
    assert (noise.spread, noise.df) == (pytest.approx(math.sqrt(squares / 3)), 3)


# -- racing and unions, on replayed states -------------------------------------------------


def test_a_candidate_below_the_bound_is_promising_and_one_that_lost_is_discarded() -> None:
    state = replay(START, BASELINES, candidate("00004", "w0", 0.25))
    judged = next_judgement(state, TEST, "minimize")
    assert judged is not None and (judged.trial, judged.verdict, judged.improvement) == (
        "00004", "promising", pytest.approx(0.75))
    state = replay(START, BASELINES, candidate("00004", "w0", 1.5))
    assert next_judgement(state, TEST, "minimize").verdict == "discard"


def test_two_promising_changes_make_a_union_the_larger_gain_first() -> None:
    state = replay(START, BASELINES, *TWO_PARTS)
    assert union_candidates(state, TEST) == ("00005", "00004")
    union = assign(state, "w2", LIVE, TEST, None, hardware="")
    assert (union.action, union.kind, union.parts, union.parent, union.commit) == (
        "evaluate", "candidate", ("00005", "00004"), "c0", "")


def test_while_a_union_that_kept_its_parts_gains_is_judged_new_proposals_are_made_on_it() -> None:
    state = replay(START, BASELINES, *TWO_PARTS,
                   [started("00006", "candidate", "w2", "u6", "tu6", parts=["00005", "00004"])])
    assert union_candidates(state, TEST) == ()  # one union at a time
    assert frontier(state, TEST) == "c0"  # before its first run: on best
    feed(state, finished("00006", metric=-0.25))  # 1.25 better: its parts' gains, together
    feed(state, verdict("00006", "promising", improvement=1.25, runs=1))
    for n, worker in ((7, "w0"), (8, "w1")):  # its re-runs, two at once
        confirm = assign(state, worker, LIVE, TEST, None, hardware="")
        assert (confirm.kind, confirm.of) == ("confirm", "00006")
        feed(state, started(f"0000{n}", "confirm", worker, "u6", "tu6", of="00006"))
    proposal = assign(state, "w0", LIVE, TEST, None, hardware="")
    assert (proposal.action, proposal.commit) == ("propose", "u6") == ("propose", frontier(state, TEST))
    feed(state, started("00009", "candidate", "w0", "c9", "t9", parent="u6"))
    feed(state, finished("00009", metric=0.0))
    assert next_judgement(state, TEST, "minimize") is None  # on the union: its verdict comes first


def test_a_union_is_looked_at_after_each_pair_of_re_runs_not_after_all_of_its_runs() -> None:
    state = replay(START, BASELINES, *TWO_PARTS,
                   [started("00006", "candidate", "w2", "u6", "tu6", parts=["00005", "00004"]),
                    finished("00006", metric=-0.25), verdict("00006", "promising", improvement=1.25, runs=1),
                    started("00007", "confirm", "w0", "u6", "tu6", of="00006"),
                    started("00008", "confirm", "w1", "u6", "tu6", of="00006")])
    feed(state, finished("00007", metric=-0.25))
    assert next_judgement(state, TEST, "minimize") is None  # half the pair is in
    assert assign(state, "w0", LIVE, TEST, None, hardware="").action == "propose"  # no third re-run yet
    feed(state, finished("00008", metric=-0.3))
    judged = next_judgement(state, TEST, "minimize")
    assert judged is not None and (judged.trial, judged.runs) == ("00006", 3), judged


def test_a_union_that_falls_short_of_its_best_part_is_discarded_and_its_smaller_half_races_alone() -> None:
    two_parts = TWO_PARTS
    state = replay(START, BASELINES, *two_parts,
                   [started("00006", "candidate", "w2", "u6", "tu6", parts=["00005", "00004"]),
                    finished("00006", metric=-7.5)])
    clear = next_judgement(state, AcceptanceSpec(false_accept=0.01, baseline_runs=3), "minimize")
    assert clear.verdict == "accepted"  # 8.5 better: beyond any doubt
    short = replay(START, BASELINES, *two_parts,
                   [{**started("00006", "candidate", "w2", "u6", "tu6", parts=["00005", "00004"])},
                    finished("00006", metric=0.95)])
    judged = next_judgement(short, AcceptanceSpec(false_accept=0.5, baseline_runs=3), "minimize")
    assert (judged.verdict, judged.reason) == (
        "discard", "the union gained 0.05, less than its part 00005 alone (0.75)")
    feed(short, verdict("00006", "discard"))
    # bisected: its larger half (00005) may join the next union, the rest (00004) races alone
    assert (short.trials["00005"].failed_union, short.trials["00004"].failed_union) == (False, True)
    confirm = assign(short, "w2", LIVE, TEST, None, hardware="")
    assert (confirm.action, confirm.kind, confirm.of) == ("evaluate", "confirm", "00004")


def test_a_promising_change_with_no_partner_races_alone_after_a_few_more_proposals() -> None:
    state = replay(START, BASELINES, candidate("00004", "w0", 0.25),
                   [verdict("00004", "promising", improvement=0.75, runs=1)])
    assert assign(state, "w1", LIVE, TEST, None, hardware="").action == "propose"  # a partner may come
    waits = RACE_ALONE_AFTER * max(PATIENCE_AT_LEAST, PATIENCE_PER_WORKER * 2)  # two live workers
    for n in range(5, 6 + waits):  # later candidates, none of them promising
        feed(state, started(f"{n:05d}", "candidate", "w1", f"c{n}", f"t{n}"))
        feed(state, finished(f"{n:05d}", metric=2.0))
        feed(state, verdict(f"{n:05d}", "discard"))
    confirm = assign(state, "w1", {"w0", "w1"}, TEST, None, hardware="")
    assert (confirm.action, confirm.kind, confirm.of) == ("evaluate", "confirm", "00004")


def test_a_racing_candidate_is_accepted_once_its_runs_clear_the_bound() -> None:
    lone = AcceptanceSpec(false_accept=0.01, baseline_runs=3, max_runs=8)
    state = replay(START, BASELINES, candidate("00004", "w0", 0.25),
                   [verdict("00004", "promising", improvement=0.75, runs=1)])
    for n in range(5, 10):
        feed(state, started(f"0000{n}", "candidate", "w1", f"c{n}", f"t{n}"))
        feed(state, finished(f"0000{n}", metric=2.0))
        feed(state, verdict(f"0000{n}", "discard"))
    for n, metric in ((10, 0.25), (11, 0.26), (12, 0.24)):  # three re-runs of 00004: far better, and alike
        feed(state, started(f"000{n}", "confirm", "w2", "c4", "t4", of="00004"))
        feed(state, finished(f"000{n}", metric=metric))
    judged = next_judgement(state, lone, "minimize")
    assert judged is not None and (judged.trial, judged.verdict, judged.runs) == ("00004", "accepted", 4)
