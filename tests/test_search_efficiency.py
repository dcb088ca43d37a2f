"""bench/search_efficiency.py: the pure arithmetic on incumbent histories and ledgers (no Ray),
the deceptive target's documented optimum, and the --quick run's table."""

from __future__ import annotations

import importlib.util
import math
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "search_efficiency.py"


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("search_efficiency", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


se = _load_bench()
Change, Evaluation = se.Change, se.Evaluation


# -- incumbent histories of the best-measured contenders ---------------------------------------

def test_incumbent_history_follows_the_best_measured_point_in_finishing_order() -> None:
    evaluations = [
        Evaluation(3.0, ("c",), 0.5, 0.9),  # lucky: measured best, truly worse than b
        Evaluation(1.0, ("a",), 2.0, 2.0),
        Evaluation(2.0, ("b",), 1.0, 0.8),
        Evaluation(4.0, ("b",), 0.4, 0.8),  # b re-measured lower: b again, a change back
        Evaluation(5.0, ("d",), 3.0, 0.1),  # truly best, measured badly: never the incumbent
    ]
    history = se.incumbent_history(("s",), 5.0, evaluations)
    assert history == [Change(0, 0.0, 5.0, 5.0), Change(1, 1.0, 2.0, 5.0), Change(2, 2.0, 0.8, 2.0),
                       Change(3, 3.0, 0.9, 0.8), Change(4, 4.0, 0.8, 0.9)]
    assert se.false_accepts(history) == 1


def test_measuring_the_start_again_is_not_a_change() -> None:
    history = se.incumbent_history(("s",), 5.0, [Evaluation(1.0, ("s",), 4.9, 5.0)])
    assert history == [Change(0, 0.0, 5.0, 5.0)]


def test_first_reaching_and_the_budget_cut() -> None:
    history = [Change(0, 0.0, 5.0, 5.0), Change(10, 4.0, 0.2, 5.0), Change(70, 30.0, 0.05, 0.2)]
    assert se.first_reaching(history, 0.1) == Change(70, 30.0, 0.05, 0.2)
    assert se.first_reaching(se.within_budget(history, 64), 0.1) is None
    assert se.first_reaching(history, 6.0) == Change(0, 0.0, 5.0, 5.0)  # the start counts
    assert se.within_budget(history, 64)[-1].true == 0.2


# -- the swarm's ledger ------------------------------------------------------------------------

def _started(trial: str, kind: str, commit: str, tree: str, parent: str) -> dict:
    return {"event": "trial_started", "trial": trial, "kind": kind, "commit": commit, "tree": tree,
            "parent": parent}


def _finished(trial: str, ts: float, metric: float | None, true: float | None, status: str = "ok") -> dict:
    metrics = {"score": metric, "true_score": true} if metric is not None else {}
    return {"event": "trial_finished", "trial": trial, "ts": ts, "status": status, "metric": metric,
            "metrics": metrics}


def _accepted(trial: str, ts: float, best_commit: str) -> dict:
    return {"event": "verdict", "trial": trial, "ts": ts, "verdict": "accepted", "best_commit": best_commit}


LEDGER = [
    {"event": "run_started", "ts": 100.0, "commit": "c0", "tree": "t0"},
    _started("00001", "baseline", "c0", "t0", "c0"), _finished("00001", 101.0, 6.0, 6.0),
    _started("00002", "candidate", "k2", "t2", "c0"),
    _started("00003", "candidate", "k3", "t3", "c0"), _finished("00003", 101.5, None, None, "duplicate"),
    _finished("00002", 102.0, 5.0, 5.1),
    _accepted("00002", 102.1, "b2"),
    _started("00004", "candidate", "k4", "t4", "b2"), _finished("00004", 103.0, 4.9, 5.3),
    _accepted("00004", 103.1, "b4"),
    _started("00005", "candidate", "k5", "t5", "b4"), _finished("00005", 104.0, 7.0, 7.0),
    {"event": "verdict", "trial": "00005", "ts": 104.1, "verdict": "discard"},
]


def test_ledger_history_reads_accepts_with_their_parents_true_value() -> None:
    outcome = se.ledger_history(LEDGER, t0=99.0, start_true=6.0)
    assert [(c.trials, round(c.seconds, 3), c.true, c.parent_true) for c in outcome.history] == [
        (0, 0.0, 6.0, 6.0), (2, 3.1, 5.1, 6.0), (3, 4.1, 5.3, 5.1)]
    assert outcome.finished == [2.0, 3.0, 4.0, 5.0]  # the duplicate cost no evaluation
    assert se.false_accepts(outcome.history) == 1


def test_that_ledger_is_keep_if_lower_on_single_runs() -> None:
    assert se.keep_if_lower_violations(LEDGER) == []


def test_keep_if_lower_violations_name_a_discarded_lower_run_and_a_confirmation() -> None:
    events = LEDGER[:-1] + [{"event": "verdict", "trial": "00005", "verdict": "accepted", "best_commit": "b5"}]
    assert se.keep_if_lower_violations(events) == ["00005: accepted at 7.0 against 4.9"]
    events = LEDGER + [_started("00006", "confirm", "k5", "t5", "b4")]
    assert se.keep_if_lower_violations(events) == ["00006: a confirm run"]


# -- the table ---------------------------------------------------------------------------------

def _outcome(history: list, finished: list[float]) -> object:
    return se.Outcome("x", history, finished)


def test_summarize_takes_medians_over_seeds_and_counts_never_reached_as_late() -> None:
    start = Change(0, 0.0, 5.0, 5.0)
    outcomes = [_outcome([start, Change(4, 2.0, 0.05, 5.0)], [1.0] * 8),
                _outcome([start, Change(6, 3.0, 0.08, 5.0), Change(7, 3.5, 0.09, 0.08)], [2.0] * 8),
                _outcome([start, Change(2, 1.0, 1.0, 5.0)], [3.0] * 8)]
    row = se.summarize("swarm", outcomes, goal=0.1, budget=8)
    assert row == se.Row("swarm", final=0.09, trials_to_goal=6, seconds_to_goal=3.0, reached=2,
                         budget_seconds=2.0, accepts=4, false_accepts=1, seeds=3)
    lines = se.format_table([row, se.Row("PBT", 1.0, math.inf, math.inf, 0, 9.0, 0, 0, 3)], 0.1)
    assert lines[2] == "| swarm | 0.0900 | 6 | 3.0 | 2/3 | 2.0 | 4 | 1 | 25% |"
    assert lines[3] == "| PBT | 1.0000 | not reached | not reached | 0/3 | 9.0 | 0 | 0 | n/a |"


def test_time_ratio_is_the_swarms_time_to_the_sequential_final_over_the_sequential_wall() -> None:
    # the swarm ran past the sequential loop's 16 evaluations: only its first 16 s count
    swarm = _outcome([Change(0, 0.0, 5.0, 5.0), Change(9, 2.0, 1.0, 5.0), Change(30, 6.0, 0.3, 1.0),
                      Change(90, 17.0, 0.01, 0.3)], [0.5 * i for i in range(1, 41)])
    sequential = _outcome([Change(0, 0.0, 5.0, 5.0), Change(12, 12.0, 0.4, 5.0)],
                          [float(i) for i in range(1, 17)])
    ratio = se.time_ratio(swarm, sequential, budget=16)
    assert ratio == se.Ratio(final=0.4, wall=16.0, seconds=6.0, evaluations=30, at_fifth=1.0,
                             swarm_evaluations=32)
    late = se.time_ratio(_outcome([Change(0, 0.0, 5.0, 5.0), Change(90, 17.0, 0.01, 5.0)], [1.0]),
                         sequential, budget=16)
    assert (late.seconds, late.evaluations, late.at_fifth) == (None, None, 5.0)
    lines = se.format_ratios([ratio, late])
    assert lines[0] == ("- seed 0: sequential final true 0.4000 after 16.0 s; swarm reached it in 6.0 s "
                        "= 0.375, after 30 evaluations; at a fifth of that time its true value was "
                        "1.0000; it finished 32 evaluations in that time")
    assert "; swarm did not reach it in that time; at a fifth of that time its true value was 5.0000" \
        in lines[1]
    assert lines[-1] == ("- median ratio (swarm time to the sequential final / sequential wall time): "
                         "not reached (goal <= 0.2)")


def test_the_swarm_given_a_wall_time_is_not_cut_by_the_trial_budget() -> None:
    quadratic, budget = se.TARGETS[0], se.Budget(64, 0.5, 8)
    timed = se.loop_config(quadratic, 3, 8, budget, keep_if_lower=False, wall_s=36.0).stop
    assert (timed.max_trials, timed.hours) == (10**9, 0.01)
    counted = se.loop_config(quadratic, 3, 1, budget, keep_if_lower=True).stop
    assert counted.max_trials == 64


# -- the targets and the in-process contenders' moves ------------------------------------------

def test_deceptive_optimum_and_start_are_as_documented() -> None:
    objective = se.load_objective(se.Target("deceptive", goal=0.15))
    assert objective.start == (1.0, 1.0, 1.0, "constant")
    assert round(objective.true(objective.start), 6) == 1.642608
    assert objective.true((4.0, 4.0, 4.0, "cosine")) == 0.0
    assert objective.noise == 0.03


def test_deceptive_needs_lr_and_batch_moved_together() -> None:
    objective = se.load_objective(se.Target("deceptive", goal=0.15))
    start = objective.true(objective.start)
    assert objective.true((2.0, 1.0, 1.0, "constant")) > start  # one alone, 2x: worse
    assert objective.true((2.0, 2.0, 1.0, "constant")) < start - 0.7  # both: far better
    near = objective.true((3.2, 3.2, 4.0, "cosine"))
    assert objective.true((4.0, 3.2, 4.0, "cosine")) > near < objective.true((3.2, 4.0, 4.0, "cosine"))


def test_mutations_start_from_the_baseline_and_grow_only_on_a_repeat() -> None:
    objective = se.load_objective(se.Target("quadratic", goal=0.1))
    rng, tried = random.Random(0), {objective.start}
    first = se.mutation_of(objective, rng, tried)
    assert sum(a != b for a, b in zip(first, objective.start, strict=True)) == 1
    points = {first}
    for _ in range(40):
        points.add(se.mutation_of(objective, rng, tried | points))
    assert len(points) == 41  # every one new while new ones are within reach


def test_search_space_spans_a_factor_of_16_each_way_around_the_start() -> None:
    space = se.search_space(se.load_objective(se.Target("quadratic", goal=0.1)))
    assert space == {"A": ("float", (1 / 16, 16.0)), "B": ("float", (1 / 16, 16.0)),
                     "C": ("float", (1 / 16, 16.0)), "OPTIMIZER": ("choice", ["sgd", "momentum", "adam"])}


# -- the quick run -----------------------------------------------------------------------------

ROW = re.compile(r"^\| (swarm|sequential|best-of-N|TPE|PBT) \| (\d+\.\d{4}) \| (\d+|not reached) "
                 r"\| (\d+\.\d|not reached) \| (\d)/1 \| (\d+\.\d) \| (\d+) \| (\d+) \| (\d+%|n/a) \|$", re.M)


# A benchmark's quick run, a minute: on demand with -m slow, to keep `make test` under 10 min.
@pytest.mark.slow
@pytest.mark.ray
def test_quick_run_prints_a_row_per_contender_with_real_values(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, str(BENCH), "--quick"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {m.group(1): m.groups()[1:] for m in ROW.finditer(done.stdout)}
    assert sorted(rows) == sorted(se.CONTENDERS), done.stdout
    start = 6.705  # examples/quadratic as given
    for name, (final, _trials, _seconds, _reached, wall, accepts, false, _rate) in rows.items():
        assert 0.0 <= float(final) <= start, (name, final)
        assert float(wall) > 0.2 * 16 / 4 * 0.9, (name, wall)  # 16 evaluations of 0.2 s, 4 at a time
        assert int(false) <= int(accepts)
    assert float(rows["sequential"][0]) < start  # 15 keep-if-lower steps always find something
    assert "sequential ledgers checked: every verdict is keep-if-lower on single runs: yes" in done.stdout
    assert re.search(r"^- median ratio \(swarm time to the sequential final / sequential wall time\): "
                     r"(\d+\.\d{3}|not reached) \(goal <= 0\.2\)$", done.stdout, re.M), done.stdout
