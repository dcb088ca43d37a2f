"""Preflight: what can be told wrong about a target before any budget is spent.

Pure: it reads the target's files and the environment and runs nothing (no subprocess, git or
Ray). The shell runs every check (`swarm check`, `swarm run`); the coordinator runs the tree
checks again on the repository it imported, which is where a git URL's files are first seen;
a worker checks `target.needs` before every trial, on its own machine.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from swarm.core.config import NeedSpec, SwarmConfig
from swarm.core.envvars import expand, expanded_env
from swarm.core.scope import matching_paths

__all__ = ["Problem", "tree_files", "tree_problems", "machine_problems", "command_problem",
           "needs_problems", "run_environ", "tracking_problems"]

# What importing a directory target leaves out (gitops' copy ignores the same).
_IGNORED_DIRS = frozenset({".git", "__pycache__", ".venv", "runs"})
# Words the shell runs itself: there is no file to look for.
_SHELL_WORDS = frozenset({
    ".", ":", "[", "alias", "builtin", "cd", "command", "eval", "exec", "exit", "export", "false",
    "for", "if", "let", "printf", "read", "set", "source", "test", "true", "type", "ulimit",
    "umask", "unset", "until", "wait", "while", "echo", "case", "{", "(",
})
_SHOWN_FILES = 6


@dataclass(frozen=True)
class Problem:
    """One reason the target cannot work, and the config key it concerns."""

    key: str  # e.g. "target.editable"
    message: str

    def line(self, source: str) -> str:
        return f"{source}: {self.key}: {self.message}"


def tree_files(root: Path) -> list[str]:
    """The target's files as a run imports them: relative paths, without .git and caches."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _IGNORED_DIRS)
        base = Path(folder).relative_to(root)
        found += [(base / f).as_posix() for f in sorted(files) if not f.endswith(".pyc")]
    return found


def tree_problems(config: SwarmConfig, root: Path, files: list[str] | None = None,
                  shown_as: str | None = None) -> list[Problem]:
    """Globs that match no file, and a missing program: a run would find nothing to change.
    `shown_as`: how the messages name `root` (a clone's scratch folder means nothing to users)."""
    files = tree_files(root) if files is None else files
    where = shown_as or str(root)
    shown = ", ".join(files[:_SHOWN_FILES]) + (", ..." if len(files) > _SHOWN_FILES else "")
    problems = []
    for key, globs in (("target.editable", config.target.editable), ("target.readonly", config.target.readonly)):
        for pattern in globs:
            if not matching_paths(files, [pattern]):
                problems.append(Problem(key, f"'{pattern}' matches no file of {where} "
                                             f"(it has: {shown or 'no files'})"))
    problems += _hidden_and_score_problems(config, files, where)
    if not (root / config.program).is_file():
        problems.append(Problem("program", f"'{config.program}' is not a file of {where}; write the "
                                           "target's instructions to agents there"))
    return problems


def run_environ(config: SwarmConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables a trial sees for expansion: this machine's, then target.env's."""
    return {**environ, **expanded_env(config.target.env, environ)}


def machine_problems(config: SwarmConfig, root: Path | None, environ: Mapping[str, str],
                     search_path: str) -> list[Problem]:
    """What this machine lacks: the run and guard commands, and the data the target needs.
    `root`: the checkout; None for a git URL not cloned here (checkout-relative paths are
    then left to the coordinator and the workers)."""
    env = run_environ(config, environ)
    target = config.target
    commands = [("target.run", target.run)] + [
        (key, command) for key, command in (("target.guard", target.guard), ("target.score", target.score)) if command]
    problems = [p for key, command in commands if (p := command_problem(key, command, root, env, search_path))]
    return problems + needs_problems(target.needs, root, env) + tracking_problems(config, environ)


def tracking_problems(config: SwarmConfig, environ: Mapping[str, str]) -> list[Problem]:
    """A tracker whose library is not installed here (the coordinator runs on this machine, or
    one set up alike), and W&B online without a key: refused before the run spends anything."""
    tracking = config.tracking
    if tracking.kind is None:
        return []
    if importlib.util.find_spec(tracking.kind) is None:
        return [Problem("tracking.kind", f"{tracking.kind} is not installed here; pip install "
                                         f"'autoresearch-swarm[{tracking.kind}]' (or set tracking.kind: null)")]
    if tracking.kind == "wandb" and tracking.mode == "online" and not environ.get("WANDB_API_KEY"):
        return [Problem("tracking.mode", "online needs WANDB_API_KEY in the environment; "
                                         "offline (the default) needs none: wandb sync RUN_DIR/wandb later")]
    return []


def _hidden_and_score_problems(config: SwarmConfig, files: list[str], where: str) -> list[Problem]:
    """A relative hidden glob that hides nothing, and a score command that would run a file agents
    may change (then the score is theirs to fake)."""
    target, problems = config.target, []
    for pattern in target.hidden:
        if not os.path.isabs(pattern) and not pattern.startswith(("~", "$")) and not matching_paths(files, [pattern]):
            problems.append(Problem("target.hidden", f"'{pattern}' matches no file of {where}; absolute "
                                                     "paths name files outside the target"))
    if target.score:
        try:
            words = shlex.split(target.score)
        except ValueError:
            words = []  # command_problem says so
        readonly = set(matching_paths(files, target.readonly))
        for word in (w for w in words if w in files and w not in readonly):
            problems.append(Problem("target.score", f"'{word}' is not in target.readonly: the score phase "
                                                    "must run only files agents cannot change"))
    return problems


def command_problem(key: str, command: str, cwd: Path | None, environ: Mapping[str, str],
                    search_path: str) -> Problem | None:
    """Whether the command's first word is found the way the shell finds it: a builtin, a path
    (relative to the checkout), or a name on `search_path`."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return Problem(key, f"'{command}' is not a valid shell command ({exc})")
    words = [w for w in words if not _is_assignment(w)] or [""]
    word = expand(words[0], environ)
    if not word or word in _SHELL_WORDS or any(c in word for c in "$`(){}|;&<>"):
        return None  # the shell's own, or beyond a check without running it
    if "/" in word:
        if cwd is None and not os.path.isabs(word):
            return None
        path = Path(word) if os.path.isabs(word) else (cwd or Path()) / word
        if path.is_file() and os.access(path, os.X_OK):
            return None
        why = "is not executable (chmod +x it)" if path.is_file() else "does not exist"
        return Problem(key, f"'{word}' in '{command}' {why} ({path})")
    if shutil.which(word, path=search_path) is None:
        return Problem(key, f"'{word}' (the first word of '{command}') is not found on the PATH "
                            f"trials run with ({search_path}) and is not a shell builtin")
    return None


def _is_assignment(word: str) -> bool:
    name, sep, _ = word.partition("=")
    return bool(sep) and name.isidentifier()


def needs_problems(needs: list[NeedSpec], root: Path | None, environ: Mapping[str, str]) -> list[Problem]:
    """Every declared need that is missing on this machine, with its hint."""
    problems = []
    for need in needs:
        where = expand(need.path, environ)
        if not os.path.isabs(where):
            if root is None:
                continue  # inside a checkout this machine does not have
            where = str(root / where)
        if glob.glob(where) if glob.has_magic(where) else os.path.exists(where):
            continue
        hint = f": {need.hint}" if need.hint else ""
        problems.append(Problem("target.needs", f"'{where}' is missing{hint}"))
    return problems
