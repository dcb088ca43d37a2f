"""What a worker concludes from one experiment, before the coordinator judges it. Pure."""

from __future__ import annotations

from workers.result_block import metric_value, numeric_metrics, parse_summary
from workers.sandbox import SandboxResult

__all__ = ["classify_run"]


def classify_run(result: SandboxResult, metric_name: str, *, guard_exit: int | None = None,
                 tampered: str | None = None) -> tuple[str, float | None, dict[str, float], str]:
    """(status, metric, other numeric results, reason) of one experiment run.

    `guard_exit` is the guard command's exit code (None: no guard ran); `tampered` names a
    readonly file the run changed. Either one takes an otherwise good run's metric away.
    """
    status, metric, metrics, reason = _classify_experiment(result, metric_name)
    if status == "ok" and tampered:
        return "out_of_scope", None, metrics, f"{tampered} after the run"
    if status == "ok" and guard_exit not in (None, 0):
        return "guard_failed", None, metrics, f"guard exit code {guard_exit}"
    return status, metric, metrics, reason


def _classify_experiment(result: SandboxResult,
                         metric_name: str) -> tuple[str, float | None, dict[str, float], str]:
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
