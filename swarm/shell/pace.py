"""The live display's time rows: how long the session has run, how much of each limit the config
sets is used, and when the first of them will be reached at this session's pace."""

from __future__ import annotations

import time

from coordinator.budget import Budget, Limit
from coordinator.status import RunStatus

__all__ = ["pace_rows", "pace_line", "duration"]

_STOP_KEY = {"trials": "stop.max_trials", "hours": "stop.hours", "cost": "stop.max_cost_usd"}


def pace_rows(status: RunStatus, now: float | None = None) -> list[tuple[str, str]]:
    """("elapsed", ...), ("budget", ...) and, while the run goes on, ("ETA", ...)."""
    budget = status.budget
    if budget is None:
        return []
    rows = [("elapsed", f"{duration(budget.elapsed_s)} this session")]
    rows.append(("budget", ", ".join(map(_used, budget.limits)) or
                 "no limit set: it runs until stop.target_metric, Ctrl-C or SIGTERM"))
    if status.stop_reason is None and status.driver.phase == "running" and budget.limits:
        rows.append(("ETA", _eta(budget, time.time() if now is None else now)))
    return rows


def pace_line(status: RunStatus, now: float | None = None) -> str:
    """The same on one line, for a log: '; 1 min 40 s elapsed, trials 5 of 10 (50%), ETA ...'."""
    rows = dict(pace_rows(status, now))
    if not rows:
        return ""
    parts = [rows["elapsed"].removesuffix(" this session") + " elapsed"]
    if status.budget is not None and status.budget.limits:
        parts.append(rows["budget"])
    if "ETA" in rows:
        parts.append(f"ETA {rows['ETA']}")
    return "; " + ", ".join(parts)


def duration(seconds: float) -> str:
    """12 s, 4 min 05 s, 3 h 20 min, 2 d 04 h: two units at most, the larger first."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600:02d} h"


def _used(limit: Limit) -> str:
    percent = f"{100 * limit.share:.0f}%"
    if limit.name == "trials":  # owed confirmations may run past it (decide.WIND_DOWN_ROUNDS)
        past = f", {limit.used - limit.limit:.0f} owed past it" if limit.used > limit.limit else ""
        return f"trials {limit.used:.0f} of {limit.limit:.0f} ({percent}{past})"
    if limit.name == "hours":
        return f"hours {limit.used:.2f} of {limit.limit:g} ({percent})"
    return f"cost ${limit.used:.2f} of ${limit.limit:g} ({percent})"


def _eta(budget: Budget, now: float) -> str:
    first = budget.first
    if first is None or first.eta_s is None:
        return "not known until this session has finished a trial"
    key = _STOP_KEY[first.name]
    if first.eta_s <= 0:
        return f"{key} reached: finishing the trials in flight"
    at = f" (at {time.strftime('%H:%M', time.localtime(now + first.eta_s))})" if first.eta_s >= 60 else ""
    return f"about {duration(first.eta_s)}{at}, when {key} is reached"
