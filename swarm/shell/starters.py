"""The example targets the project ships, and `swarm init --example NAME` writing one out.

A checkout has them at its top level (configs/, examples/, ml_target/); an installed wheel
carries the same files as `swarm/bundled/` (pyproject.toml maps them), so a user with no
checkout still has a target to start from.
"""

from __future__ import annotations

import difflib
import filecmp
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from swarm.core.errors import SwarmError

__all__ = ["Starter", "starters", "write_starter", "bundle_root"]

_CHECKOUT = Path(__file__).resolve().parents[2]
_BUNDLED = Path(__file__).resolve().parents[1] / "bundled"


@dataclass(frozen=True)
class Starter:
    name: str
    config: Path  # configs/<name>.yaml where it is shipped
    target: str  # the config's target.repo, relative: where its files go beside configs/
    description: str  # the config's first comment line


def bundle_root() -> Path:
    """Where the shipped configs and targets are: the checkout, else the installed bundle."""
    for root in (_CHECKOUT, _BUNDLED):
        if (root / "configs").is_dir() and (root / "examples").is_dir():
            return root
    raise SwarmError(f"this installation carries no examples (looked in {_CHECKOUT} and {_BUNDLED}); "
                     "reinstall autoresearch-swarm from its wheel or a checkout")


def starters() -> list[Starter]:
    root = bundle_root()
    found = []
    for config in sorted((root / "configs").glob("*.yaml")):
        text = config.read_text()
        repo = str(((yaml.safe_load(text) or {}).get("target") or {}).get("repo", ""))
        if not repo or "://" in repo or Path(repo).is_absolute() or not (root / repo).is_dir():
            continue  # a config whose target is not shipped beside it
        found.append(Starter(config.stem, config, repo, _first_sentence(text)))
    return found


def write_starter(name: str, dest: Path) -> list[Path]:
    """Writes configs/<name>.yaml and its target under `dest`; returns what it wrote. Nothing
    is written when any file it would write exists with other content."""
    known = {s.name: s for s in starters()}
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise SwarmError(f"no example named {name!r}; {hint}examples: {', '.join(known)}")
    starter = known[name]
    source_target = starter.config.parents[1] / starter.target
    plan = [(starter.config, dest / "configs" / starter.config.name)]
    plan += [(path, dest / starter.target / path.relative_to(source_target))
             for path in sorted(source_target.rglob("*"))
             if path.is_file() and not _skipped(path.relative_to(source_target))]
    clashes = [str(to) for frm, to in plan if to.exists() and not filecmp.cmp(frm, to, shallow=False)]
    if clashes:
        raise SwarmError(f"{clashes[0]} already exists with other content ({len(clashes)} file(s) in "
                         "all); give another directory: swarm init --example NAME DIR")
    written = []
    for frm, to in plan:
        if to.exists():
            continue  # the same file, e.g. ml_target/ shared by two of its configs
        to.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(frm, to)
        written.append(to)
    return written


def _first_sentence(text: str, width: int = 76) -> str:
    """The config's opening comment, to its first full stop, cut to fit one line."""
    comment = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("#").strip())
    sentence = " ".join(comment).split(". ")[0].rstrip(".")
    return sentence if len(sentence) <= width else sentence[: width - 3].rsplit(" ", 1)[0] + "..."


def _skipped(relative: Path) -> bool:
    return any(part in ("__pycache__", ".git", "runs") or part.endswith(".pyc") for part in relative.parts)
