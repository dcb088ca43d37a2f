"""Elapsed time, budget progress and the ETA of the live display (coordinator/budget.py,
swarm/shell/pace.py), and no empty worker table. Pure: replayed events (tests/test_cli.py looks
at the final display of a real run)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from rich.console import Console

from coordinator.budget import budget_of
from coordinator.liveness import DriverState
from coordinator.state import SwarmState
from coordinator.status import RunStatus, summarize
from swarm.core.config import StopSpec, SwarmConfig
from swarm.core.events import parse_event
from swarm.core.values import Placement, WorkerSite
from swarm.shell.pace import duration, pace_line
from swarm.shell.progress import render_status

T0 = 1_700_000_000.0  # when the latest session started


def trial(number: int, session: str, started: float, finished: float | None,
          cost: float = 0.0, status: str = "ok") -> list[dict[str, Any]]:
    trial_id = f"{number:05d}"
    events: list[dict[str, Any]] = [
        {"event": "trial_started", "ts": started, "trial": trial_id, "kind": "candidate", "worker": "w0",
         "commit": f"c{number}", "tree": f"t{number}", "parent": "c0", "session": session,
         "hypothesis": f"change {number}", "cost_usd": cost}]
    if finished is not None:
        events.append({"event": "trial_finished", "ts": finished, "trial": trial_id, "status": status,
                       "metric": 1.0 if status == "ok" else None})
    return events


def state_of(*trials: list[dict[str, Any]], resumed: bool = False) -> SwarmState:
    events: list[dict[str, Any]] = [
        {"event": "run_started", "ts": T0 - 7200, "commit": "c0", "tree": "t0", "readonly_hashes": {},
         "config": {}}]
    if resumed:
        events.append({"event": "session_started", "ts": T0 - 7200, "session": "s0"})
    events.append({"event": "session_started", "ts": T0, "session": "s1"})
    state = SwarmState()
    for event in sorted(events + [e for t in trials for e in t], key=lambda e: e["ts"]):
        state.apply(parse_event(event))
    return state


# 100 s into the session: four trials finished (0.04 a second), a fifth in flight
FOUR_DONE = [trial(i, "s1", T0 + 25 * (i - 1), T0 + 25 * i, cost=0.05) for i in range(1, 5)]
RUNNING = trial(5, "s1", T0 + 99, None, cost=0.05)


def test_trials_are_counted_as_the_stop_rule_counts_them_and_the_eta_goes_by_trials_finished() -> None:
    budget = budget_of(state_of(*FOUR_DONE, RUNNING), StopSpec(max_trials=10), T0, T0 + 100)
    [limit] = budget.limits
    assert (budget.elapsed_s, limit.name, limit.used, limit.limit) == (100.0, "trials", 5, 10)
    assert limit.eta_s == pytest.approx(150.0)  # 6 more to finish at 0.04 a second


def test_hours_and_cost_each_have_their_own_eta_and_the_soonest_wins() -> None:
    stop = StopSpec(max_trials=None, hours=0.5, max_cost_usd=1.0)
    budget = budget_of(state_of(*FOUR_DONE, RUNNING), stop, T0, T0 + 100)
    hours, cost = budget.limits
    assert (hours.name, hours.used, hours.eta_s) == ("hours", pytest.approx(100 / 3600), pytest.approx(1700.0))
    assert (cost.name, cost.used) == ("cost", pytest.approx(0.25))
    assert cost.eta_s == pytest.approx(0.75 / (0.25 / 100))  # $0.75 left at $0.0025 a second
    assert (budget.first, budget.eta_s) == (cost, pytest.approx(300.0))


def test_only_the_limits_the_config_sets_are_shown() -> None:
    budget = budget_of(state_of(*FOUR_DONE), StopSpec(max_trials=None), T0, T0 + 100)
    assert (budget.limits, budget.eta_s, budget.first) == ((), None, None)


def test_a_resumed_run_counts_every_session_but_goes_at_this_sessions_pace() -> None:
    earlier = [trial(i, "s0", T0 - 7000 + i, T0 - 6000 + i) for i in range(6, 12)]  # six, hours ago
    budget = budget_of(state_of(*earlier, *FOUR_DONE, resumed=True), StopSpec(max_trials=20), T0, T0 + 100)
    [limit] = budget.limits
    assert (limit.used, limit.eta_s) == (10, pytest.approx(250.0))  # 10 more at 0.04 a second


def test_no_pace_before_the_first_trial_of_the_session_finishes() -> None:
    budget = budget_of(state_of(RUNNING), StopSpec(max_trials=10), T0, T0 + 100)
    assert (budget.limits[0].used, budget.limits[0].eta_s, budget.eta_s) == (1, None, None)


def test_failed_trials_count_and_refused_ones_do_not() -> None:
    crashed = trial(1, "s1", T0, T0 + 10, status="crash")
    refused = trial(2, "s1", T0 + 10, T0 + 10, status="duplicate")
    [limit] = budget_of(state_of(crashed, refused), StopSpec(max_trials=3), T0, T0 + 20).limits
    assert (limit.used, limit.eta_s) == (1, pytest.approx(40.0))  # 2 more at 0.05 a second


def test_a_spent_limit_is_due_now() -> None:
    [limit] = budget_of(state_of(*FOUR_DONE, RUNNING), StopSpec(max_trials=5), T0, T0 + 100).limits
    assert (limit.share, limit.eta_s) == (1.0, 0.0)


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (59.4, "59 s"), (60, "1 min 00 s"), (245, "4 min 05 s"), (3600, "1 h 00 min"),
    (12_000, "3 h 20 min"), (86_400 * 2 + 4 * 3600, "2 d 04 h")])
def test_durations_read_in_two_units_at_most(seconds: float, text: str) -> None:
    assert duration(seconds) == text


# -- the display -----------------------------------------------------------------------------

CONFIG = SwarmConfig.model_validate({
    "name": "t", "target": {"repo": "r", "editable": ["train.py"], "run": "python train.py",
                            "metric": {"name": "score"}, "budget_s": 1, "timeout_s": 2},
    "stop": {"max_trials": 10, "hours": 0.5}})
LIVE = {"w0": (WorkerSite(host="h"), Placement())}


def shown(status: RunStatus) -> str:
    console = Console(record=True, width=200)
    console.print(render_status(status))
    return console.export_text()


def test_the_live_display_shows_elapsed_time_each_limit_and_the_eta() -> None:
    now = time.time()
    status = summarize(state_of(*FOUR_DONE, RUNNING), CONFIG, LIVE, T0, None, now=T0 + 100)
    text = shown(status)
    assert "elapsed    1 min 40 s this session" in text
    assert "budget     trials 5 of 10 (50%), hours 0.03 of 0.5 (6%)" in text
    found = re.search(r"ETA        about 2 min 30 s \(at (\d\d:\d\d)\), when stop.max_trials is reached", text)
    assert found, text
    assert found.group(1) in {time.strftime("%H:%M", time.localtime(now + 150 + d)) for d in (0, 5)}


def test_a_run_that_is_stopping_or_without_its_driver_shows_no_eta() -> None:
    state = state_of(*FOUR_DONE, RUNNING)
    stopping = shown(summarize(state, CONFIG, LIVE, T0, "stop requested", now=T0 + 100))
    gone = shown(summarize(state, CONFIG, LIVE, T0, None, now=T0 + 100, driver=DriverState("gone", T0)))
    assert "elapsed    1 min 40 s this session" in stopping and "elapsed" in gone
    assert "ETA" not in stopping and "ETA" not in gone


def test_a_run_without_limits_says_what_stops_it() -> None:
    config = SwarmConfig.model_validate({**CONFIG.model_dump(), "stop": {"max_trials": None}})
    text = shown(summarize(state_of(*FOUR_DONE), config, LIVE, T0, None, now=T0 + 100))
    assert "budget     no limit set: it runs until stop.target_metric, Ctrl-C or SIGTERM" in text
    assert "ETA" not in text


def test_a_display_with_no_worker_at_all_leaves_the_table_out() -> None:
    text = shown(summarize(state_of(), CONFIG, {}, T0, None, now=T0 + 1))
    assert "trials     0 done, 0 running" in text
    assert "┃ trials" not in text and "━" not in text  # no header, no rule, no rows


def test_off_a_terminal_the_same_figures_end_the_progress_line() -> None:
    status = summarize(state_of(*FOUR_DONE, RUNNING), CONFIG, LIVE, T0, None, now=T0 + 100)
    line = pace_line(status, now=T0 + 100)
    at = time.strftime("%H:%M", time.localtime(T0 + 250))
    assert line == ("; 1 min 40 s elapsed, trials 5 of 10 (50%), hours 0.03 of 0.5 (6%), ETA about "
                    f"2 min 30 s (at {at}), when stop.max_trials is reached")
    stopped = summarize(state_of(*FOUR_DONE), CONFIG, {}, T0, "max_trials reached (4)", now=T0 + 100)
    assert pace_line(stopped) == "; 1 min 40 s elapsed, trials 4 of 10 (40%), hours 0.03 of 0.5 (6%)"


def test_trials_run_past_max_trials_by_owed_work_say_so() -> None:
    status = summarize(state_of(*FOUR_DONE, RUNNING), CONFIG.with_overrides({"stop.max_trials": 3}),
                       LIVE, T0, "max_trials reached (3)", now=T0 + 100)
    assert "budget     trials 5 of 3 (100%, 2 owed past it), hours 0.03 of 0.5 (6%)" in shown(status)
