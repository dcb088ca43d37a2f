"""`swarm` as a user types it, in real subprocesses: errors, Ctrl-C, --resume, status."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SWARM = [sys.executable, "-m", "swarm.shell.cli"]


@pytest.fixture()
def user_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["HOME"] = str(tmp_path / "home")  # Ray writes its auth token under HOME
    return env


def swarm(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*SWARM, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_unknown_config_key_is_one_line_naming_file_and_key(tmp_path, user_env):
    config = tmp_path / "bad.yaml"
    config.write_text((ROOT / "configs/quadratic.yaml").read_text().replace(
        "guard: null", "guard: null\n  gaurd: true"))
    result = swarm("run", str(config), env=user_env)
    assert result.returncode == 2
    assert result.stderr == (f"swarm: error: {config}: unknown key 'target.gaurd' (did you mean "
                             "'target.guard'?); allowed keys here: repo, editable, readonly, run, "
                             "metric, tiebreak, budget_s, timeout_s, guard, score, hidden, max_log_bytes, env, needs\n")


def test_existing_run_dir_without_resume_is_refused_before_ray_starts(tmp_path, user_env):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "ledger.jsonl").write_text('{"event":"session_started","session":"x"}\n')
    started = time.monotonic()
    result = swarm("run", "configs/quadratic.yaml", "--run-dir", str(tmp_path / "run"), env=user_env)
    assert result.returncode == 2
    assert "already holds a run; pass --resume" in result.stderr
    assert time.monotonic() - started < 10


def test_status_of_a_directory_without_a_run_says_so(tmp_path, user_env):
    result = swarm("status", str(tmp_path), env=user_env)
    assert result.returncode == 2
    assert result.stderr == (f"swarm: error: {tmp_path}: no ledger.jsonl here; is it a run "
                             "directory (runs/<name>)?\n")


# The stop path (SIGINT and SIGTERM share it) is in test_stops.py and resuming in test_jobs.py
# and test_status_truth.py; this whole-CLI soak runs on demand with -m slow.
@pytest.mark.slow
@pytest.mark.ray
def test_ctrl_c_finishes_trials_in_flight_then_resume_continues(tmp_path, user_env):
    run_dir = tmp_path / "run"
    args = ["run", "configs/quadratic.yaml", "--workers", "2", "--max-trials", "200",
            "--run-dir", str(run_dir), "--no-progress"]
    # Started with SIGINT ignored, as a shell starts background jobs: Ctrl-C must still work.
    driver = subprocess.Popen([*SWARM, *args], cwd=ROOT, env=user_env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    ledger = run_dir / "ledger.jsonl"
    deadline = time.monotonic() + 90
    while not (ledger.exists() and ledger.read_text().count('"trial_finished"') >= 4):
        assert time.monotonic() < deadline and driver.poll() is None, driver.stdout.read()
        time.sleep(0.2)
    driver.send_signal(signal.SIGINT)
    output = driver.communicate(timeout=90)[0]
    assert driver.returncode == 130, output
    assert "stop requested" in output
    finished = ledger.read_text().count('"trial_finished"')
    assert ledger.read_text().count('"trial_started"') == finished  # in-flight trials finished

    resumed = swarm("run", "configs/quadratic.yaml", "--workers", "2", "--run-dir", str(run_dir),
                    "--resume", "--max-trials", str(finished + 4), "--no-progress", env=user_env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert ledger.read_text().count('"session_started"') == 2
    assert ledger.read_text().count('"trial_finished"') >= finished + 4
    # the last display: the session's time, its budget, and what each of its workers did
    final = resumed.stdout[resumed.stdout.rindex("run        quadratic"):]
    assert re.search(r"^elapsed +(\d+ min )?\d+ s this session", final, flags=re.M), final
    assert re.search(rf"^budget +trials \d+ of {finished + 4} \(100%[,)]", final, flags=re.M), final
    assert len(re.findall(r"^ w[01] +│[^│]*│ [1-9]\d* +│ [\d.]+ +│ stopped", final, flags=re.M)) == 2, final

    status = swarm("status", str(run_dir), env=user_env)
    assert status.returncode == 0
    assert "best" in status.stdout and "quadratic" in status.stdout
