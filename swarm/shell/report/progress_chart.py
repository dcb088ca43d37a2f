"""progress.png: autoresearch's chart for a swarm, metric against time and against trial number.

Every ok trial is a dot coloured by worker (or by node when there are many workers); kept
trials are stars labelled with their hypotheses; the running best is a step line; a trial that
was re-run to confirm it carries an error bar over all its runs; failed trials are red ticks on
the bottom edge. It stays readable from 10 trials to thousands: small, translucent, rasterized
dots, and labels only for the largest gains.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from coordinator.state import TrialRecord
from swarm.core.values import FAILED_STATUSES
from swarm.shell.report.facts import RunFacts, shorten

Colour = tuple[float, float, float, float]  # RGBA

__all__ = ["draw_progress", "MAX_LABELS"]

MAX_LABELS = 25  # kept trials labelled; more would overlap


def draw_progress(facts: RunFacts, path: Path) -> Figure:
    figure = Figure(figsize=(14, 10), dpi=110, layout="constrained")
    by_time, by_number = figure.subplots(2, 1)
    colours = _colours(facts.trials)
    for axes, axis in ((by_time, "time"), (by_number, "number")):
        _draw(axes, facts, colours, axis)
    better = "lower" if facts.direction == "minimize" else "higher"
    figure.suptitle(f"{facts.name}: {facts.metric} ({better} is better), "
                    f"{facts.evaluated} trials evaluated, {len(facts.changes)} kept")
    figure.savefig(path)
    return figure  # for tests to read what was drawn


def _y(trial: TrialRecord) -> float:
    """The trial's metric (the charts draw measured trials only; nan draws nothing)."""
    return trial.metric if trial.metric is not None else float("nan")


def _x(trial: TrialRecord, facts: RunFacts, axis: str) -> float:
    return facts.since_start(trial.finished) if axis == "time" else float(int(trial.id))


def _draw(axes: Axes, facts: RunFacts, colours: dict[str, Colour], axis: str) -> None:
    measured = [t for t in facts.trials if t.status == "ok" and t.metric is not None]
    candidates = [t for t in measured if t.kind == "candidate"]
    _dots(axes, candidates, facts, colours, axis)
    _baselines(axes, [t for t in measured if t.kind == "baseline"], facts, axis)
    _confirmed(axes, candidates, measured, facts, axis)
    _best_line(axes, facts, axis)
    _kept(axes, [t for t in candidates if t.verdict == "accepted"], facts, axis)
    _failures(axes, [t for t in facts.trials if t.status in FAILED_STATUSES], facts, axis)
    _limits(axes, measured, facts)
    axes.set_xlabel(facts.clock[1] if axis == "time" else "trial number")
    axes.set_ylabel(facts.metric)
    axes.grid(alpha=0.3)
    if len(colours) <= 20 and colours:
        # markerscale: the dots of a large run are too small and faint to match in the legend
        axes.legend(loc="upper right", fontsize=7, ncols=2 if len(colours) > 10 else 1, markerscale=1.5)


def _dots(axes: Axes, candidates: list[TrialRecord], facts: RunFacts, colours: dict[str, Colour], axis: str) -> None:
    size, alpha = (18, 0.8) if len(candidates) < 300 else (5, 0.45)
    groups: dict[str, list[TrialRecord]] = defaultdict(list)
    for trial in candidates:
        groups[_key(trial, colours)].append(trial)
    for key, trials in sorted(groups.items(), key=lambda item: _natural(item[0])):
        axes.scatter([_x(t, facts, axis) for t in trials], [_y(t) for t in trials],
                     s=size, alpha=alpha, color=colours[key], rasterized=True, linewidths=0,
                     label=key if len(colours) <= 20 else None)


def _baselines(axes: Axes, baselines: list[TrialRecord], facts: RunFacts, axis: str) -> None:
    if baselines:
        axes.scatter([_x(t, facts, axis) for t in baselines], [_y(t) for t in baselines],
                     s=14, marker="_", color="0.35", label="baseline runs", rasterized=True)


