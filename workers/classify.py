"""What a worker concludes from one experiment, before the coordinator judges it. Pure."""

from __future__ import annotations

from typing import NamedTuple

from swarm.core.values import TrialStatus
from workers.result_block import metric_value, missing_metric, numeric_metrics, parse_summary
from workers.sandbox import SandboxResult

__all__ = ["Classified", "classify_run"]


class Classified(NamedTuple):
    status: TrialStatus
    metric: float | None
    metrics: dict[str, float]  # every numeric key of the result block
    reason: str  # why it is not ok, in one line


def classify_run(result: SandboxResult, metric_name: str, *, guard_exit: int | None = None,
                 tampered: str | None = None) -> Classified:
    """What one experiment run amounts to: its status, metric, numeric results and reason.

    `guard_exit` is the guard command's exit code (None: no guard ran); `tampered` names a
    readonly file the run changed. Either one takes an otherwise good run's metric away.
    """
    status, metric, metrics, reason = _classify_experiment(result, metric_name)
    if status == "ok" and tampered:
        return Classified("out_of_scope", None, metrics, f"{tampered} after the run")
    if status == "ok" and guard_exit not in (None, 0):
        return Classified("guard_failed", None, metrics, f"guard exit code {guard_exit}")
    return Classified(status, metric, metrics, reason)


def _classify_experiment(result: SandboxResult, metric_name: str) -> Classified:
    summary = parse_summary(result.output_tail)
    metrics = numeric_metrics(summary)
    if result.timed_out:
        return Classified("timeout", None, metrics, "killed at timeout_s")
    if result.exit_code != 0:
        last = _last_line(result.output_tail)
        ends = f"; the log ends: {last}" if last else ""
        return Classified("crash", None, metrics, f"exit code {result.exit_code}{ends}")
    value = metric_value(summary, metric_name)
    if value is None:
        return Classified("no_metric", None, metrics, missing_metric(result.output_tail, metric_name))
    return Classified("ok", value, metrics, "")


def _last_line(text: str, limit: int = 200) -> str:
    """The output's last non-blank line, where a crash usually says what it was."""
    line = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")
    return line[:limit]
