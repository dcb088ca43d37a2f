"""results.tsv in autoresearch's columns, derived from the state (so a crash never leaves it behind).

One change has one commit id: a kept trial's line (and its confirmations') names the commit it
became on `swarm/best`, as the report and `git log swarm/best` do; the commit the trial itself
ran stays reachable under refs/swarm/trials/<id>.
"""

from __future__ import annotations

import os
from pathlib import Path

from coordinator.state import SwarmState, TrialRecord

__all__ = ["result_status", "ResultsFile"]

_VERDICT_STATUS: dict[str, str] = {
    "accepted": "keep", "merged": "merged", "discard": "discard", "unconfirmed": "unconfirmed",
    "rebased": "rebased", "stale_conflict": "stale_conflict", "promising": "pending"}


def result_status(trial: TrialRecord) -> str:
    """keep | discard | crash as autoresearch writes them, plus the swarm's own statuses."""
    if trial.status != "ok":
        return str(trial.status)
    if trial.kind in ("baseline", "confirm"):
        return trial.kind
    return _VERDICT_STATUS.get(trial.verdict or "", "pending")


def _header(metric_name: str, others: tuple[str, ...]) -> list[str]:
    # autoresearch's five columns first and in its order, so its scripts read this file as is;
    # the config's other metrics (tie-breakers, the held-out one) last.
    return ["commit", metric_name, "memory_gb", "status", "description", "trial", "worker", "cost_usd", *others]


def _row(trial: TrialRecord, commit: str, others: tuple[str, ...]) -> list[str]:
    metric = f"{trial.metric:.6f}" if trial.metric is not None else "0.000000"
    memory = _memory_mb(trial.metrics) / 1024
    extra = [f"{trial.metrics[name]:.6g}" if name in trial.metrics else "" for name in others]
    return [commit[:7], metric, f"{memory:.1f}", result_status(trial),
            _description(trial), trial.id, trial.worker, f"{trial.cost.usd:.6f}", *extra]


class ResultsFile:
    """results.tsv kept in step with the state: a line per finished trial, in the order trials
    finished (as autoresearch appends them). After a change only the lines from the first one
    that changed are written again (usually the last few: a verdict follows its run), so a
    result costs the same with 100 trials on record as with 100,000
    (bench/coordinator_capacity.py); the first write after an open writes the whole file."""

    def __init__(self, path: Path, metric_name: str, others: tuple[str, ...] = ()) -> None:
        """`others`: the config's other metrics, a column each after autoresearch's."""
        self.path = path
        self.others = others
        self.header = _line(_header(metric_name, others))
        self.order: list[str] = []  # trials, as their lines stand in the file
        self.index: dict[str, int] = {}
        self.lines: list[str] = []
        self.ends: list[int] = []  # byte offset after each line (the header's end first)
        self._written = 0  # lines on disk as they are here; 0: write it all
        self._became: dict[str, str] = {}  # accepted trial -> the commit it became on swarm/best
        self._bests_seen = 0  # of state.history, which only grows

    def write(self, state: SwarmState, changed: set[str] | None = None) -> None:
        """Brings the file up to date; `changed`: trials whose line may have changed since the
        last write (None: any)."""
        self._learn_bests(state)
        if changed is not None:  # a union's acceptance is its parts' verdict too, and a kept
            # trial's confirmations take its best commit
            changed = changed | {p for t in changed for p in state.trials[t].parts}
            changed |= {c for t in changed for c in state.confirms_of.get(t, ())}
        ids = state.finish_order if changed is None else sorted(changed, key=lambda t: state.trials[t].finish_number)
        first = self._written
        for trial_id in ids:
            trial = state.trials[trial_id]
            if trial.status is None:
                continue
            line = _line(_row(trial, self._commit_of(trial), self.others))
            at = self.index.get(trial_id)
            if at is None:
                self.index[trial_id] = at = len(self.order)
                self.order.append(trial_id)
                self.lines.append(line)
            elif self.lines[at] == line:
                continue
            self.lines[at] = line
            first = min(first, at)
        self._flush(first)

    def _learn_bests(self, state: SwarmState) -> None:
        for best in state.history[self._bests_seen:]:
            if best.trial is not None:
                self._became[best.trial] = best.commit
        self._bests_seen = len(state.history)

    def _commit_of(self, trial: TrialRecord) -> str:
        """The id its line names: the best commit of the change it measured, once kept."""
        if trial.kind == "confirm" and trial.of in self._became:
            return self._became[trial.of]
        return self._became.get(trial.id, trial.commit)

    def _flush(self, first: int) -> None:
        """Writes lines[first:] over what the file holds from there (all of it after an open)."""
        if self._written == 0 or not self.path.exists():
            first = 0
        elif first >= len(self.lines) == self._written:
            return  # nothing changed
        if first == 0:
            _replace(self.path, self.header + "".join(self.lines))
            self.ends = [len(self.header.encode())]
        else:
            with open(self.path, "r+b") as file:
                file.seek(self.ends[first])
                file.write("".join(self.lines[first:]).encode())
                file.truncate()
            del self.ends[first + 1:]
        for line in self.lines[len(self.ends) - 1:]:
            self.ends.append(self.ends[-1] + len(line.encode()))
        self._written = len(self.lines)


def _memory_mb(metrics: dict[str, float]) -> float:
    """GPU memory where the experiment reports it, else its peak RSS (a CPU target's memory)."""
    return metrics.get("peak_vram_mb") or metrics.get("peak_rss_mb") or 0.0


def _replace(path: Path, text: str) -> None:
    """Replaces the file atomically, so a reader never sees half of it."""
    scratch = path.with_suffix(".tsv.tmp")
    scratch.write_text(text, encoding="utf-8")  # the byte offsets of the lines are UTF-8's
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