def _confirmed(axes: Axes, candidates: list[TrialRecord], measured: list[TrialRecord],
               facts: RunFacts, axis: str) -> None:
    runs: dict[str, list[float]] = defaultdict(list)
    for trial in measured:
        if trial.kind == "confirm" and trial.of and trial.metric is not None:
            runs[trial.of].append(trial.metric)
    for trial in candidates:
        if trial.id in runs and trial.metric is not None:
            values = [trial.metric, *runs[trial.id]]
            centre = float(np.mean(values))
            axes.errorbar(_x(trial, facts, axis), centre,
                          yerr=[[centre - min(values)], [max(values) - centre]],
                          fmt="none", ecolor="0.2", elinewidth=0.8, capsize=2, alpha=0.7)


def _best_line(axes: Axes, facts: RunFacts, axis: str) -> None:
    if not facts.running_best:
        return
    end_x = (facts.since_start(facts.ended) if axis == "time"
             else float(max((int(t.id) for t in facts.trials), default=0)))
    xs = [facts.since_start(ts) if axis == "time" else number for ts, number, _ in facts.running_best]
    ys = [value for _, _, value in facts.running_best]
    axes.step(xs + [max(end_x, xs[-1])], ys + [ys[-1]], where="post", color="tab:green",
              linewidth=2, label="running best (mean of its runs)")


def _kept(axes: Axes, kept: list[TrialRecord], facts: RunFacts, axis: str) -> None:
    if not kept:
        return
    axes.scatter([_x(t, facts, axis) for t in kept], [_y(t) for t in kept], s=90, marker="*",
                 color="gold", edgecolors="black", linewidths=0.7, zorder=5, label="kept")
    labelled = sorted(kept, key=lambda t: -(t.gain or 0.0))[:MAX_LABELS]
    for trial in labelled:
        axes.annotate(shorten(trial.hypothesis, 40), (_x(trial, facts, axis), trial.metric),
                      xytext=(4, 6), textcoords="offset points", fontsize=7, rotation=20,
                      color="0.15", zorder=6)


def _failures(axes: Axes, failed: list[TrialRecord], facts: RunFacts, axis: str) -> None:
    if failed:
        edge = blended_transform_factory(axes.transData, axes.transAxes)
        axes.scatter([_x(t, facts, axis) for t in failed], [0.01] * len(failed), marker="|",
                     s=40, color="tab:red", transform=edge, label=f"failed ({len(failed)})",
                     rasterized=True)


def _limits(axes: Axes, measured: list[TrialRecord], facts: RunFacts) -> None:
    # Outliers (a diverged run) would squash everything else: show the central 98% and best.
    values = np.array([t.metric for t in measured] + [v for _, _, v in facts.running_best])
    if values.size == 0:
        axes.text(0.5, 0.5, "no trial has a metric yet", transform=axes.transAxes, ha="center")
        return
    low, high = np.percentile(values, [1, 99]) if values.size >= 50 else (values.min(), values.max())
    best = [v for _, _, v in facts.running_best]
    low, high = min([low, *best]), max([high, *best])
    pad = (high - low) * 0.08 or abs(high) * 0.05 or 1.0
    axes.set_ylim(low - pad, high + pad)


def _colours(trials: list[TrialRecord]) -> dict[str, Colour]:
    """One colour per worker; per node when there are more than 20 workers."""
    workers = sorted({t.worker for t in trials}, key=_natural)
    keys = workers if len(workers) <= 20 else sorted({t.node or t.worker for t in trials}, key=_natural)
    steps = max(len(keys) - 1, 1)
    palette = colormaps["tab10" if len(keys) <= 10 else "tab20" if len(keys) <= 20 else "viridis"]
    return {key: palette(i if len(keys) <= 20 else i / steps) for i, key in enumerate(keys)}


def _natural(name: str) -> list[int | str]:
    """w2 before w10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _key(trial: TrialRecord, colours: dict[str, Colour]) -> str:
    return trial.worker if trial.worker in colours else (trial.node or trial.worker)

