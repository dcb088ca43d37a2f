"""CHANGELOG.md: the accepted changes of a run, oldest first, written for the next proposer.

It is handed to a model as context, so it is plain text: no tables, no HTML, no charts, one
line per fact. A held-out metric (`target.metric.heldout`) is never in it: the proposer must
not see how a change did on the cases kept from it. Pure: facts, measures, diffs and lessons in,
text out; `metric_moves` reads the replayed state, nothing on disk.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coordinator.state import SwarmState
from swarm.core.stats import Direction, improvement
from swarm.shell.report.facts import Change, RunFacts, metric_means

__all__ = ["MetricMove", "FileDiff", "heldout_metrics", "metric_moves", "diff_summary",
           "render_changelog"]


@dataclass(frozen=True)
class MetricMove:
    """One metric of one accepted change: the best's mean before it and after it."""

    name: str
    before: float | None
    after: float | None
    direction: Direction | None  # None: the config does not say which way is better

    @property
    def gain(self) -> float | None:
        """Positive = better, where the direction is known."""
        if self.before is None or self.after is None or self.direction is None:
            return None
        return improvement(self.after, self.before, self.direction)


@dataclass(frozen=True)
class FileDiff:
    path: str
    added: int
    removed: int


def heldout_metrics(config: Mapping[str, Any]) -> frozenset[str]:
    """The metric names that must never reach a proposer."""
    heldout = config.get("target", {}).get("metric", {}).get("heldout")
    return frozenset({heldout}) if heldout else frozenset()


def metric_moves(state: SwarmState, facts: RunFacts, config: Mapping[str, Any]) -> dict[str, list[MetricMove]]:
    """Per accepted change (by its best commit), every metric besides the primary that the
    best's trusted runs recorded, before and after; held-out metrics left out here already, so
    that no later rendering can leak them."""
    target = config.get("target", {})
    directions: dict[str, Direction] = {t["name"]: t.get("direction", "minimize")
                                        for t in target.get("tiebreak", [])}
    hidden = heldout_metrics(config) | {facts.metric}
    moves = {}
    for change in facts.changes:
        before, after = metric_means(state, change.parent), metric_means(state, change.commit)
        names = [n for n in _ordered(list(directions), set(before) | set(after)) if n not in hidden]
        moves[change.commit] = [MetricMove(n, before.get(n), after.get(n), directions.get(n))
                                for n in names]
    return moves


def _ordered(first: list[str], names: set[str]) -> list[str]:
    """The config's tie-breakers in its order, then the rest alphabetically."""
    return [n for n in first if n in names] + sorted(names - set(first))


def diff_summary(diff: str) -> list[FileDiff]:
    """Files a unified diff touches, with the lines it adds and removes in each."""
    files: list[FileDiff] = []
    path, added, removed = "", 0, 0
    for line in diff.splitlines():
        if line.startswith("diff --git "):
            if path:
                files.append(FileDiff(path, added, removed))
            path, added, removed = line.rsplit(" b/", 1)[-1], 0, 0
        elif line.startswith(("+++", "---")):
            continue
        elif line.startswith("+"):
            added += 1
        elif line.startswith("-"):
            removed += 1
    if path:
        files.append(FileDiff(path, added, removed))
    return files


def render_changelog(facts: RunFacts, moves: Mapping[str, list[MetricMove]],
                     diffs: Mapping[str, str], unhelpful: list[str]) -> str:
    parts = [_head(facts)]
    parts += [_change(c, facts, moves.get(c.commit, []), diffs.get(c.commit)) for c in facts.changes]
    parts.append(_never_helped(unhelpful))
    return "\n\n".join(parts) + "\n"


def _head(facts: RunFacts) -> str:
    better = "lower" if facts.direction == "minimize" else "higher"
    return (f"# Changelog: {facts.name}\n\n"
            f"Primary metric: {facts.metric} ({better} is better). Baseline {facts.baseline.text()}; "
            f"best now {facts.best.text()}.\n"
            f"{len(facts.changes)} accepted change(s), oldest first; each builds on the one before. "
            "A gain is positive when the change made the metric better.")


def _change(change: Change, facts: RunFacts, moves: list[MetricMove], diff: str | None) -> str:
    origin = f" (rebased re-run of trial {change.rebased_from})" if change.rebased_from else ""
    if change.parts:
        origin += f" (union of trials {', '.join(change.parts)})"
    primary = MetricMove(facts.metric, change.before.mean, change.after.mean, facts.direction)
    lines = [f"## {change.number}. trial {change.trial}{origin}",
             f"Hypothesis: {_one_line(change.hypothesis)}",
             _primary_line(primary, change.gain)]
    lines += [_move_line(m) for m in moves]
    lines.append(_diff_line(diff))
    return "\n".join(lines)


def _primary_line(move: MetricMove, gain: float) -> str:
    # The primary's gain is the judged one (class by class), not after - before of pooled means.
    shown = "-" if math.isnan(gain) else f"{gain:+.6g}"
    return f"- {move.name}: {_value(move.before)} -> {_value(move.after)}, gain {shown}"


def _move_line(move: MetricMove) -> str:
    gain = move.gain
    if gain is not None:
        return f"- {move.name}: {_value(move.before)} -> {_value(move.after)}, gain {gain:+.6g}"
    if move.before is not None and move.after is not None:
        return (f"- {move.name}: {_value(move.before)} -> {_value(move.after)}, "
                f"change {move.after - move.before:+.6g} (direction not configured)")
    return f"- {move.name}: {_value(move.before)} -> {_value(move.after)}"


def _diff_line(diff: str | None) -> str:
    if diff is None:
        return "- diff: not available (the run's repo/ does not hold this commit)"
    files = diff_summary(diff)
    if not files:
        return "- diff: no file changed"
    added, removed = sum(f.added for f in files), sum(f.removed for f in files)
    each = ", ".join(f"{f.path} (+{f.added} -{f.removed})" for f in files)
    return f"- diff: {len(files)} file(s), +{added} -{removed} lines: {each}"


def _never_helped(unhelpful: list[str]) -> str:
    body = "\n".join(f"- {line}" for line in unhelpful) or "- Nothing yet: too few judged trials."
    return "## What was tried and never helped\n\n" + body


def _value(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.6g}"


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "(none given)"
