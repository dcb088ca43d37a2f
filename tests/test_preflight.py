"""Preflight: a target that cannot work is refused before any budget is spent, every problem at
once, one line each; `swarm check` and `swarm run` as a user types them (real subprocesses)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from swarm.core.config import NeedSpec, SwarmConfig
from swarm.core.preflight import Problem, command_problem, machine_problems, needs_problems, tree_problems
from workers.proposers.readiness import proposer_problems
from workers.result_block import missing_metric

ROOT = Path(__file__).resolve().parents[1]
SWARM = [sys.executable, "-m", "swarm.shell.cli"]
TRAIN = "X = 1.0\nprint('---')\nprint('score:', X * X)\n"


def make_target(tmp: Path, train: str = TRAIN) -> Path:
    target = tmp / "target"
    target.mkdir()
    (target / "train.py").write_text(train)
    (target / "prepare.py").write_text("# the harness\n")
    (target / "program.md").write_text("# lower the score\n")
    return target


def config_of(target: Path, **target_keys: object) -> dict[str, object]:
    return {"name": "tiny", "program": "program.md",
            "target": {"repo": str(target), "editable": ["train.py"], "readonly": ["prepare.py"],
                       "run": "python train.py", "metric": {"name": "score"}, "budget_s": 1,
                       "timeout_s": 20, **target_keys},
            "workers": {"count": 1}, "acceptance": {"baseline_runs": 2, "noise_k": 2.0},
            "stop": {"max_trials": 6}}


def write_config(tmp: Path, data: dict[str, object]) -> Path:
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture()
def user_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["HOME"] = str(tmp_path / "home")  # Ray writes its auth token under HOME
    return env


def swarm(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SWARM, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


# -- the pure checks -------------------------------------------------------------------------

def test_globs_that_match_nothing_and_a_missing_program_are_all_named(tmp_path: Path) -> None:
    target = make_target(tmp_path)
    config = SwarmConfig.model_validate(config_of(target, editable=["src/*.py", "train.py"],
                                                  readonly=["harness.py"]) | {"program": "rules.md"})
    assert tree_problems(config, target) == [
        Problem("target.editable", f"'src/*.py' matches no file of {target} (it has: prepare.py, "
                                   "program.md, train.py)"),
        Problem("target.readonly", f"'harness.py' matches no file of {target} (it has: prepare.py, "
                                   "program.md, train.py)"),
        Problem("program", f"'rules.md' is not a file of {target}; write the target's instructions "
                           "to agents there"),
    ]


def test_the_first_word_of_a_command_is_looked_up_as_the_shell_would(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    tool = tmp_path / "bin" / "mytool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")  # not executable
    path = str(tmp_path / "bin")
    env = {"TOOL": "mytool"}
    assert command_problem("target.run", "mytool --fast", tmp_path, env, path) is None
    assert command_problem("target.run", "OMP_NUM_THREADS=1 $TOOL x", tmp_path, env, path) is None
    assert command_problem("target.run", "cd sub && make", tmp_path, env, path) is None  # a builtin
    assert command_problem("target.run", "pyhton train.py", tmp_path, env, path) == Problem(
        "target.run", f"'pyhton' (the first word of 'pyhton train.py') is not found on the PATH "
                      f"trials run with ({path}) and is not a shell builtin")
    assert command_problem("target.guard", "./run.sh", tmp_path, env, path) == Problem(
        "target.guard", f"'./run.sh' in './run.sh' is not executable (chmod +x it) ({tmp_path / 'run.sh'})")
    assert command_problem("target.run", "./gone.sh", tmp_path, env, path) == Problem(
        "target.run", f"'./gone.sh' in './gone.sh' does not exist ({tmp_path / 'gone.sh'})")
    assert command_problem("target.run", "./gone.sh", None, env, path) is None  # a URL's checkout


def test_needs_expand_target_env_and_name_their_hint(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "shards").mkdir(parents=True)
    (data / "shards" / "0.bin").write_text("x")
    needs = [NeedSpec(path="$DATA/shards/*.bin"), NeedSpec(path="$DATA/val.bin", hint="run prepare.py"),
             NeedSpec(path="local.txt")]
    assert needs_problems(needs, tmp_path, {"DATA": str(data)}) == [
        Problem("target.needs", f"'{data}/val.bin' is missing: run prepare.py"),
        Problem("target.needs", f"'{tmp_path}/local.txt' is missing")]
    assert needs_problems(needs, None, {"DATA": str(data)}) == [  # relative: in a checkout not here
        Problem("target.needs", f"'{data}/val.bin' is missing: run prepare.py")]


def test_machine_problems_read_target_env_expanded_on_this_machine(tmp_path: Path) -> None:
    target = make_target(tmp_path)
    config = SwarmConfig.model_validate(config_of(
        target, env={"DATA": "${SOME_UNSET_VAR_X:-~/data}"}, guard="no-such-guard-cmd",
        needs=[{"path": "$DATA/train.bin", "hint": "run prepare.py"}]))
    problems = machine_problems(config, target, {"HOME": str(tmp_path), "PATH": ""}, os.path.dirname(sys.executable))
    assert [p.key for p in problems] == ["target.guard", "target.needs"]
    assert problems[1].message == f"'{tmp_path}/data/train.bin' is missing: run prepare.py"


def test_the_proposer_must_be_buildable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = make_target(tmp_path, train="print('no constants here')\n")
    files = ["prepare.py", "program.md", "train.py"]
    base = config_of(target)
    mutate = SwarmConfig.model_validate(base)
    assert proposer_problems(mutate, target, files, {}, "") == [Problem(
        "target.editable", "nothing to mutate: none of train.py has a top-level UPPER_CASE numeric "
                           "constant or a `# choices: a, b` constant (proposer.kind mutate reads only .py files)")]
    agent = SwarmConfig.model_validate(base | {"proposer": {"kind": "agent", "command": "no-such-agent -p"}})
    assert [p.key for p in proposer_problems(agent, target, files, {}, "/nonexistent")] == ["proposer.command"]
    llm = SwarmConfig.model_validate(base | {"proposer": {"kind": "llm", "model": "anthropic/claude-sonnet-4-5"}})
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert proposer_problems(llm, target, files, {}, "") == [Problem(
        "proposer.model", "'anthropic/claude-sonnet-4-5' needs ANTHROPIC_API_KEY in the environment "
                          "(litellm's list for its provider); export it where the workers start")]
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    assert proposer_problems(llm, target, files, {}, "") == []


def test_a_missing_metric_names_what_the_block_had() -> None:
    assert missing_metric("---\nscore: 1\nseconds: 2\n", "loss") == (
        "no finite 'loss:' after the last '---' line; the block has: score, seconds")
    assert missing_metric("just text\n", "loss") == (
        "no '---' line in the output, so no result block to read 'loss:' from")
    assert missing_metric("---\nloss: inf\n", "loss") == "'loss: inf' after the last '---' line is not a finite number"


def test_a_score_that_runs_an_agent_editable_file_and_a_hidden_glob_hiding_nothing_are_named(
        tmp_path: Path) -> None:
    target = make_target(tmp_path)
    config = SwarmConfig.model_validate(config_of(
        target, score="python train.py --score", hidden=["data/test/*", "$HOME/heldout", "/srv/heldout"]))
    assert tree_problems(config, target) == [
        Problem("target.hidden", "'data/test/*' matches no file of " + str(target) + "; absolute paths name "
                                 "files outside the target"),
        Problem("target.score", "'train.py' is not in target.readonly: the score phase must run only files "
                                "agents cannot change"),
    ]
    scored_by_the_harness = SwarmConfig.model_validate(config_of(target, score="python prepare.py"))
    assert tree_problems(scored_by_the_harness, target) == []


def test_the_score_command_is_looked_for_like_run(tmp_path: Path) -> None:
    target = make_target(tmp_path)
    config = SwarmConfig.model_validate(config_of(target, score="no-such-scorer --x"))
    here = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    problems = machine_problems(config, target, {"PATH": here}, here)
    assert [p.key for p in problems] == ["target.score"]
    assert "'no-such-scorer' (the first word of 'no-such-scorer --x') is not found" in problems[0].message


# -- swarm check and swarm run, as typed -----------------------------------------------------

def test_check_says_ok_in_one_line(tmp_path: Path, user_env: dict[str, str]) -> None:
    config = write_config(tmp_path, config_of(make_target(tmp_path)))
    result = swarm("check", str(config), env=user_env)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == ("ok: tiny: 1 editable and 1 readonly file(s), program.md; the run command "
                             "found; trials run in the jail; proposer mutate ready\n")


def test_check_names_every_problem_at_once(tmp_path: Path, user_env: dict[str, str]) -> None:
    target = make_target(tmp_path)
    data = config_of(target, editable=["src/*.py"], readonly=["prepare.py", "harness.py"],
                     run="pyhton train.py", guard="./guard.sh",
                     needs=[{"path": str(tmp_path / "data.bin"), "hint": "run prepare.py first"}])
    config = write_config(tmp_path, data)
    result = swarm("check", str(config), env=user_env)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert [line.split(": ")[3] for line in lines] == [
        "target.editable", "target.readonly", "target.run", "target.guard", "target.needs"]
    assert all(line.startswith(f"swarm: error: {config}: ") for line in lines)
    assert lines[4].endswith(f"'{tmp_path / 'data.bin'}' is missing: run prepare.py first")
    assert "Traceback" not in result.stderr


def test_ml_target_without_its_data_is_refused_with_how_to_make_it(tmp_path: Path,
                                                                  user_env: dict[str, str]) -> None:
    user_env["ML_TARGET_DATA"] = str(tmp_path / "no-data-yet")
    result = swarm("check", "configs/ml_target_cpu.yaml", env=user_env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"swarm: error: configs/ml_target_cpu.yaml: target.needs: '{tmp_path}/no-data-yet/{name}' is "
        "missing: run ml_target/prepare.py (or set ML_TARGET_DATA to where it ran)"
        for name in ("train.bin", "heldout/val.bin")]


def test_run_refuses_a_broken_target_before_ray_starts(tmp_path: Path, user_env: dict[str, str]) -> None:
    config = write_config(tmp_path, config_of(make_target(tmp_path), editable=["nothing/*.py"]))
    run_dir = tmp_path / "run"
    started = time.monotonic()
    result = swarm("run", str(config), "--run-dir", str(run_dir), env=user_env)
    assert result.returncode == 2
    assert result.stderr == (f"swarm: error: {config}: target.editable: 'nothing/*.py' matches no file "
                             f"of {tmp_path / 'target'} (it has: prepare.py, program.md, train.py)\n")
    assert not (run_dir / "ledger.jsonl").exists() and not (tmp_path / "home" / ".ray").exists()
    assert time.monotonic() - started < 30


def test_a_git_url_target_is_checked_once_the_coordinator_cloned_it(tmp_path: Path) -> None:
    import git

    from coordinator.service import Coordinator
    from swarm.core.errors import ConfigError

    target = make_target(tmp_path)
    repo = git.Repo.init(target)
    repo.git.add("--all")
    repo.git.commit("-q", "-m", "target", env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                                                  "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})
    url = f"file://{target}"
    config = SwarmConfig.model_validate(config_of(target, repo=url, readonly=["harness.py"]))
    with pytest.raises(ConfigError) as refused:
        Coordinator(config, tmp_path / "run", "s1", resume=False)
    assert str(refused.value) == (f"the cloned target: target.readonly: 'harness.py' matches no file of "
                                  f"{url} (it has: prepare.py, program.md, train.py)")
    assert not (tmp_path / "run" / "ledger.jsonl").exists()  # nothing recorded: fix it and run again
