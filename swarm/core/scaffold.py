"""`swarm init DIR`'s pure side: from the answers given (flags or typed) and the files DIR holds,
the target's config and program text. No I/O: the shell asks the questions and writes files."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

import yaml

from swarm.core.errors import SwarmError

__all__ = ["Answers", "Question", "questions", "guessed", "missing", "apply_answer", "config_text",
           "program_text", "FLAG_OF", "timeout_for", "direction_of"]

Direction = Literal["minimize", "maximize"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Scripts an experiment is usually started from, in the order a guess prefers them.
_SCRIPTS = ("train.py", "main.py", "run.py", "bench.py", "experiment.py")
# The preflight's config keys, by the flag of `swarm init` that fixes each.
FLAG_OF = {"target.editable": "--editable", "target.readonly": "--readonly", "target.run": "--run",
           "target.guard": "--guard", "target.metric.name": "--metric", "name": "--name"}


@dataclass(frozen=True)
class Answers:
    """What is known of the target; None: not answered yet. `guard` "" means no guard."""

    name: str | None = None
    metric: str | None = None
    direction: Direction | None = None
    editable: tuple[str, ...] = ()
    readonly: tuple[str, ...] | None = None
    run: str | None = None
    guard: str | None = None
    budget_s: float | None = None


@dataclass(frozen=True)
class Question:
    field: str  # the Answers field it fills
    prompt: str
    default: str  # "" where there is nothing to guess


def guessed(answers: Answers, files: list[str], dir_name: str) -> Answers:
    """The answers with every unanswered question that has a sensible default filled in."""
    script = next((s for s in _SCRIPTS if s in files), None)
    run = answers.run or (f"python {script}" if script else None)
    ran = _script_of(run) if run else None
    editable = answers.editable or ((ran,) if ran in files else ())
    fixed = tuple(p for p in ("prepare.py",) if p in files and p not in editable)
    has_tests = any(f.startswith("tests/") for f in files)
    return replace(answers, name=answers.name or _safe_name(dir_name), run=run, editable=editable,
                   readonly=answers.readonly if answers.readonly is not None else fixed,
                   guard=answers.guard if answers.guard is not None else ("pytest -q" if has_tests else ""),
                   budget_s=answers.budget_s or 300.0)


def questions(defaults: Answers) -> list[Question]:
    """What interactive mode asks, each with its default shown (from `guessed`)."""
    return [
        Question("metric", "metric to read from the result block (or pass_rate)", defaults.metric or ""),
        Question("direction", "minimize or maximize", direction_of(defaults)),
        Question("run", "command of one experiment", defaults.run or ""),
        Question("editable", "files agents may change (globs, space-separated)", " ".join(defaults.editable)),
        Question("readonly", "fixed files, hash-checked (globs; - for none)", " ".join(defaults.readonly or ()) or "-"),
        Question("guard", "guard command that must exit 0 (- for none)", defaults.guard or "-"),
        Question("budget_s", "the experiment's budget in seconds", f"{defaults.budget_s or 300:g}"),
        Question("name", "the target's name (configs/NAME.yaml)", defaults.name or ""),
    ]


def apply_answer(answers: Answers, question: Question, typed: str) -> Answers:
    """The answers with what was typed for `question` (empty: its default); SwarmError if it
    is not a valid answer, so the shell can ask again."""
    text = typed.strip() or question.default
    if not text:
        raise SwarmError(f"{question.prompt}: an answer is needed")
    field = question.field
    if field == "direction":
        if text == "minimize":
            return replace(answers, direction="minimize")
        if text == "maximize":
            return replace(answers, direction="maximize")
        raise SwarmError(f"'{text}': answer minimize or maximize")
    if field == "budget_s":
        return replace(answers, budget_s=_seconds(text))
    globs = () if text == "-" else tuple(text.split())
    if field == "editable":
        return replace(answers, editable=globs)
    if field == "readonly":
        return replace(answers, readonly=globs)
    if field == "guard":
        return replace(answers, guard="" if text == "-" else text)
    if field == "name" and not _NAME.fullmatch(text):
        raise SwarmError(f"'{text}': a name is letters, digits, '_', '.', '-' (first a letter or digit)")
    if field == "name":
        return replace(answers, name=text)
    return replace(answers, metric=text) if field == "metric" else replace(answers, run=text)


def missing(answers: Answers) -> list[str]:
    """The answers still needed, each as the flag that gives it."""
    needed = [("--metric NAME (or --pass-rate)", answers.metric), ("--run CMD", answers.run),
              ("--editable GLOB", answers.editable or None)]
    return [flag for flag, value in needed if not value]


def timeout_for(budget_s: float) -> float:
    # The budget is the experiment's own; start-up and evaluation need room beyond it.
    return round(budget_s * 2 + 60)


def config_text(answers: Answers, repo: str) -> str:
    """The config YAML for complete answers (`missing` is empty); `repo`: target.repo."""
    assert answers.name and answers.metric and answers.run and answers.budget_s
    target = {"repo": repo, "editable": list(answers.editable), "readonly": list(answers.readonly or ()),
              "run": answers.run, "metric": {"name": answers.metric, "direction": direction_of(answers)},
              "budget_s": answers.budget_s, "timeout_s": timeout_for(answers.budget_s),
              "guard": answers.guard or None}
    body = yaml.safe_dump({"name": answers.name, "target": target, "program": "program.md",
                           "proposer": {"kind": "mutate"}}, sort_keys=False, width=100)
    return f"# Written by `swarm init`: edit it freely, then `swarm check` it.\n{body}"


def program_text(answers: Answers) -> str:
    """program.md's skeleton: the goal, the metric and the scope, for the human to extend."""
    lower = "lowest" if direction_of(answers) == "minimize" else "highest"
    fixed = ", ".join(f"`{g}`" for g in answers.readonly or ()) or "nothing listed"
    guard = f"\n- `{answers.guard}` must still pass after your change." if answers.guard else ""
    return (f"# {answers.name}\n\n"
            f"Goal: get the {lower} `{answers.metric}`. One experiment is `{answers.run}`; it prints a\n"
            f"`---` line, then `key: value` lines, and the `{answers.metric}:` line is the metric.\n"
            f"Its budget is {answers.budget_s:g} s (given as $SWARM_BUDGET_S).\n\n"
            "Rules:\n"
            f"- Edit only {', '.join(f'`{g}`' for g in answers.editable)}. Fixed: {fixed}.{guard}\n"
            "- Change one thing at a time, and say in one line why you expect it to help.\n"
            "- If a change crashes, read the error, fix it or move on.\n")


def direction_of(answers: Answers) -> Direction:
    """The direction given, else the one the metric implies (a pass rate is maximized)."""
    return answers.direction or ("maximize" if answers.metric == "pass_rate" else "minimize")


def _script_of(run: str) -> str | None:
    words = run.split()
    return next((w for w in words[1:] if w.endswith(".py")), None) if words[:1] == ["python"] else None


def _safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", text).lstrip("-_.")
    return name or "target"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise SwarmError(f"'{text}': the budget is a number of seconds > 0")
    return value
