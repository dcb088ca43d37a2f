"""The project as pip ships it: the declared dependencies are exactly the imported ones, and a
wheel installed away from the checkout has its examples (`swarm init`) and runs one."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("swarm", "coordinator", "workers")


TRACKERS = ("mlflow", "wandb")  # optional extras: imported only where a run asks for one


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"], *(spec for extra in TRACKERS
                                         for spec in project["optional-dependencies"][extra])]
    return {re.split(r"[\[=<>!~ ]", spec, maxsplit=1)[0].lower().replace("_", "-") for spec in specs}


def _imported_distributions() -> dict[str, set[str]]:
    """distribution -> the product's modules that import it (stdlib and our own left out)."""
    ours = set(PRODUCT)
    owners = importlib.metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module] if isinstance(node, ast.ImportFrom) and node.module and
                         not node.level else [])
                for name in names:
                    top = name.split(".")[0]
                    if top in ours or top in sys.stdlib_module_names:
                        continue
                    dists = [d.lower().replace("_", "-") for d in owners.get(top, [])]
                    # mlflow's package is shared by mlflow, mlflow-skinny and mlflow-tracing:
                    # the one the project declares is the one it imports
                    dists = [d for d in dists if d == top] or dists or [f"<no distribution provides {top}>"]
                    for dist in dists:
                        found.setdefault(dist, set()).add(str(path.relative_to(ROOT)))
    return found


def test_declared_dependencies_are_exactly_the_imported_ones() -> None:
    imported = _imported_distributions()
    # pydantic-core is pydantic's own engine, versioned with it; importing its types is using pydantic
    imported.pop("pydantic-core", None)
    assert sorted(set(imported) - _declared()) == [], f"imported but not declared: {imported}"
    assert sorted(_declared() - set(imported)) == [], "declared but imported by no module of the product"
    # the core stays lean: only the trackers' adapters import the trackers' libraries
    assert {tracker: imported[tracker] for tracker in TRACKERS} == {
        tracker: {"coordinator/trackers.py"} for tracker in TRACKERS}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # --no-build-isolation: the venv's setuptools builds it, with no download
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(ROOT)], check=True, capture_output=True, timeout=300)
    [built] = out.glob("*.whl")
    return built


def test_the_wheel_carries_every_package_the_examples_and_the_licence(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.parent.relative_to(ROOT)) for package in PRODUCT
                for p in (ROOT / package).rglob("__init__.py")}
    missing = sorted(p for p in packages if f"{p}/__init__.py" not in names)
    assert missing == [], f"packages left out of the wheel (add them to pyproject.toml): {missing}"
    shipped = subprocess.run(["git", "ls-files", "configs", "examples", "ml_target"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    assert shipped and sorted(f for f in shipped if f"swarm/bundled/{f}" not in names) == []
    assert any(n.endswith("licenses/LICENSE") for n in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "License-Expression: MIT" in metadata


@pytest.mark.ray
def test_an_installed_wheel_writes_an_example_out_and_runs_it_far_from_the_checkout(
        wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # the wheel's packages come first; the checkout's editable install is only a fallback finder
    env["PYTHONPATH"] = str(site)
    env["HOME"] = str(tmp_path / "home")
    work = tmp_path / "elsewhere"
    work.mkdir()

    def swarm(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "swarm.shell.cli", *args], cwd=work, env=env,
                              capture_output=True, text=True, timeout=timeout)

    where = subprocess.run([sys.executable, "-c", "import swarm; print(swarm.__file__)"], cwd=work,
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(site)), where
    listed = swarm("init", "--list")
    assert listed.returncode == 0 and "quadratic" in listed.stdout and "ml_target_cpu" in listed.stdout
    missing = swarm("run", "configs/quadratic.yaml")
    assert missing.returncode == 2 and "swarm init --example" in missing.stderr
    wrote = swarm("init", "--example", "quadratic")
    assert wrote.returncode == 0, wrote.stderr
    assert (work / "configs/quadratic.yaml").is_file() and (work / "examples/quadratic/train.py").is_file()
    run = swarm("run", "configs/quadratic.yaml", "--workers", "1", "--max-trials", "3", "--no-progress",
                "--run-dir", str(work / "runs/q"), timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (work / "runs/q/results.tsv").read_text().count("\n") >= 4  # the header and 3 trials
