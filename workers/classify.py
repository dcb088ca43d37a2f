"""What a worker concludes from one experiment, before the coordinator judges it. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from swarm.core.values import TrialStatus
from workers.evaluation import Phase, TrialRun
from workers.result_block import metric_value, missing_metric, numeric_metrics, parse_summary
from workers.sandbox import SandboxResult

__all__ = ["Classified", "classify_run", "classify_trial"]


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


def classify_trial(trial: TrialRun, metric_name: str, *, tampered: str | None = None,
                   tiebreaks: Sequence[str] = ()) -> Classified:
    """What all of a trial's phases amount to. With a score phase its result block is the only
    one read: nothing the run printed can pass for the metric. A run that has the metric but
    not a tie-breaker (`target.tiebreak`) cannot be judged on a tie: it is no_metric, so a
    target whose baseline lacks one is refused by the baseline's failures, before the budget."""
    classified = _classify_phases(trial, metric_name, tampered)
    if classified.status != "ok":
        return classified
    missing = next((name for name in tiebreaks if name not in classified.metrics), None)
    if missing is None:
        return classified
    block = trial.score if trial.score is not None else trial.run
    assert block is not None  # an ok trial ran
    return Classified("no_metric", None, classified.metrics,
                      f"{missing_metric(block.result.output_tail, missing)} (a tie-breaker: target.tiebreak)")


def _classify_phases(trial: TrialRun, metric_name: str, tampered: str | None) -> Classified:
    if trial.run is None:
        return Classified("crash", None, {}, trial.refusal)
    for name, phase in (("run", trial.run), ("guard", trial.guard), ("score", trial.score)):
        if phase is not None and (stopped := _stopped_by_jail(name, phase)):
            return stopped
    guard_exit = None if trial.guard is None else (
        trial.guard.result.exit_code if not trial.guard.result.timed_out else -1)
    if trial.score is None and not trial.scored:
        return classify_run(trial.run.result, metric_name, guard_exit=guard_exit, tampered=tampered)
    ran = _classify_experiment(trial.run.result, "")
    if ran.status in ("timeout", "crash"):
        return Classified(ran.status, None, {}, ran.reason)
    if tampered:
        return Classified("out_of_scope", None, {}, f"{tampered} after the run")
    if guard_exit not in (None, 0):
        return Classified("guard_failed", None, {}, f"guard exit code {guard_exit}")
    if trial.score is None:
        return Classified("crash", None, {}, "the score phase did not run")
    scored = _classify_experiment(trial.score.result, metric_name)
    if scored.status == "ok":
        return scored
    return Classified(scored.status, None, scored.metrics, f"the score phase: {scored.reason}")


def _stopped_by_jail(name: str, phase: Phase) -> Classified | None:
    """The jail's own finding: it could not be set up, or the phase hit one of its limits."""
    report = phase.report
    if report is None:
        return None
    if report.setup_error:
        return Classified("crash", None, {}, f"the {name} phase's jail could not be set up: {report.setup_error}")
    if report.limit:
        status: TrialStatus = "oom" if report.limit == "memory" else "limit"
        return Classified(status, None, {}, f"the {name} phase: {report.detail}")
    return None


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
