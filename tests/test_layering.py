"""The layering the design promises: pure decisions, Ray only in the shells, no torch in the core."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PURE = ["swarm.core.stats", "swarm.core.config", "swarm.core.values", "swarm.core.ledger", "workers.result_block",
        "swarm.core.scope", "swarm.core.errors", "workers.proposers.base", "workers.proposers.mutate",
        "coordinator.state", "coordinator.decide", "coordinator.results", "coordinator.status",
        "workers.classify"]
RAY_SHELLS = {"coordinator/actor.py", "workers/actor.py", "swarm/launch.py"}


def import_with_blocked(modules: list[str], blocked: list[str]) -> subprocess.CompletedProcess:
    code = ("import sys\n" + "".join(f"sys.modules[{b!r}] = None\n" for b in blocked)
            + "".join(f"import {m}\n" for m in modules))
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)


def test_decision_modules_import_without_ray_git_or_torch() -> None:
    result = import_with_blocked(PURE, ["ray", "git", "torch"])
    assert result.returncode == 0, result.stderr


def test_the_whole_swarm_core_imports_without_torch() -> None:
    core = [str(p.relative_to(ROOT).with_suffix("")).replace("/", ".")
            for package in ("swarm", "coordinator", "workers") for p in (ROOT / package).rglob("*.py")]
    result = import_with_blocked(core, ["torch"])
    assert result.returncode == 0, result.stderr


def test_only_the_actor_shells_and_the_launcher_import_ray() -> None:
    importers = set()
    for package in ("swarm", "coordinator", "workers"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(n == "ray" or n.startswith("ray.") for n in names):
                    importers.add(str(path.relative_to(ROOT)))
    assert importers == RAY_SHELLS
