"""`swarm init DIR`: a target scaffolded from an existing git repository, by flags and by typed
answers, its baseline run through the worker's real evaluation, and each refusal's one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from swarm.core.config import load_config
from swarm.core.scaffold import Answers, apply_answer, guessed, questions
from workers.evaluation import jail_missing

ROOT = Path(__file__).resolve().parents[1]
SWARM = [sys.executable, "-m", "swarm.shell.cli"]
needs_jail = pytest.mark.skipif(jail_missing() is not None, reason=f"no jail here: {jail_missing()}")

TRAIN = "LR = 0.5\nprint('training', flush=True)\nprint('---')\nprint(f'loss: {LR * 2}')\nprint('steps: 3')\n"
TEST = "def test_ok() -> None:\n    assert True\n"


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A little existing repository: train.py prints a result block, tests/ holds a guard."""
    where = tmp_path / "little"
    (where / "tests").mkdir(parents=True)
    (where / "train.py").write_text(TRAIN)
    (where / "prepare.py").write_text("DATA = 1\n")
    (where / "tests" / "test_train.py").write_text(TEST)
    for command in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t",
                                                   "commit", "-q", "-m", "start"]):
        subprocess.run(["git", *command], cwd=where, check=True)
    return where


def swarm_init(cwd: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([*SWARM, "init", *args], cwd=cwd, env=env, input=stdin, capture_output=True,
                          text=True, timeout=60)


FLAGS = ("--metric", "loss", "--editable", "train.py", "--readonly", "prepare.py", "--run", "python train.py",
         "--guard", "python -m pytest -q -p no:cacheprovider tests", "--budget-s", "5", "--yes")


@needs_jail
def test_the_flag_path_measures_the_baseline_and_writes_a_config_that_loads(repo: Path) -> None:
    here = repo.parent
    result = swarm_init(here, "little", *FLAGS)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.startswith("baseline: loss = 1 in ") and first.endswith(" s")
    assert second == "wrote configs/little.yaml and little/program.md; next: swarm run configs/little.yaml"
    config = load_config(here / "configs" / "little.yaml")
    target = config.target
    assert (config.name, target.repo, target.editable, target.readonly) == (
        "little", "little", ["train.py"], ["prepare.py"])
    assert (target.metric.name, target.metric.direction, target.budget_s, target.timeout_s) == (
        "loss", "minimize", 5, 70)
    program = (repo / "program.md").read_text()
    assert "Goal: get the lowest `loss`" in program and "Edit only `train.py`. Fixed: `prepare.py`." in program


@needs_jail
def test_an_existing_config_is_kept_without_force(repo: Path) -> None:
    (repo.parent / "configs").mkdir()
    (repo.parent / "configs" / "little.yaml").write_text("mine\n")
    result = swarm_init(repo.parent, "little", *FLAGS)
    assert (result.returncode, result.stderr) == (2, "swarm: error: configs/little.yaml already exists; "
                                                     "pass --force to overwrite it or --name another\n")
    assert (repo.parent / "configs" / "little.yaml").read_text() == "mine\n"


def refused(repo: Path, *changed: str) -> str:
    """The one error line of a refused init; nothing was written."""
    result = swarm_init(repo.parent, "little", *FLAGS, *changed)
    assert result.returncode == 2 and result.stdout == ""
    assert not (repo.parent / "configs").exists() and not (repo / "program.md").exists()
    assert len(result.stderr.splitlines()) == 1, result.stderr
    return result.stderr


@needs_jail
def test_a_metric_the_baseline_does_not_print_is_refused_naming_the_keys_it_did(repo: Path) -> None:
    assert refused(repo, "--metric", "val_bpb") == (
        "swarm: error: the baseline printed no 'val_bpb': no finite 'val_bpb:' after the last '---' line; "
        "the block has: loss, steps; pass --metric with a key it prints, or make `python train.py` print "
        "'val_bpb: <number>' after a '---' line\n")


@needs_jail
def test_a_guard_failing_on_the_baseline_is_refused_with_its_exit_and_last_line(repo: Path) -> None:
    assert refused(repo, "--guard", "python -c \"print('tests: 2 failed'); raise SystemExit(3)\"") == (
        "swarm: error: the guard `python -c \"print('tests: 2 failed'); raise SystemExit(3)\"` fails on "
        "the baseline (exit code 3; its log ends: tests: 2 failed); fix the repository or pass another "
        "--guard ('' for none)\n")


def test_a_glob_matching_nothing_is_refused_naming_it(repo: Path) -> None:
    line = refused(repo, "--editable", "model/*.py")
    assert line.startswith("swarm: error: configs/little.yaml: target.editable: 'model/*.py' matches no file of ")
    assert line.endswith("; fix: swarm init --editable ...\n")


def test_without_a_metric_off_a_terminal_it_names_the_flag(repo: Path) -> None:
    result = swarm_init(repo.parent, "little", "--yes")
    assert (result.returncode, result.stderr) == (
        2, "swarm: error: swarm init little: give --metric NAME (or --pass-rate) (or answer on a terminal)\n")


def test_the_guesses_come_from_the_files_present() -> None:
    files = ["prepare.py", "tests/test_train.py", "train.py"]
    guess = guessed(Answers(), files, "little repo")
    assert (guess.name, guess.run, guess.editable, guess.readonly, guess.guard, guess.budget_s) == (
        "little-repo", "python train.py", ("train.py",), ("prepare.py",), "pytest -q", 300.0)
    assert guessed(Answers(), ["lib.py"], "x").guard == "" and guessed(Answers(), ["lib.py"], "x").run is None


def test_typed_answers_become_the_spec_and_a_bad_one_is_refused() -> None:
    answers = guessed(Answers(), ["train.py", "tests/t.py"], "little")
    typed = {"metric": "pass_rate", "direction": "", "readonly": "-", "guard": "-", "budget_s": "60"}
    for question in questions(answers):  # anew each time, as the shell asks them
        question = next(q for q in questions(answers) if q.field == question.field)
        answers = apply_answer(answers, question, typed.get(question.field, ""))
    assert answers == Answers(name="little", metric="pass_rate", direction="maximize", editable=("train.py",),
                              readonly=(), run="python train.py", guard="", budget_s=60.0)
    with pytest.raises(Exception, match="answer minimize or maximize"):
        apply_answer(answers, questions(answers)[1], "lower")


@needs_jail
def test_the_interactive_path_takes_answers_typed_on_stdin(repo: Path) -> None:
    # Off a terminal it would ask nothing; the wizard's own loop is driven here with typed lines.
    code = ("import sys; from pathlib import Path; from swarm.core.scaffold import Answers\n"
            "from swarm.shell.init_target import init_target\n"
            "lines = iter(sys.stdin.read().splitlines())\n"
            "sys.exit(init_target(Answers(), Path('little'), interactive=True, force=False, "
            "read=lambda prompt: (print(prompt), next(lines))[1]))\n")
    typed = "loss\nsideways\n\n\n\n\npython -m pytest -q -p no:cacheprovider tests\n5\nsmall\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=repo.parent, input=typed, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:3] == ["metric to read from the result block (or pass_rate): ",
                                              "minimize or maximize [minimize]: ",
                                              "minimize or maximize [minimize]: "]
    assert "'sideways': answer minimize or maximize" in result.stderr
    assert "baseline: loss = 1 in " in result.stdout
    config = load_config(repo.parent / "configs" / "small.yaml")
    assert (config.target.run, config.target.readonly) == ("python train.py", ["prepare.py"])
