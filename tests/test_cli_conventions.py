"""The conventions a user expects of a CLI, in real subprocesses: --version, bare `swarm` is
help, every config problem at once (one `swarm: error:` line each), --set on run and check."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import swarm as swarm_package

ROOT = Path(__file__).resolve().parents[1]
SWARM = [sys.executable, "-m", "swarm.shell.cli"]


@pytest.fixture()
def user_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["HOME"] = str(tmp_path / "home")
    return env


def swarm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SWARM, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_version_names_this_installation_ray_and_python(user_env: dict[str, str]) -> None:
    result = swarm("--version", env=user_env)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    python = ".".join(map(str, sys.version_info[:3]))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"swarm {project['version']} (ray 2.60.0, python {python})\n"


def test_the_packages_own_version_is_the_projects(user_env: dict[str, str]) -> None:
    # what --version falls back to in a checkout that was never installed
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert swarm_package.__version__ == project["version"]


def test_bare_swarm_prints_help_and_exits_0(user_env: dict[str, str]) -> None:
    result = swarm(env=user_env)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("usage: swarm [-h] [--version] COMMAND ...")
    assert all(command in result.stdout for command in ("run", "check", "status", "report", "join"))


def test_an_unknown_command_is_still_a_usage_error(user_env: dict[str, str]) -> None:
    result = swarm("frobnicate", env=user_env)
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr


def test_every_config_problem_is_a_line_of_its_own_and_exit_2(tmp_path: Path, user_env: dict[str, str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text((ROOT / "configs/quadratic.yaml").read_text()
                      .replace("budget_s: 1", "budget: 1").replace("direction: minimize", "direction: min"))
    result = swarm("run", str(config), "--set", "stop.hourz=1", "--run-dir", str(tmp_path / "run"),
                   env=user_env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"swarm: error: {config}: key 'target.metric.direction': Input should be 'minimize' or "
        "'maximize' (got 'min')",
        f"swarm: error: {config}: unknown key 'target.budget' (did you mean 'target.budget_s'? it is "
        "required and missing); allowed keys here: repo, editable, readonly, run, metric, tiebreak, budget_s, "
        "timeout_s, guard, score, hidden, max_log_bytes, env, needs",
        "swarm: error: --set: unknown key 'stop.hourz' (did you mean 'stop.hours'?); allowed keys "
        "here: max_trials, hours, target_metric, max_cost_usd, max_refusals"]
    assert not (tmp_path / "run").exists()  # refused before anything was made


def test_check_takes_set_too(tmp_path: Path, user_env: dict[str, str]) -> None:
    result = swarm("check", "configs/quadratic.yaml", "--set", "acceptance.false_accept=2", env=user_env)
    assert result.returncode == 2
    assert result.stderr == ("swarm: error: --set: key 'acceptance.false_accept': Input should be "
                             "less than or equal to 0.5 (got 2)\n")


def test_check_sees_the_value_set_gives(user_env: dict[str, str]) -> None:
    ok = swarm("check", "configs/quadratic.yaml", "--set", "stop.hours=0.5", env=user_env)
    assert (ok.returncode, ok.stdout.startswith("ok: quadratic:")) == (0, True), ok.stderr
    moved = swarm("check", "configs/quadratic.yaml", "--set", "target.editable=[nomatch.py]", env=user_env)
    assert moved.returncode == 2
    assert "target.editable: 'nomatch.py' matches no file" in moved.stderr
