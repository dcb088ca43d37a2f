"""The shape of the swarm's code: lines per module, the largest class and function, and import
edges that run upward (or sideways between the two rooms), for the tree at --root.

    .venv/bin/python bench/code_shape.py                     # this checkout
    .venv/bin/python bench/code_shape.py --root OLD --layout flat   # a tree from before the re-layout

`--layout layered` places modules by folder (swarm/core < coordinator, workers < swarm/shell);
`--layout flat` places the modules of the flat swarm/ of before issue 11 where they now live.
"""

from __future__ import annotations

import argparse
import ast
import statistics
from pathlib import Path

PACKAGES = ("swarm", "coordinator", "workers")
LAYERED = {"swarm.core": (0, "core"), "coordinator": (1, "coordinator"), "workers": (1, "workers"),
           "swarm.shell": (2, "shell")}
# before issue 11: where each module of the flat swarm/ stands in the layers
FLAT = {**{f"swarm.{m}": (0, "core") for m in ("errors", "config", "types", "ledger", "policy", "scope",
                                               "gitops")},
        **{f"swarm.{m}": (1, "workers") for m in ("sandbox", "summary", "proposers")},
        **{f"swarm.{m}": (2, "shell") for m in ("cli", "launch", "join", "progress", "placement", "report")},
        "coordinator": (1, "coordinator"), "workers": (1, "workers")}


def modules(root: Path) -> dict[str, Path]:
    paths = [path for package in PACKAGES for path in sorted((root / package).rglob("*.py"))]
    return {".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p for p in paths}


def layer(module: str, layout: dict[str, tuple[int, str]]) -> tuple[int, str] | None:
    matches = [p for p in layout if module == p or module.startswith(p + ".")]
    return layout[max(matches, key=len)] if matches else None


def imports(path: Path) -> set[str]:
    """Modules a file imports, anywhere in it: `from m import n` counts as m and as m.n."""
    nodes = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Import | ast.ImportFrom)]
    return {name for n in nodes for name in (
        [a.name for a in n.names] if isinstance(n, ast.Import)
        else [n.module, *(f"{n.module}.{a.name}" for a in n.names)] if n.module and not n.level else [])}


def wrong_edges(found: dict[str, Path], layout: dict[str, tuple[int, str]]) -> list[str]:
    edges = set()
    for module, path in found.items():
        here = layer(module, layout)
        for name in imports(path):
            there = layer(name, layout) if name in found else None
            if here and there and (there[0] > here[0] or (there[0] == here[0] and there[1] != here[1])):
                edges.add(f"{module} -> {name}")
    return sorted(edges)


def folder_edges(found: dict[str, Path], root: Path) -> set[tuple[str, str]]:
    """Imports between folders (swarm/, swarm/core/, coordinator/, workers/proposers/, ...)."""
    folder = {m: str(p.parent.relative_to(root)) for m, p in found.items()}
    return {(folder[m], folder[n]) for m, path in found.items() for n in imports(path)
            if n in found and folder[n] != folder[m]}


def largest(found: dict[str, Path]) -> tuple[tuple[int, int, str], tuple[int, str]]:
    """((lines, methods, name) of the largest class, (lines, name) of the largest function)."""
    classes, functions = [], []
    for module, path in found.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef | ast.FunctionDef):
                continue
            span = (node.end_lineno or node.lineno) - node.lineno + 1
            if isinstance(node, ast.ClassDef):
                methods = sum(isinstance(n, ast.FunctionDef) for n in node.body)
                classes.append((span, methods, f"{module}.{node.name}"))
            else:
                functions.append((span, f"{module}.{node.name}"))
    return max(classes), max(functions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--layout", choices=["layered", "flat"], default="layered")
    args = parser.parse_args()
    found = modules(args.root)
    lines = {m: len(p.read_text().splitlines()) for m, p in found.items()}
    (class_lines, methods, cls), (function_lines, function) = largest(found)
    wrong = wrong_edges(found, LAYERED if args.layout == "layered" else FLAT)
    edges = folder_edges(found, args.root)
    cycles = sorted(f"{a}/ <-> {b}/" for a, b in edges if (b, a) in edges and a < b)
    biggest = max(lines, key=lambda m: lines[m])
    print(f"| {args.root} | |\n|---|---|")
    print(f"| modules | {len(found)} |")
    print(f"| lines: total, median, largest module | {sum(lines.values())}, "
          f"{statistics.median(lines.values()):.0f}, {lines[biggest]} ({biggest}) |")
    print(f"| largest class | {cls}: {class_lines} lines, {methods} methods |")
    print(f"| largest function | {function}: {function_lines} lines |")
    print(f"| imports upward or between the rooms | {len(wrong)} |")
    print(f"| folders importing each other | {', '.join(cycles) or 'none'} |")
    for edge in wrong:
        print(f"|   {edge} | |")


if __name__ == "__main__":
    main()
