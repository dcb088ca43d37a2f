"""A broken target or proposer ends the run, bounded and saying why: refused changes are never
the base of the next attempt and count toward stop.max_refusals; a baseline that fails every
time stops the run with exit 2 and the log that explains it. Pure rules first, then real runs
(worker loops on real subprocesses, and `swarm run` as typed, on a real local Ray)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import git
import pytest
import yaml
from rich.console import Console

from coordinator.decide import broken_baseline, refusal_budget, stop_reason
from coordinator.service import Coordinator
from coordinator.status import load_status
from swarm.core.config import AcceptanceSpec, StopSpec, SwarmConfig
from swarm.shell.progress import render_status
from tests.test_coordinator_inprocess import events, run_workers
from tests.test_decide import BASELINES, START, failures, finished, replay, started
from workers.proposers.agent import AgentProposer
from workers.proposers.mutate import MutateProposer

ROOT = Path(__file__).resolve().parents[1]
SWARM = [sys.executable, "-m", "swarm.shell.cli"]
TRAIN = "X = 1.0\nprint('---')\nprint('score:', X * X)\n"
OUTSIDE = "changes paths agents may not edit: prepare.py"
# An agent that edits the readonly harness every time, the same way.
RIGS_THE_HARNESS = """
with open("prepare.py", "a") as harness:
    harness.write("RIGGED = True\\n")
