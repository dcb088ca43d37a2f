"""lineage.svg: the pool as a graph. The best branch runs along the middle; stale winners, which
beat a best that had moved on, hang above it with an arrow to where their rebased re-run
landed; winners whose change conflicted with the newer best hang below it in red."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from coordinator.state import TrialRecord
from swarm.shell.report.facts import RunFacts, shorten

__all__ = ["Lineage", "lineage_of", "draw_lineage", "metric_label"]

_BEST, _STALE, _MERGED, _CONFLICT = 0.0, 1.0, 2.0, -1.0
MAX_LABELS = 40


@dataclass(frozen=True)
class Lineage:
    """Positions along the branch: best number i sits at x = i; what hangs off best i sits
    between i and i + 1, in the order it happened (time would crowd the early, busy part)."""

    best: list[tuple[str, float, str]]  # (commit, x, label) in the order best moved
    stale: list[tuple[str, float, str, str | None]]  # (trial, x, parent commit, landed commit)
    conflicts: list[tuple[str, float, str]]  # (trial, x, parent commit)
    merged: list[tuple[str, float, str, str]] = field(default_factory=list)  # (part, x, parent, its union's best)
    values: dict[str, float] = field(default_factory=dict)  # best commit -> the mean of its runs


def lineage_of(facts: RunFacts) -> Lineage:
    first = facts.changes[0].parent if facts.changes else facts.best_commit
    best = [(first, 0.0, "the target as given")]
    best += [(c.commit, float(c.number), f"{c.trial}: {c.hypothesis}") for c in facts.changes]
    start = facts.changes[0].before.mean if facts.changes else facts.best.mean
    values = {first: start} | {c.commit: c.after.mean for c in facts.changes}
    index = {commit: x for commit, x, _ in best}
    landed = {c.rebased_from: c.commit for c in facts.changes if c.rebased_from}
    stale = [t for t in facts.trials if t.verdict == "rebased"]
    conflicts = [t for t in facts.trials if t.verdict == "stale_conflict"]
    into = {part: c.commit for c in facts.changes for part in c.parts}
    merged = [t for t in facts.trials if t.id in into]
    spots = _between(stale + conflicts + merged, index)
    return Lineage(best, [(t.id, spots[t.id], t.parent, landed.get(t.id)) for t in stale],
                   [(t.id, spots[t.id], t.parent) for t in conflicts],
                   [(t.id, spots[t.id], t.parent, into[t.id]) for t in merged],
                   {commit: value for commit, value in values.items() if value is not None})


def _between(trials: list[TrialRecord], index: dict[str, float]) -> dict[str, float]:
    """x for each trial: spread evenly between its parent best and the next one."""
    by_parent: dict[float, list[TrialRecord]] = {}
    for trial in sorted(trials, key=lambda t: t.decided or t.finished):
        by_parent.setdefault(index.get(trial.parent, 0.0), []).append(trial)
    return {t.id: x + (i + 1) / (len(group) + 1) for x, group in by_parent.items()
            for i, t in enumerate(group)}


def draw_lineage(facts: RunFacts, path: Path) -> Figure:
    lineage = lineage_of(facts)
    width = min(max(14.0, 0.4 * len(lineage.best)), 60.0)  # room for each best's label
    figure = Figure(figsize=(width, 5), layout="constrained")
    axes = figure.subplots()
    at = {commit: x for commit, x, _ in lineage.best}
    _branch(axes, lineage)
    _stale(axes, lineage, at)
    _merged(axes, lineage, at)
    _hang(axes, [(x, p) for _, x, p in lineage.conflicts], at, _CONFLICT, "tab:red",
          f"conflicted with a newer best ({len(lineage.conflicts)})")
    off_branch = ([(t, x, _STALE) for t, x, *_ in lineage.stale]
                  + [(t, x, _MERGED) for t, x, *_ in lineage.merged]
                  + [(t, x, _CONFLICT) for t, x, _ in lineage.conflicts])
    for trial, x, y in off_branch[:MAX_LABELS]:
        axes.annotate(trial, (x, y), xytext=(0, 6), textcoords="offset points", fontsize=6, ha="center")
    axes.set_yticks([_CONFLICT, _BEST, _STALE, _MERGED], ["conflicts", "best", "stale winners", "union parts"])
    axes.set_ylim(-1.8, 2.6)
    axes.set_xlim(-0.5, max(len(lineage.best) - 0.5, 1.5))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # it counts changes: no 0.5th change
    axes.set_xlabel("accepted changes, in order (stale winners, union parts and conflicts after "
                    "the best they were proposed on)")
    axes.legend(loc="upper left", fontsize=8)
    axes.grid(axis="x", alpha=0.3)
    better = "lower" if facts.direction == "minimize" else "higher"
    axes.set_title(f"{facts.name}: the pool's lineage ({facts.metric} of each best above it, {better} "
                   "is better)")
    with rc_context({"svg.fonttype": "none"}):  # text as text: searchable, and a tenth the size
        figure.savefig(path)
    return figure  # for tests to read what was drawn


def _branch(axes: Axes, lineage: Lineage) -> None:
    xs = [x for _, x, _ in lineage.best]
    axes.plot(xs, [_BEST] * len(xs), "-o", color="tab:green", markersize=7, zorder=3,
              label=f"best branch ({len(xs) - 1} accepted)")
    for commit, x, label in lineage.best[:MAX_LABELS]:
        axes.annotate(shorten(label, 38), (x, _BEST), xytext=(0, -14), textcoords="offset points",
                      fontsize=7, rotation=-30, ha="left", va="top")
        if commit in lineage.values:
            axes.annotate(metric_label(lineage.values[commit]), (x, _BEST), xytext=(0, 8),
                          textcoords="offset points", fontsize=7, ha="center", color="tab:green",
                          fontweight="bold")


def metric_label(value: float) -> str:
    """A best's mean as the chart shows it: five significant digits, enough to tell bests apart
    whose gains are a fraction of a percent."""
    return f"{value:.5g}"


def _stale(axes: Axes, lineage: Lineage, at: dict[str, float]) -> None:
    """Stale winners, each with an arrow to the best its rebased re-run became."""
    landed = [(x, commit) for _, x, _, commit in lineage.stale if commit in at]
    _hang(axes, [(x, p) for _, x, p, _ in lineage.stale], at, _STALE, "tab:blue",
          f"stale winners, rebased ({len(lineage.stale)}; {len(landed)} landed on best)")
    for x, commit in landed:
        axes.annotate("", (at[commit], _BEST), (x, _STALE),
                      arrowprops={"arrowstyle": "->", "color": "tab:blue", "alpha": 0.7})


def _merged(axes: Axes, lineage: Lineage, at: dict[str, float]) -> None:
    """Parts of unions, each with an arrow to the best its union became."""
    _hang(axes, [(x, p) for _, x, p, _ in lineage.merged], at, _MERGED, "tab:purple",
          f"union parts ({len(lineage.merged)} in {len({u for *_, u in lineage.merged})} unions)")
    for _, x, _, union in lineage.merged:
        if union in at:
            axes.annotate("", (at[union], _BEST), (x, _MERGED),
                          arrowprops={"arrowstyle": "->", "color": "tab:purple", "alpha": 0.5})


def _hang(axes: Axes, points: list[tuple[float, str]], at: dict[str, float], y: float,
          colour: str, label: str) -> None:
    """Points off the branch, each joined to the best it was proposed on."""
    if not points:
        return
    for x, parent in points:
        if parent in at:
            axes.plot([at[parent], x], [_BEST, y], "--", color=colour, alpha=0.4, linewidth=0.8)
    axes.scatter([x for x, _ in points], [y] * len(points), color=colour, s=25, zorder=4,
                 marker="x" if y == _CONFLICT else "o", label=label)

