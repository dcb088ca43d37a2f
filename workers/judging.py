"""What a worker concludes from one experiment, before the coordinator judges it. Pure."""

from __future__ import annotations

from swarm.sandbox import SandboxResult
from swarm.summary import metric_value, numeric_metrics, parse_summary

__all__ = ["classify_run"]


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
