"""The swarm end to end on a real local Ray instance: improvement, exactly-once ledger, failures."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from coordinator.state import SwarmState  # noqa: E402
from coordinator.status import replay_run  # noqa: E402
from swarm.core.config import load_config  # noqa: E402
from swarm.core.errors import CoordinatorLost  # noqa: E402
from swarm.shell.driver import RunOptions, coordinator_name, run_swarm  # noqa: E402
from tests.conftest import local_ray as start_local_ray  # noqa: E402

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def local_ray(ray_home: Path):
    with start_local_ray(ray_home, "swarm", 6):
        yield


def quadratic(max_trials: int, workers: int = 3, budget_s: float = 0.2):
    return load_config(ROOT / "configs" / "quadratic.yaml", {
        "target.repo": str(ROOT / "examples" / "quadratic"), "target.budget_s": budget_s,
        "stop.max_trials": max_trials, "workers.count": workers, "proposer.seed": 7})


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]


def replay(run_dir: Path) -> SwarmState:
    return replay_run(run_dir)[1]


def assert_every_trial_once(run_dir: Path) -> Counter:
    started = Counter(e["trial"] for e in events(run_dir) if e["event"] == "trial_started")
    finished = Counter(e["trial"] for e in events(run_dir) if e["event"] == "trial_finished")
    assert started and set(started.values()) == {1}
    assert finished == started  # every trial finished, none twice
    return Counter(e["status"] for e in events(run_dir) if e["event"] == "trial_finished")


def wait_for(predicate, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for the run to get there"
        time.sleep(0.1)


def finished_count(run_dir: Path) -> int:
    path = run_dir / "ledger.jsonl"
    return path.exists() and path.read_text().count('"event":"trial_finished"')


def run_in_thread(options: RunOptions) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["status"] = run_swarm(options)
        except BaseException as exc:  # handed to the test thread
            outcome["error"] = exc
    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def test_three_workers_improve_best_and_record_every_trial_once(local_ray, tmp_path):
    run_dir = tmp_path / "run"
    status = run_swarm(RunOptions(quadratic(max_trials=24), run_dir))
    assert status.best.mean < status.baseline.mean - 0.5
    assert status.accepted >= 1
    statuses = assert_every_trial_once(run_dir)
    assert statuses["lost"] == 0
    workers = {e["worker"] for e in events(run_dir) if e["event"] == "trial_started"}
    assert workers == {"w0", "w1", "w2"}
    rows = (run_dir / "results.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["commit", "score", "memory_gb", "status", "description",
                                   "trial", "worker", "cost_usd"]
    assert len(rows) - 1 == sum(statuses.values())
    assert (run_dir / "repo" / "train.py").read_text() != (ROOT / "examples/quadratic/train.py").read_text()


def test_coordinator_restarted_by_ray_mid_run_loses_nothing(local_ray, tmp_path):
    run_dir = tmp_path / "run"
    thread, outcome = run_in_thread(RunOptions(quadratic(max_trials=24), run_dir))
    wait_for(lambda: finished_count(run_dir) >= 6)
    ray.kill(ray.get_actor(coordinator_name(run_dir)), no_restart=False)
    thread.join(timeout=180)
    assert "error" not in outcome, outcome.get("error")
    statuses = assert_every_trial_once(run_dir)
    assert sum(1 for e in events(run_dir) if e["event"] == "session_started") == 1
    assert outcome["status"].best.mean < outcome["status"].baseline.mean
    assert statuses["lost"] <= 3  # at most the trials whose next_work answer died with it


def test_resume_after_coordinator_killed_for_good_keeps_best_and_every_trial(local_ray, tmp_path):
    run_dir = tmp_path / "run"
    thread, outcome = run_in_thread(RunOptions(quadratic(max_trials=60), run_dir))
    wait_for(lambda: finished_count(run_dir) and replay(run_dir).best.trial is not None)
    ray.kill(ray.get_actor(coordinator_name(run_dir)), no_restart=True)
    thread.join(timeout=60)
    assert isinstance(outcome.get("error"), CoordinatorLost)
    before = replay(run_dir)
    done_before = {t.id: t.status for t in before.trials.values() if t.status is not None}

    status = run_swarm(RunOptions(quadratic(max_trials=len(before.trials) + 12), run_dir,
                                  resume=True))
    after = replay(run_dir)
    assert_every_trial_once(run_dir)
    assert before.best.commit in [b.commit for b in after.history]  # best only moved forward
    assert {t: after.trials[t].status for t in done_before} == done_before  # nothing rewritten
    assert all(after.trials[t].status == "lost" for t in before.inflight)
    assert status.best.mean <= replay_best_mean(before) + 0.1
    assert len(after.trials) > len(before.trials)


def replay_best_mean(state: SwarmState) -> float:
    runs = state.best_samples()
    return sum(runs) / len(runs)


def test_worker_killed_mid_trial_loses_only_that_trial_and_is_replaced(local_ray, tmp_path):
    run_dir = tmp_path / "run"
    config = quadratic(max_trials=12, budget_s=5.0)
    thread, outcome = run_in_thread(RunOptions(config, run_dir))
    wait_for(lambda: finished_count(run_dir) >= 1)
    coordinator = ray.get_actor(coordinator_name(run_dir))
    pids = {w: row.pid for w, row in ray.get(coordinator.status.remote()).workers.items() if row.pid}

    def a_trial_just_started() -> tuple[str, str] | None:
        # The ledger, not a snapshot. A trial started under a second ago has 4 s of its 5 s
        # budget left, so on a loaded CI machine it cannot finish before the kill lands.
        started = {e["trial"]: e["ts"] for e in events(run_dir) if e["event"] == "trial_started"}
        running = replay(run_dir).inflight  # trial -> worker
        return next(((t, w) for t, w in running.items()
                     if w in pids and time.time() - started[t] < 1.0), None)
    wait_for(lambda: a_trial_just_started() is not None)
    victim_trial, victim = a_trial_just_started()
    os.kill(pids[victim], signal.SIGKILL)
    thread.join(timeout=180)
    assert "error" not in outcome, outcome.get("error")
    assert_every_trial_once(run_dir)
    lost = [e for e in events(run_dir) if e["event"] == "trial_finished" and e["status"] == "lost"]
    assert [e["trial"] for e in lost] == [victim_trial]
    assert "worker died" in lost[0]["reason"]
    started_by = {e["trial"]: e["worker"] for e in events(run_dir) if e["event"] == "trial_started"}
    assert "w3" in started_by.values()  # the replacement worker did trials


def test_a_run_directory_a_live_driver_runs_is_refused_and_an_orphaned_coordinator_replaced(
        local_ray, tmp_path):
    from coordinator.actor import CoordinatorActor
    from swarm.core.errors import SwarmError

    run_dir = (tmp_path / "run").resolve()
    config = quadratic(max_trials=6)
    # A driver killed outright leaves its detached coordinator behind, silent from then on
    left = CoordinatorActor.options(name=coordinator_name(run_dir), lifetime="detached").remote(
        config, str(run_dir), "killed-driver", False)
    assert ray.get(left.ready.remote(), timeout=120) is None
    with pytest.raises(SwarmError, match="already being run by another driver"):
        run_swarm(RunOptions(config, run_dir, resume=True))  # it was heard from just now
    time.sleep(1.5)
    status = run_swarm(RunOptions(config, run_dir, resume=True, orphaned_after_s=1.0))
    # Under load a race can owe more runs than the budget left, and the wind-down ends the run
    assert status.stop_reason.startswith("max_trials reached (6)"), status.stop_reason
    sessions = [e["session"] for e in events(run_dir) if e["event"] == "session_started"]
    assert sessions[0] == "killed-driver" and len(sessions) == 2
    with pytest.raises(ValueError):
        ray.get_actor(coordinator_name(run_dir))  # the new driver took its coordinator down at the end


def test_workers_the_coordinator_sent_home_are_not_replaced(local_ray, tmp_path, caplog):
    # A slow poll leaves the driver's last status from before the trial budget ran out, so
    # only the workers ending cleanly can tell it the run is winding down.
    seen: set[str] = set()
    caplog.set_level(logging.INFO, logger="swarm.driver")
    status = run_swarm(RunOptions(quadratic(max_trials=6), tmp_path / "run", poll_s=3.0,
                                  on_status=lambda s: seen.update(s.workers if s else {})))
    assert status.stop_reason
    assert seen <= {"w0", "w1", "w2"}
    started = [r.getMessage() for r in caplog.records if "started on node" in r.getMessage()]
    assert len(started) == 3, started