print("Hypothesis: rig the harness")
"""


def out_of_scope(n: int, worker: str = "w0", reason: str = OUTSIDE) -> list[dict[str, Any]]:
    return [started(f"{n:05d}", "candidate", worker, f"c{n}", f"t{n}"),
            finished(f"{n:05d}", "out_of_scope", reason=reason)]


# -- the rules, pure -------------------------------------------------------------------------

def test_the_default_refusal_budget_is_a_share_of_max_trials() -> None:
    assert [refusal_budget(StopSpec(max_trials=n)) for n in (6, 20, 100, 1000)] == [10, 10, 50, 500]
    assert refusal_budget(StopSpec(max_trials=6, max_refusals=3)) == 3
    assert refusal_budget(StopSpec(max_trials=None)) is None  # only the hundred-in-a-row rule


def test_refusals_end_the_run_naming_what_the_proposer_kept_touching() -> None:
    refused = (out_of_scope(4) + out_of_scope(5, "w1") + out_of_scope(6, reason="readonly file prepare.py "
                                                                              "differs from its recorded hash")
               + out_of_scope(7, reason="changes paths agents may not edit: data.csv, prepare.py")
               + failures("w0", 1, "the agent changed nothing"))
    stop = StopSpec(max_trials=6, max_refusals=5)
    state = replay(START, BASELINES, refused)
    assert stop_reason(state, stop, "minimize", 0.0, False) == (
        "5 proposals were refused or failed this session (stop.max_refusals 5): out_of_scope 4, "
        "proposal_failed 1; the proposer kept touching prepare.py (4 times), data.csv (1 times), "
        "outside target.editable or readonly; the last: proposal failed: the agent changed nothing")
    assert stop_reason(replay(START, BASELINES, refused[:-1]), stop, "minimize", 0.0, False) is None
    # evaluations between them do not reset the budget (unlike the in-a-row rule)...
    ok = [started("00009", "candidate", "w0", "c9", "t9"), finished("00009", metric=1.0)]
    assert stop_reason(replay(START, BASELINES, refused[:-1], ok, failures("w0", 1)), stop, "minimize",
                       0.0, False) is not None
    # ...but a new session (a fixed proposer, perhaps) starts a new one
    again = [{"event": "session_started", "session": "s2"}]
    assert stop_reason(replay(START, BASELINES, refused, again), stop, "minimize", 0.0, False) is None


def test_a_baseline_that_fails_baseline_runs_times_in_a_row_stops_the_run() -> None:
    acceptance = AcceptanceSpec(baseline_runs=3)
    crashed = []
    for n in (1, 2, 3):
        crashed += [started(f"{n:05d}", "baseline", f"w{n}", "c0", "t0", hardware="cpu:x"),
                    finished(f"{n:05d}", "crash", reason=f"exit code 1; the log ends: boom {n}")]
    state = replay(START, crashed)
    assert broken_baseline(state, acceptance) == (
        "best's baseline failed 3 times in a row on cpu:x; the latest, trial 00003 ended crash: "
        "exit code 1; the log ends: boom 3")
    assert stop_reason(state, StopSpec(), "minimize", 0.0, False, acceptance=acceptance) == \
        broken_baseline(state, acceptance)
    assert broken_baseline(replay(START, crashed[:4]), acceptance) is None  # two so far
    ok = [started("00004", "baseline", "w0", "c0", "t0", hardware="cpu:x"), finished("00004", metric=1.0)]
    assert broken_baseline(replay(START, ok, crashed), acceptance) is None  # it ran once: flaky, not broken


def test_a_rule_the_run_reached_wins_over_a_failure_met_as_it_stopped() -> None:
    refused = replay(START, BASELINES, failures("w0", 10, "prepared but never run: the swarm stopped"))
    assert stop_reason(refused, StopSpec(max_trials=6, hours=0.5), "minimize", 1800.0, False) == "hours reached (0.5)"
    assert stop_reason(refused, StopSpec(max_trials=6), "minimize", 0.0, True) == "stop requested"
    assert (stop_reason(refused, StopSpec(max_trials=6), "minimize", 0.0, False) or "").startswith("10 proposals")


# -- real runs -------------------------------------------------------------------------------

def make_target(tmp: Path, train: str = TRAIN) -> Path:
    target = tmp / "target"
    target.mkdir()
    (target / "train.py").write_text(train)
    (target / "prepare.py").write_text("# the harness\n")
    (target / "program.md").write_text("# lower the score\n")
    return target


def config_of(target: Path, **keys: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "tiny", "program": "program.md",
        "target": {"repo": str(target), "editable": ["train.py"], "readonly": ["prepare.py"],
                   "run": "python train.py", "metric": {"name": "score"}, "budget_s": 1, "timeout_s": 20},
        "workers": {"count": 2}, "acceptance": {"baseline_runs": 2, "noise_k": 2.0, "confirm_runs": 0},
        "stop": {"max_trials": 6}}
    for dotted, value in keys.items():
        section, key = dotted.split(".")
        data.setdefault(section, {})[key] = value
    return data


def agent_command(tmp: Path, script: str) -> str:
    path = tmp / "agent.py"
    path.write_text(script)
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(path))}"


def test_an_agent_that_keeps_editing_the_harness_is_never_stacked_and_ends_the_run(tmp_path: Path) -> None:
    command = agent_command(tmp_path, RIGS_THE_HARNESS)
    config = SwarmConfig.model_validate(config_of(make_target(tmp_path), **{
        "proposer.kind": "agent", "proposer.command": command}))
    coordinator = Coordinator(config, tmp_path / "run", "s1", resume=False)
    began = time.monotonic()
    run_workers(coordinator, tmp_path / "workers", [AgentProposer(config.proposer)] * 2)
    took = time.monotonic() - began
    coordinator.close()
    candidates = [e for e in events(tmp_path / "run", "trial_started") if e["kind"] == "candidate"]
    assert {e["hypothesis"] for e in candidates} == {"rig the harness"}  # never "rig; rig"
    repo = git.Repo(tmp_path / "run" / "repo")
    for trial in candidates:  # each change is the one edit, on a clean parent
        assert repo.git.diff(trial["parent"], trial["commit"], "--numstat") == "1\t0\tprepare.py"
    reason = coordinator.stop_reason() or ""
    assert reason.startswith("10 proposals were refused or failed this session (stop.max_refusals 10): ")
    # a second worker racing to the same change is refused as a duplicate: that one names no path
    assert re.search(r"; the proposer kept touching prepare\.py \((9|10) times\), outside ", reason), reason
    assert took < 60


def test_mutate_with_nothing_to_mutate_ends_the_run_instead_of_spinning(tmp_path: Path) -> None:
    target = make_target(tmp_path, train="print('---')\nprint('score:', 1.0)\n")
    config = SwarmConfig.model_validate(config_of(target, **{"stop.max_refusals": 4}))
    coordinator = Coordinator(config, tmp_path / "run", "s1", resume=False)
    run_workers(coordinator, tmp_path / "workers", [MutateProposer(seed=1), MutateProposer(seed=2)])
    coordinator.close()
    # two workers: the one that fails while the other's failure ends the run may add one more
    reason = coordinator.stop_reason() or ""
    counted = re.match(r"(\d+) proposals were refused or failed this session \(stop.max_refusals 4\): "
                       r"proposal_failed (\d+); the last: proposal failed: nothing to mutate: none of "
                       r"the editable files \(train.py\)", reason)
    assert counted and counted.group(1) == counted.group(2) and int(counted.group(1)) in (4, 5), reason


def test_a_worker_without_the_data_a_target_needs_runs_nothing_and_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "data" / "train.bin"
    config = SwarmConfig.model_validate(config_of(make_target(tmp_path), **{
        "target.needs": [{"path": str(missing), "hint": "run prepare.py"}]}))
    coordinator = Coordinator(config, tmp_path / "run", "s1", resume=False)
    run_workers(coordinator, tmp_path / "workers", [MutateProposer(seed=1)])
    coordinator.close()
    baselines = [e for e in events(tmp_path / "run", "trial_finished")]
    assert [e["status"] for e in baselines] == ["crash", "crash"]
    assert baselines[0]["reason"].endswith(f"'{missing}' is missing: run prepare.py")
    assert (coordinator.stop_reason() or "").startswith("best's baseline failed 2 times in a row")
    live, read = coordinator.status(), load_status(tmp_path / "run")  # the driver's and `swarm status`'s
    assert live.stop_failed and live.latest_failure == read.latest_failure
    assert read.latest_failure is not None and read.latest_failure.status == "crash"
    shown = Console(width=400, record=True)
    shown.print(render_status(read))
    assert f"latest failure  crash in baseline {read.latest_failure.trial}, " in shown.export_text()


@pytest.fixture()
def user_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["HOME"] = str(tmp_path / "home")  # Ray writes its auth token under HOME
    return env


def swarm_run(tmp: Path, data: dict[str, Any], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    config = tmp / "tiny.yaml"
    config.write_text(yaml.safe_dump(data))
    return subprocess.run([*SWARM, "run", str(config), "--run-dir", str(tmp / "run"), "--no-progress"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


def error_lines(stderr: str) -> list[str]:
    """Our message and what follows it (Ray's start-up warnings come first)."""
    lines = stderr.splitlines()
    return lines[next(i for i, line in enumerate(lines) if line.startswith("swarm: error: ")):]


def test_run_with_a_wrong_metric_name_exits_2_naming_the_keys_the_block_had(
        tmp_path: Path, user_env: dict[str, str]) -> None:
    data = config_of(make_target(tmp_path))
    data["target"]["metric"] = {"name": "loss"}
    result = swarm_run(tmp_path, data, user_env)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = error_lines(result.stderr)
    # two workers: a third baseline may have started before the second failed
    assert re.match(r"swarm: error: best's baseline failed [23] times in a row on ", lines[0]), lines[0]
    assert lines[0].endswith(" ended no_metric: no finite 'loss:' after the last '---' line; the block has: score")
    trial = lines[0].split("the latest, trial ")[1].split()[0]
    assert lines[1:] == [f"the end of {tmp_path / 'run' / 'logs' / trial}.log:", "    ---", "    score: 1.0"]
    assert "latest failure" in result.stdout and "no_metric in baseline" in result.stdout
    statuses = [e["status"] for e in events(tmp_path / "run", "trial_finished")]
    assert set(statuses) == {"no_metric"} and len(statuses) in (2, 3)  # and no candidate was proposed


def test_run_with_an_agent_that_keeps_editing_the_harness_exits_2_naming_it(
        tmp_path: Path, user_env: dict[str, str]) -> None:
    data = config_of(make_target(tmp_path), **{"proposer.kind": "agent",
                                               "proposer.command": agent_command(tmp_path, RIGS_THE_HARNESS)})
    began = time.monotonic()
    result = swarm_run(tmp_path, data, user_env)
    assert result.returncode == 2, result.stderr[-2000:]
    first = error_lines(result.stderr)[0]
    assert first.startswith("swarm: error: 10 proposals were refused or failed this session "
                            "(stop.max_refusals 10): ")
    assert re.search(r"; the proposer kept touching prepare\.py \((9|10) times\), outside ", first), first
    assert time.monotonic() - began < 150
