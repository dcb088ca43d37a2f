"""Which changes may run: the editable/readonly rules of a target. Pure.

The worker applies them before a trial; the coordinator applies them again on receipt.
"""

from __future__ import annotations

import fnmatch
import re

__all__ = ["matching_paths", "scope_violation", "readonly_violation", "paths_named"]

_OUTSIDE = "changes paths agents may not edit: "
_READONLY = re.compile(r"readonly file (.+?) differs from its recorded hash")


def matching_paths(paths: list[str], globs: list[str]) -> list[str]:
    """Paths that match any glob; '*' crosses directories, as in .gitignore-less fnmatch."""
    return [p for p in paths if any(fnmatch.fnmatchcase(p, g) for g in globs)]


def scope_violation(changed: list[str], editable: list[str], readonly: list[str]) -> str | None:
    """Why a change may not run (it touches a path outside `editable`, or a readonly one), or None."""
    outside = [p for p in changed if not matching_paths([p], editable) or matching_paths([p], readonly)]
    if not outside:
        return None
    return f"{_OUTSIDE}{', '.join(outside[:5])}"


def readonly_violation(recorded: dict[str, str], actual: dict[str, str]) -> str | None:
    """Names the first readonly file whose hash differs from the one recorded at run start."""
    for path, digest in sorted(recorded.items()):
        if actual.get(path) != digest:
            return f"readonly file {path} differs from its recorded hash"
    return None


def paths_named(reason: str) -> list[str]:
    """The paths a refusal's reason (scope_violation's or readonly_violation's) names."""
    if _OUTSIDE in reason:
        return [p for p in reason.split(_OUTSIDE, 1)[1].split(", ") if p]
    return _READONLY.findall(reason)
