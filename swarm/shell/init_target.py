"""`swarm init [DIR]`: a target from an existing repository. Asks (or takes by flags) what to
improve and what may change, checks it as `swarm check` does, runs one baseline trial through the
worker's own evaluation, and only then writes configs/NAME.yaml and DIR/program.md: a refusal
leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swarm.core.config import SwarmConfig, load_config
from swarm.core.envvars import expanded_env, worker_search_path
from swarm.core.errors import ConfigError, SwarmError
from swarm.core.preflight import tree_files
from swarm.core.scaffold import FLAG_OF, Answers, apply_answer, config_text, guessed, missing, program_text, questions
from swarm.shell.preflight import preflight
from workers.classify import classify_trial
from workers.evaluation import Evaluator, TrialRun
from workers.sandbox import scrubbed_env

__all__ = ["Baseline", "init_target", "ask"]


@dataclass(frozen=True)
class Baseline:
    metric: float
    seconds: float


def init_target(answers: Answers, root: Path, *, interactive: bool, force: bool,
                read: Callable[[str], str] = input) -> int:
    """Scaffolds, checks and measures the target in `root`; SwarmError (one line) on refusal."""
    if not root.is_dir():
        raise SwarmError(f"{root} is not a directory; give the repository to improve: swarm init DIR")
    files = tree_files(root)
    answers = guessed(answers, files, root.resolve().name)
    if interactive:
        answers = ask(answers, read)
    if needed := missing(answers):
        raise SwarmError(f"swarm init {root}: give {', '.join(needed)} (or answer on a terminal)")
    destination = Path("configs") / f"{answers.name}.yaml"
    if destination.exists() and not force:
        raise SwarmError(f"{destination} already exists; pass --force to overwrite it or --name another")
    text = config_text(answers, _repo_field(root))
    config = _loaded(text, destination, root)
    write_program = not (root / config.program).exists()
    _check(config, root, destination, write_program)
    baseline = run_baseline(config, root, answers, write_program)
    _write(destination, text, root / config.program if write_program else None, answers)
    print(f"baseline: {config.target.metric.name} = {baseline.metric:.6g} in {baseline.seconds:.1f} s")
    print(f"wrote {destination}" + (f" and {root / config.program}" if write_program else "")
          + f"; next: swarm run {destination}")
    return 0


def ask(answers: Answers, read: Callable[[str], str]) -> Answers:
    """Each question in turn, its default in brackets; a bad answer is asked again."""
    for index in range(len(questions(answers))):
        question = questions(answers)[index]  # asked anew: a default may follow an earlier answer
        while True:
            shown = f" [{question.default}]" if question.default else ""
            try:
                answers = apply_answer(answers, question, read(f"{question.prompt}{shown}: "))
                break
            except SwarmError as exc:
                print(f"  {exc}", file=sys.stderr)
    return answers


def _repo_field(root: Path) -> str:
    # Relative to here when DIR is under it (the config then travels with the checkout), else absolute.
    here, there = Path.cwd().resolve(), root.resolve()
    return str(there.relative_to(here)) if there.is_relative_to(here) else str(there)


def _loaded(text: str, destination: Path, root: Path) -> SwarmConfig:
    """The config as `swarm run` will read it: loaded from a file, but not the final one yet."""
    with tempfile.TemporaryDirectory(prefix="swarm-init-") as scratch:
        trial_path = Path(scratch) / destination.name
        trial_path.write_text(text)
        try:
            config = load_config(trial_path)
        except ConfigError as exc:
            raise SwarmError(str(exc).replace(str(trial_path), str(destination))) from None
    return config.with_overrides({"target.repo": str(root.resolve())})


def _check(config: SwarmConfig, root: Path, destination: Path, write_program: bool) -> None:
    """`swarm check`'s problems, each with the flag that fixes it; a missing program.md is not one,
    since init writes it."""
    problems = [p for p in preflight(config, root) if not (write_program and p.key == "program")]
    if problems:
        raise SwarmError("\n".join(p.line(str(destination)) + _fix(p.key) for p in problems))


def _fix(key: str) -> str:
    return f"; fix: swarm init {FLAG_OF[key]} ..." if key in FLAG_OF else ""


def run_baseline(config: SwarmConfig, root: Path, answers: Answers, write_program: bool) -> Baseline:
    """One trial of the target as it is, the way a worker runs it: on a copy of its files (as a
    run imports them), in the jail the config names, classified by the worker's own rules."""
    with tempfile.TemporaryDirectory(prefix="swarm-init-") as scratch:
        checkout = Path(scratch) / "w0" / "repo"
        files = _copy_tree(root, checkout)
        if write_program:
            (checkout / config.program).write_text(program_text(answers))
            files = sorted([*files, config.program])
        env = _trial_env(config, Path(scratch) / "w0" / "home")
        trial = Evaluator(config, checkout, Path(scratch) / "w0", (str(root.resolve()),)).evaluate(
            "baseline", env, files)
        return _judged(config, trial)


def _copy_tree(root: Path, checkout: Path) -> list[str]:
    files = tree_files(root)
    for name in files:
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, checkout / name)
    return files


def _trial_env(config: SwarmConfig, home: Path) -> dict[str, str]:
    # The variables workers.loop gives a trial (a worker's loop is not at hand here).
    home.mkdir(parents=True, exist_ok=True)
    return scrubbed_env(os.environ, {
        **expanded_env(config.target.env), "HOME": str(home),
        "PATH": worker_search_path(sys.executable, os.environ), "PYTHONUNBUFFERED": "1",
        "SWARM_BUDGET_S": f"{config.target.budget_s:g}", "SWARM_TRIAL_ID": "baseline",
        "SWARM_WORKER_ID": "init"})


def _judged(config: SwarmConfig, trial: TrialRun) -> Baseline:
    """The baseline's metric and time, or the refusal that says what to change."""
    name = config.target.metric.name
    status, metric, _metrics, reason = classify_trial(trial, name)
    seconds = sum(p.result.seconds for p in (trial.run, trial.guard, trial.score) if p)
    if status == "ok" and metric is not None:
        return Baseline(metric, seconds)
    if status == "no_metric":
        raise SwarmError(f"the baseline printed no '{name}': {reason}; pass --metric with a key it "
                         f"prints, or make `{config.target.run}` print '{name}: <number>' after a '---' line")
    if status == "guard_failed" and trial.guard is not None:
        raise SwarmError(f"the guard `{config.target.guard}` fails on the baseline (exit code "
                         f"{trial.guard.result.exit_code}; its log ends: {_last_line(trial.guard.log)}); "
                         "fix the repository or pass another --guard ('' for none)")
    raise SwarmError(f"the baseline trial ended {status}: {reason}; its log ends: "
                     f"{_last_line(trial.log())}; fix `{config.target.run}` (or pass another --run)")


def _last_line(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return lines[-1] if lines else "(nothing)"


def _write(destination: Path, text: str, program: Path | None, answers: Answers) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(text)
    if program is not None:
        program.write_text(program_text(answers))
