"""Renders a run's status for people: the live display of `swarm run` and `swarm status`."""

from __future__ import annotations

import time

from rich.console import Group
from rich.table import Table
from rich.text import Text

from coordinator.status import Headline, RunStatus

__all__ = ["render_status", "format_metric"]


def format_metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"


def render_status(status: RunStatus | None) -> Group:
    if status is None or status.best is None:
        return Group(Text("starting the coordinator and workers..."))
    return Group(_headline(status, status.best), _workers(status))


def _headline(status: RunStatus, best: Headline) -> Table:
    table = Table.grid(padding=(0, 2))
    baseline = status.baseline
    gain = ""
    if best.mean is not None and baseline and baseline.mean is not None and status.gain is not None:
        gain = f"  ({status.gain:+.6f} better than the baseline {_estimate(baseline)})"
    origin = f"trial {best.trial}: {best.hypothesis}" if best.trial else "the target as given"
    noise = status.noise
    rows = [
        ("run", f"{status.name}  ({status.metric}, {status.direction})"),
        ("best", f"{_estimate(best)}{gain}"),
        ("from", f"{origin}  [{best.commit[:7]}]  {status.accepted} accepted so far"),
        ("noise", "-" if noise is None else f"{noise:.6f} (pooled std of repeated runs)"),
        ("trials", f"{status.trials_done} done, {status.trials_running} running, "
                   f"{status.trials_per_hour:.0f}/hour this session"),
        ("by status", ", ".join(f"{k} {v}" for k, v in sorted(status.by_status.items())) or "-"),
        ("GPU-hours", _gpu_hours(status)),
    ]
    if status.proposal_failures:
        rows.append(("proposals", _failures(status)))
    per = (f", ${status.cost_usd / status.accepted:.4f} per accepted change"
           if status.accepted and status.cost_usd else "")
    rows.append(("cost", f"${status.cost_usd:.4f} for proposals{per}"))
    if status.stop_reason:
        rows.append(("stopping", status.stop_reason))
    for key, value in rows:
        table.add_row(Text(key, style="bold"), value)
    return table


def _estimate(figure: Headline) -> str:
    spread = f" ± {figure.spread:.6f}" if figure.spread is not None else ""
    return f"{format_metric(figure.mean)}{spread} over {figure.runs} runs"


def _gpu_hours(status: RunStatus) -> str:
    if not status.gpus_per_worker:
        return f"0 (CPU workers: {status.worker_hours:.2f} worker-hours in experiments)"
    return f"{status.gpu_hours:.2f} in experiments ({status.gpus_per_worker:g} GPU per worker)"


def _failures(status: RunStatus) -> str:
    """How many proposals failed, and the latest reason: a provider that stays down shows here."""
    text = f"{status.proposal_failures} failed"
    last = status.last_proposal_failure
    if last:
        ago = max(0.0, time.time() - last.ts)
        text += f"; latest {ago:.0f} s ago on {last.worker}: {last.reason[:160]}"
    return text


def _workers(status: RunStatus) -> Table:
    table = Table(title=None, show_edge=False, header_style="bold")
    for column in ("worker", "where", "trials", "per hour", "doing"):
        table.add_column(column)
    for worker, row in status.workers.items():
        shown = {"host": row.host, "node": row.node, "gpus": row.gpus, "hardware": row.hardware,
                 "volunteer": "yes" if row.volunteer else ""}
        where = " ".join(f"{k}={v}" for k, v in shown.items() if v)
        table.add_row(worker, where, str(row.trials), f"{row.per_hour:.1f}", row.doing)
    return table
