"""results.tsv in autoresearch's columns, derived from the state (so a crash never leaves it behind)."""

from __future__ import annotations

import os
from pathlib import Path

from coordinator.state import SwarmState, TrialRecord

__all__ = ["result_status", "ResultsFile"]

_VERDICT_STATUS: dict[str, str] = {"accepted": "keep", "discard": "discard", "unconfirmed": "unconfirmed",
                   "rebased": "rebased", "stale_conflict": "stale_conflict", "promising": "pending"}


def result_status(trial: TrialRecord) -> str:
    """keep | discard | crash as autoresearch writes them, plus the swarm's own statuses."""
    if trial.status != "ok":
        return str(trial.status)
    if trial.kind in ("baseline", "confirm"):
        return trial.kind
    return _VERDICT_STATUS.get(trial.verdict or "", "pending")


def _header(metric_name: str) -> list[str]:
    # autoresearch's five columns first and in its order, so its scripts read this file as is.
    return ["commit", metric_name, "memory_gb", "status", "description", "trial", "worker", "cost_usd"]


def _row(trial: TrialRecord) -> list[str]:
    metric = f"{trial.metric:.6f}" if trial.metric is not None else "0.000000"
    memory = _memory_mb(trial.metrics) / 1024
    return [trial.commit[:7], metric, f"{memory:.1f}", result_status(trial),
            _description(trial), trial.id, trial.worker, f"{trial.cost.usd:.6f}"]


class ResultsFile:
    """results.tsv rewritten from the state after every result, formatting each trial's line
    only when what it shows changed: formatting every row each time cost the coordinator
    about 4 ms per 100 trials per result (bench/coordinator_capacity.py)."""

    def __init__(self, path: Path, metric_name: str) -> None:
        self.path = path
        self.header = _line(_header(metric_name))
        self.lines: dict[str, tuple[tuple[object, ...], str]] = {}  # trial -> (what its line shows, the line)

    def write(self, state: SwarmState) -> None:
        lines = [self.header]
        for trial in state.trials.values():
            if trial.status is None:
                continue
            shown = (trial.status, trial.verdict, trial.metric, trial.cost.usd)
            cached = self.lines.get(trial.id)
            if cached is None or cached[0] != shown:
                cached = self.lines[trial.id] = (shown, _line(_row(trial)))
            lines.append(cached[1])
        _replace(self.path, "".join(lines))


def _memory_mb(metrics: dict[str, float]) -> float:
    """GPU memory where the experiment reports it, else its peak RSS (a CPU target's memory)."""
    return metrics.get("peak_vram_mb") or metrics.get("peak_rss_mb") or 0.0


def _replace(path: Path, text: str) -> None:
    """Replaces the file atomically, so a reader never sees half of it."""
    scratch = path.with_suffix(".tsv.tmp")
    scratch.write_text(text)
    os.replace(scratch, path)


def _line(row: list[str]) -> str:
    return "\t".join(_clean(cell) for cell in row) + "\n"


def _description(trial: TrialRecord) -> str:
    if trial.kind == "confirm":
        return f"confirm {trial.of}: {trial.hypothesis}"
    if trial.kind == "candidate" and trial.of:
        return f"{trial.hypothesis} (rebased from {trial.of})"
    return trial.hypothesis


def _clean(cell: str) -> str:
    return " ".join(cell.replace("\t", " ").split())
