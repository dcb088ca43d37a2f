"""The floor plan the design promises, asserted for every module:

- three layers: the foundation (`swarm/core/`), the two actors' rooms (`coordinator/`,
  `workers/`), and the shell users touch (`swarm/shell/`);
- imports run only downward, and the rooms do not import each other;
- the decision modules are pure, only the actor shells and the driver import Ray, and nothing
  in the swarm imports torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("swarm", "coordinator", "workers")

# module prefix -> (layer, room); a lower layer number is further down
LAYERS = {"swarm.core": (0, "core"), "coordinator": (1, "coordinator"), "workers": (1, "workers"),
          "swarm.shell": (2, "shell")}

PURE = [
    "swarm.core.errors", "swarm.core.config", "swarm.core.values", "swarm.core.events",
    "swarm.core.ledger", "swarm.core.stats", "swarm.core.scope", "swarm.core.retry",
    "swarm.core.config_schema", "swarm.core.config_problems", "swarm.core.overrides", "coordinator.budget",
    "swarm.shell.pace",
    "swarm.core.envvars", "swarm.core.preflight",
    "coordinator.state", "coordinator.decide", "coordinator.results", "coordinator.status",
    "coordinator.figures", "coordinator.roster", "coordinator.liveness", "swarm.shell.status_json",
    "workers.classify", "workers.result_block", "workers.proposers.base", "workers.proposers.mutate",
    "workers.proposers.edits", "workers.proposers.prompt",
    "swarm.shell.placement", "swarm.shell.supervise", "swarm.shell.reach", "swarm.shell.report.facts",
    "swarm.shell.report.lessons", "swarm.shell.report.markdown", "swarm.shell.report.changelog",
    "swarm.core.scaffold", "workers.feedback", "coordinator.acceptance",
]
RAY_SHELLS = {"coordinator/actor.py", "coordinator/client.py", "workers/actor.py",
              "swarm/shell/driver.py", "swarm/shell/fleet.py"}


def modules() -> dict[str, Path]:
    """Every module of the swarm by dotted name (packages' __init__ included)."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


def imported(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def layer_of(module: str) -> tuple[int, str] | None:
    for prefix, layer in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None


def test_every_module_stands_in_one_of_the_three_layers() -> None:
    outside = [m for m in modules() if layer_of(m) is None and m != "swarm"]
    assert outside == [], f"put these in swarm/core, coordinator, workers or swarm/shell: {outside}"


def test_imports_run_only_downward_and_the_rooms_do_not_import_each_other() -> None:
    ours = modules()
    wrong = []
    for module, path in ours.items():
        here = layer_of(module)
        if here is None:
            continue
        for name in imported(path):
            there = layer_of(name)
            if there is None or name not in ours:
                continue  # a third-party module, or `from x import a_function`
            upward = there[0] > here[0]
            sideways = there[0] == here[0] and there[1] != here[1]
            if upward or sideways:
                wrong.append(f"{module} -> {name}")
    assert wrong == []


def test_the_layering_check_sees_an_upward_import(tmp_path: Path) -> None:
    # The check above must be able to fail: a foundation file importing the shell is caught.
    bad = tmp_path / "bad.py"
    bad.write_text("from swarm.shell.cli import main\n")
    here, there = layer_of("swarm.core.bad"), layer_of("swarm.shell.cli")
    assert "swarm.shell.cli" in imported(bad) and here and there and there[0] > here[0]


def import_with_blocked(names: list[str], blocked: list[str]) -> subprocess.CompletedProcess[str]:
    """Imports `names` in a fresh interpreter where importing any of `blocked` fails, as if they
    were not installed (and checks that none was imported after all)."""
    code = ("import sys\n"
            "class Absent:\n"
            f"    blocked = {tuple(blocked)!r}\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in self.blocked:\n"
            "            raise ImportError(f'{name} is not installed here')\n"
            "sys.meta_path.insert(0, Absent())\n"
            + "".join(f"import {m}\n" for m in names)
            + "assert not any(m.split('.')[0] in Absent.blocked for m in sys.modules), 'a blocked module loaded'\n")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)


def test_decision_modules_import_without_ray_git_or_torch() -> None:
    result = import_with_blocked(PURE, ["ray", "git", "torch"])
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_runs_no_subprocess(module: str) -> None:
    assert not {"subprocess", "ray", "git", "torch"} & imported(modules()[module])


def test_the_whole_swarm_core_imports_without_torch() -> None:
    result = import_with_blocked(sorted(modules()), ["torch"])
    assert result.returncode == 0, result.stderr


def test_only_the_actor_shells_and_the_driver_import_ray() -> None:
    importers = {str(path.relative_to(ROOT)) for path in modules().values()
                 if any(n == "ray" or n.startswith("ray.") for n in imported(path))}
    assert importers == RAY_SHELLS
