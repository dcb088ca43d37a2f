"""The report's arithmetic on a small hand-written ledger whose right answers are worked out by
hand: a maximize target, two hardware classes, and a run resumed a day later with a different
number of GPUs per worker. Pure: no git, no plotting."""

from __future__ import annotations

from typing import Any

import pytest

from coordinator.state import replay
from swarm.core.events import parse_event
from swarm.shell.report.facts import RunFacts, run_facts
from swarm.shell.report.lineage import lineage_of

DAY = 86_400.0


def _trial(trial: str, ts: float, seconds: float, worker: str, hardware: str, commit: str,
           metric: float | None, kind: str = "candidate", session: str = "s1", **extra: Any) -> list[dict]:
    started = {"event": "trial_started", "ts": ts, "trial": trial, "kind": kind, "worker": worker,
               "commit": commit, "tree": "tree-" + commit, "parent": extra.pop("parent", "c0"),
               "session": session, "hardware": hardware, "node": "n-" + worker,
               "hypothesis": extra.pop("hypothesis", kind), **extra}
    finished = {"event": "trial_finished", "ts": ts + seconds, "trial": trial,
                "status": "ok" if metric is not None else "crash", "metric": metric,
                "seconds": seconds, "hardware": hardware}
    return [started, finished]


def _ledger() -> list[dict]:
    config = {"name": "m", "target": {"metric": {"name": "acc", "direction": "maximize"}},
              "workers": {"gpus_per_worker": 1.0}}
    events: list[dict] = [
        {"event": "run_started", "ts": 0.0, "commit": "c0", "tree": "tree-c0", "readonly_hashes": {},
         "config": config},
        {"event": "session_started", "ts": 0.0, "session": "s1", "gpus_per_worker": 1.0},
        # baselines: class A measures 10 and 12, class B (a slower GPU) 5
        *_trial("00001", 0.0, 100.0, "w0", "gpu:A", "c0", 10.0, kind="baseline"),
        *_trial("00002", 0.0, 100.0, "w1", "gpu:B", "c0", 5.0, kind="baseline"),
        *_trial("00003", 100.0, 100.0, "w0", "gpu:A", "c0", 12.0, kind="baseline"),
        # a candidate on A: 13, confirmed on A at 15, accepted; B never ran it
        *_trial("00004", 200.0, 100.0, "w0", "gpu:A", "c1", 13.0, hypothesis="LR up"),
        {"event": "verdict", "ts": 300.0, "trial": "00004", "verdict": "promising", "improvement": 2.0},
        *_trial("00005", 300.0, 100.0, "w1", "gpu:A", "c1", 15.0, kind="confirm", of="00004",
                hypothesis="LR up"),
        {"event": "verdict", "ts": 400.0, "trial": "00004", "verdict": "accepted", "improvement": 3.0,
         "best_commit": "b1"},
        # a winner that conflicted with the new best
        *_trial("00006", 300.0, 100.0, "w0", "gpu:A", "c2", 14.0, hypothesis="WD down"),
        {"event": "verdict", "ts": 400.0, "trial": "00006", "verdict": "stale_conflict", "improvement": 3.0},
        # a day later, resumed with half a GPU per worker: w0 crashes once
        {"event": "session_started", "ts": DAY, "session": "s2", "gpus_per_worker": 0.5},
        *_trial("00007", DAY, 200.0, "w0", "gpu:A", "c3", None, session="s2", parent="b1",
                hypothesis="WD down"),
    ]
    return events


@pytest.fixture(scope="module")
def facts() -> RunFacts:
    events = _ledger()
    typed = [parse_event(e) for e in events]
    return run_facts(replay(typed), typed)


def test_spread_is_pooled_within_classes_and_gains_compare_a_class_with_itself(facts: RunFacts) -> None:
    # baseline: runs 10, 12 (A) and 5 (B); the spread is A's alone: std(10, 12) = sqrt(2)
    assert facts.baseline.mean == pytest.approx(9.0) and facts.baseline.runs == 3
    assert facts.baseline.spread == pytest.approx(2 ** 0.5)
    # best: 13 and 15 on A; against A's baseline of 11 it gained 3 (all runs together: 5)
    assert facts.best.mean == pytest.approx(14.0)
    (change,) = facts.changes
    assert change.gain == pytest.approx(3.0) and facts.total_gain == pytest.approx(3.0)


def test_gpu_hours_follow_each_sessions_gpus_per_worker(facts: RunFacts) -> None:
    # session 1: six trials of 100 s at 1 GPU; session 2: one 200 s trial at 0.5 GPU
    assert facts.gpu_hours == pytest.approx((6 * 100 * 1.0 + 200 * 0.5) / 3600)
    assert facts.worker_hours == pytest.approx((6 * 100 + 200) / 3600)


def test_a_workers_rate_leaves_out_the_time_between_sessions(facts: RunFacts) -> None:
    w0 = next(w for w in facts.workers if w.worker == "w0")
    # session 1: 4 trials from 0 to 400 s; session 2: 1 trial of 200 s. Not 5 trials in a day.
    assert (w0.trials, w0.ok, w0.failed) == (5, 4, 1)
    assert w0.span_s == pytest.approx(600.0) and w0.per_hour == pytest.approx(30.0)
    assert w0.busy_s == pytest.approx(600.0)
    assert facts.hours == pytest.approx((400 + 200) / 3600)  # the swarm's running time, not 24 h


def test_the_lineage_holds_the_conflict_off_the_best_branch(facts: RunFacts) -> None:
    lineage = lineage_of(facts)
    assert [commit for commit, _, _ in lineage.best] == ["c0", "b1"]
    assert [trial for trial, _, _ in lineage.conflicts] == ["00006"] and lineage.stale == []
