"""How a target's `env` values and `needs` paths expand on the machine that uses them. Pure."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

__all__ = ["expand", "expanded_env", "worker_search_path"]

_WITH_DEFAULT = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}")
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def expand(value: str, environ: Mapping[str, str]) -> str:
    """${VAR:-default}, $VAR, ${VAR} and a leading ~ expanded from `environ` (a variable that is
    not set stays as written, as os.path.expandvars leaves it)."""
    value = _WITH_DEFAULT.sub(lambda m: environ.get(m.group(1)) or m.group(2), value)
    value = _VARIABLE.sub(lambda m: environ.get(m.group(1) or m.group(2), m.group(0)), value)
    home = environ.get("HOME")
    if home and (value == "~" or value.startswith("~/")):
        value = home + value[1:]
    return value


def expanded_env(env: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The target's extra variables expanded here, on this machine, before HOME moves to a
    trial's scratch directory (so `~/.cache` is the real one)."""
    here = os.environ if environ is None else environ
    return {name: expand(value, here) for name, value in env.items()}


def worker_search_path(interpreter: str, environ: Mapping[str, str]) -> str:
    """The PATH a trial runs with: the worker's own interpreter first, so `python train.py`
    finds the project's dependencies."""
    return os.pathsep.join([os.path.dirname(interpreter), environ.get("PATH", "")])
