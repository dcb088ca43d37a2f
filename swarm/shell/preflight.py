"""The preflight `swarm check CONFIG` prints and `swarm run` makes before Ray starts: every
problem at once, one line each, so a broken target costs no trial."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from swarm.core.config import SwarmConfig
from swarm.core.envvars import worker_search_path
from swarm.core.preflight import Problem, machine_problems, run_environ, tree_files, tree_problems
from swarm.core.scope import matching_paths
from workers.evaluation import jail_missing
from workers.proposers.readiness import proposer_problems

__all__ = ["local_root", "preflight", "ok_line"]


def local_root(config: SwarmConfig) -> Path | None:
    """The target's directory here, or None for a git URL (its files are checked by the
    coordinator once it has cloned it)."""
    repo = Path(config.target.repo)
    return repo if repo.is_dir() else None


def preflight(config: SwarmConfig, root: Path | None, needs_here: bool = True) -> list[Problem]:
    """Every problem of the target, this machine and the proposer; [] when all is well.
    `needs_here`: False for a driver that joins a cluster, whose workers' machines hold the
    data (each worker checks target.needs before every trial)."""
    files = tree_files(root) if root is not None else []
    search_path = worker_search_path(sys.executable, os.environ)
    problems = tree_problems(config, root, files) if root is not None else []
    machine = machine_problems(config, root, os.environ, search_path)
    problems += [p for p in machine if needs_here or p.key != "target.needs"]
    if needs_here and config.sandbox.isolation == "namespaces" and (missing := jail_missing()):
        problems.append(Problem("sandbox.isolation", f"this machine cannot make the trials' jail ({missing}); "
                                                     "set sandbox: {isolation: none} to run them without it"))
    return problems + proposer_problems(config, root, files, run_environ(config, os.environ), search_path)


def ok_line(config: SwarmConfig, root: Path | None) -> str:
    """What was checked, in one line."""
    target = config.target
    needs = f", {len(target.needs)} needed path(s) present" if target.needs else ""
    guard = " and the guard" if target.guard else ""
    if root is None:
        files = f"{target.repo} is a git URL: its files are checked once the coordinator clones it"
    else:
        found = tree_files(root)
        files = (f"{len(matching_paths(found, target.editable))} editable and "
                 f"{len(matching_paths(found, target.readonly))} readonly file(s), {config.program}")
    jail = "in the jail" if config.sandbox.isolation == "namespaces" else "WITHOUT a jail (sandbox.isolation: none)"
    score = ", scored by target.score" if target.score else ""
    return (f"ok: {config.name}: {files}; the run command{guard} found{needs}; trials run {jail}{score}; "
            f"proposer {config.proposer.kind} ready")
