"""What a worker concludes from one experiment, before the coordinator judges it. Pure."""

from __future__ import annotations

from swarm.gitops import matching_paths
from swarm.sandbox import SandboxResult
from swarm.summary import metric_value, numeric_metrics, parse_summary

__all__ = ["scope_violation", "readonly_violation", "classify_run"]


def scope_violation(changed: list[str], editable: list[str], readonly: list[str]) -> str | None:
    """Why a change may not run (it touches a path outside `editable`, or a readonly one), or None."""
    outside = [p for p in changed if not matching_paths([p], editable) or matching_paths([p], readonly)]
    if not outside:
        return None
    return f"changes paths agents may not edit: {', '.join(outside[:5])}"


def readonly_violation(recorded: dict[str, str], actual: dict[str, str]) -> str | None:
    """Names the first readonly file whose hash differs from the one recorded at run start."""
    for path, digest in sorted(recorded.items()):
        if actual.get(path) != digest:
            return f"readonly file {path} differs from its recorded hash"
    return None


def classify_run(result: SandboxResult, metric_name: str) -> tuple[str, float | None, dict[str, float], str]:
    """(status, metric, other numeric results, reason) of one experiment run."""
    summary = parse_summary(result.output_tail)
    metrics = numeric_metrics(summary)
    if result.timed_out:
        return "timeout", None, metrics, "killed at timeout_s"
    if result.exit_code != 0:
        return "crash", None, metrics, f"exit code {result.exit_code}"
    value = metric_value(summary, metric_name)
    if value is None:
        return "no_metric", None, metrics, f"no finite '{metric_name}:' after the last '---' line"
    return "ok", value, metrics, ""
