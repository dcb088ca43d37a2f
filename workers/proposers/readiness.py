"""Whether the configured proposer can be built and used here, before any budget is spent.

`llm`: the key litellm says the model's provider needs is in the environment; `agent`: its
command is found; `mutate`: the editable files hold constants it can move (else it would say
"nothing to mutate" on every proposal).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from swarm.core.config import SwarmConfig
from swarm.core.preflight import Problem, command_problem
from swarm.core.scope import matching_paths
from workers.proposers.mutate import find_tunables

__all__ = ["proposer_problems"]


def proposer_problems(config: SwarmConfig, root: Path | None, files: list[str],
                      environ: Mapping[str, str], search_path: str) -> list[Problem]:
    """`root` and `files`: the target's checkout and its files (None and []: not here)."""
    spec = config.proposer
    if spec.kind == "llm":
        return _llm_problems(spec.model or "", spec.api_base)
    if spec.kind == "agent":
        problem = command_problem("proposer.command", spec.command or "", root, environ, search_path)
        return [problem] if problem else []
    if root is None:
        return []
    return _mutate_problems(root, matching_paths(files, config.target.editable))


def _llm_problems(model: str, api_base: str | None) -> list[Problem]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import
    import litellm

    try:
        found = litellm.validate_environment(model=model, api_base=api_base)
    except Exception as exc:  # noqa: BLE001  (litellm's own errors say what is wrong with the name)
        return [Problem("proposer.model", f"litellm cannot use '{model}': {exc}"[:300])]
    missing = list(found.get("missing_keys") or [])
    if not missing:
        return []
    return [Problem("proposer.model", f"'{model}' needs {', '.join(missing)} in the environment "
                                      "(litellm's list for its provider); export it where the "
                                      "workers start")]


def _mutate_problems(root: Path, editable: list[str]) -> list[Problem]:
    sources = [p for p in editable if p.endswith(".py")]
    for path in sources:
        try:
            if find_tunables(path, (root / path).read_text(errors="replace")):
                return []
        except SyntaxError:
            continue
    if not editable:
        return []  # the tree check says the globs match nothing
    return [Problem("target.editable", f"nothing to mutate: none of {', '.join(editable[:6])} has a "
                                       "top-level UPPER_CASE numeric constant or a `# choices: a, b` "
                                       "constant (proposer.kind mutate reads only .py files)")]
