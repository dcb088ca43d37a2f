"""Renders a run's status for people: the live display of `swarm run` and `swarm status`."""

from __future__ import annotations

import time

from rich.console import Group
from rich.table import Table
from rich.text import Text

from coordinator.liveness import DRIVER_GONE_AFTER_S
from coordinator.status import Headline, LatestFailure, RunStatus
from swarm.shell.pace import pace_rows

__all__ = ["render_status", "format_metric", "describe_driver"]


def format_metric(value: float | None, signed: bool = False) -> str:
    """A figure in the metric's units (a mean, a spread, a gain) to 6 significant digits, in
    plain notation from 1e-4 to 1e6: enough for any metric's noise, where raw floats carry
    the binary rounding (6.6946200000000005) and a fixed 6 decimals hide a metric near 1e-7."""
    if value is None:
        return "-"
    return f"{value:+.6g}" if signed else f"{value:.6g}"


def render_status(status: RunStatus | None) -> Group:
    if status is None or status.best is None:
        return Group(Text("starting the coordinator and workers..."))
    if not status.workers:  # no worker has joined, or (a final status) none ran this session
        return Group(_headline(status, status.best))
    return Group(_headline(status, status.best), _workers(status))


def _others(best: Headline, baseline: Headline | None) -> str:
    """Each tie-breaker's (and the held-out metric's) mean on best, beside the baseline's."""
    was = baseline.others if baseline else {}
    return ", ".join(f"{name} {format_metric(value)}" + (f" (baseline {format_metric(was[name])})"
                                                         if name in was else "")
                     for name, value in best.others.items())


def _headline(status: RunStatus, best: Headline) -> Table:
    table = Table.grid(padding=(0, 2))
    baseline = status.baseline
    gain = ""
    if best.mean is not None and baseline and baseline.mean is not None and status.gain is not None:
        gain = f"  ({format_metric(status.gain, signed=True)} better than the baseline {_estimate(baseline)})"
    origin = f"trial {best.trial}: {best.hypothesis}" if best.trial else "the target as given"
    noise = status.noise
    rows = [
        ("run", f"{status.name}  ({status.metric}, {status.direction})"),
        ("best", f"{_estimate(best)}{gain}"),
        *([("other metrics", _others(best, baseline))] if best.others else []),
        ("from", f"{origin}  [{best.commit[:7]}]  {status.accepted} accepted so far"),
        ("noise", "-" if noise is None else f"{format_metric(noise)} (pooled std of repeated runs)"),
        ("trials", f"{status.trials_done} done, {status.trials_running} running{_unfinished(status)}, "
                   f"{status.trials_per_hour:.0f}/hour this session"),
        *pace_rows(status),
        ("by status", ", ".join(f"{k} {v}" for k, v in sorted(status.by_status.items())) or "-"),
        ("GPU-hours", _gpu_hours(status)),
    ]
    if driver := describe_driver(status):
        rows.insert(1, ("driver", driver))
    if status.proposal_failures:
        rows.append(("proposals", _failures(status)))
    if status.latest_failure:
        rows.append(("latest failure", _latest_failure(status.latest_failure)))
    per = (f", ${status.cost_usd / status.accepted:.4f} per accepted change"
           if status.accepted and status.cost_usd else "")
    rows.append(("cost", f"${status.cost_usd:.4f} for proposals{per}"))
    if status.stop_reason:
        rows.append(("stopping", status.stop_reason))
    for key, value in rows:
        # Text, not a str: rich would take "[abcdef1]" (a commit) or a hypothesis's "[link=...]" for markup
        table.add_row(Text(key, style="bold"), Text(value))
    return table


def describe_driver(status: RunStatus, now: float | None = None) -> str:
    """Said when the run's driver is not running it (from the ledger and its heartbeat)."""
    driver, now = status.driver, time.time() if now is None else now
    when = f"{_clock(driver.since, now)} ({_ago(now - driver.since)})" if driver.since is not None else ""
    if driver.phase == "gone":
        return f"gone since {when}: no trials run; `swarm run CONFIG --resume` continues the run"
    if driver.phase == "ended":
        return f"stopped at {when}: {driver.reason or 'the session ended'}"
    if driver.phase == "running" and driver.since and now - driver.since > _QUIET_S:
        return f"last heard from {_ago(now - driver.since)} (taken for gone after {DRIVER_GONE_AFTER_S:.0f} s)"
    if driver.phase == "unknown" and status.trials_running:
        return "not known: the run directory has no driver.heartbeat of its latest session"
    return ""


_QUIET_S = 10.0  # a driver polls every half second: this much silence is worth saying


def _unfinished(status: RunStatus) -> str:
    if not status.trials_unfinished:
        return ""
    return f" ({status.trials_unfinished} unfinished: recorded lost when the run is resumed)"


def _clock(ts: float, now: float) -> str:
    same_day = time.localtime(ts)[:3] == time.localtime(now)[:3]
    return time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def _estimate(figure: Headline) -> str:
    spread = f" ± {format_metric(figure.spread)}" if figure.spread is not None else ""
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


def _latest_failure(failure: LatestFailure) -> str:
    """Why the newest broken trial broke: a target that fails every time shows it here."""
    ago = max(0.0, time.time() - failure.ts)
    return f"{failure.status} in {failure.kind} {failure.trial}, {ago:.0f} s ago: {failure.reason[:200]}"


def _workers(status: RunStatus) -> Table:
    table = Table(title=None, show_edge=False, header_style="bold")
    for column in ("worker", "where", "trials", "per hour", "doing"):
        table.add_column(column)
    for worker, row in status.workers.items():
        shown = {"host": row.host, "node": row.node, "gpus": row.gpus, "hardware": row.hardware,
                 "volunteer": "yes" if row.volunteer else ""}
        where = " ".join(f"{k}={v}" for k, v in shown.items() if v)
        table.add_row(*map(Text, (worker, where, str(row.trials), f"{row.per_hour:.1f}", row.doing)))
    return table
