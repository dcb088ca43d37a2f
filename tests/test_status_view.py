"""What `swarm status` says of a run directory, read from its files alone (no Ray): whether its
driver is running, gone or finished (coordinator/liveness.py, load_status), the figures rounded
for people (progress.format_metric) and as JSON for scripts (swarm/shell/status_json.py).

The real processes (a driver killed with SIGKILL, a run that ends cleanly, the CLI off a
terminal) are tests/test_status_truth.py; this module writes the files those leave."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from coordinator.liveness import DRIVER_GONE_AFTER_S, HEARTBEAT, Beat, Heartbeat, read_heartbeat
from coordinator.status import Headline, RunStatus, load_status
from swarm.core.config import load_config
from swarm.core.events import (
    LedgerEvent, RunStarted, SessionEnded, SessionStarted, TrialFinished, TrialStarted, event_json,
)
from swarm.shell.progress import format_metric, render_status
from swarm.shell.status_json import status_json, status_object

__all__: list[str] = []

ROOT = Path(__file__).resolve().parents[1]


def shown(status: RunStatus) -> str:
    console = Console(record=True, width=300)
    console.print(render_status(status))
    return console.export_text()


def started(trial: str, worker: str, ts: float) -> TrialStarted:
    return TrialStarted(ts=ts, trial=trial, kind="baseline", worker=worker, commit="c0", tree="t0",
                        parent="c0", session="s2")


@pytest.fixture
def now() -> float:
    """The time the test's run directory is written at (status reads it a moment later)."""
    return time.time()


def write_run(run_dir: Path, now: float, *events: LedgerEvent, beat: tuple[str, float] | None = None) -> Path:
    """A run directory as a coordinator leaves it: a run of examples/quadratic whose second
    session started 10 min ago, ran two baselines (one finished), then `events`; and the
    driver's heartbeat (session, seconds ago), if any."""
    config = load_config(ROOT / "configs" / "quadratic.yaml",
                         {"target.repo": str(ROOT / "examples" / "quadratic")})
    start = now - 600
    lines = [RunStarted(ts=start - 60, commit="c0", tree="t0", config=config.model_dump(mode="json")),
             SessionStarted(ts=start - 30, session="s1"), SessionEnded(ts=start - 20, session="s1"),
             SessionStarted(ts=start, session="s2"), started("00001", "w0", start + 1),
             started("00002", "w1", start + 2),
             TrialFinished(ts=start + 60, trial="00001", status="ok", metric=6.6946200000000005),
             *events]
    run_dir.mkdir()
    (run_dir / "ledger.jsonl").write_text("".join(event_json(e) + "\n" for e in lines))
    if beat:
        (run_dir / HEARTBEAT).write_text(beat[0] + "\n")
        os.utime(run_dir / HEARTBEAT, (now - beat[1], now - beat[1]))
    return run_dir


def clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


# -- is the driver there ---------------------------------------------------------------------

def test_a_driver_heard_from_lately_runs_its_trials(tmp_path: Path, now: float) -> None:
    status = load_status(write_run(tmp_path / "run", now, beat=("s2", 1.0)))
    assert (status.driver.phase, status.trials_running, status.trials_unfinished) == ("running", 1, 0)
    assert status.workers["w1"].doing.startswith("baseline 00002")
    assert "driver " not in shown(status)


def test_a_silent_driver_is_gone_since_its_last_heartbeat_and_runs_nothing(tmp_path: Path, now: float) -> None:
    status = load_status(write_run(tmp_path / "run", now, beat=("s2", 300.0)))
    assert status.driver.phase == "gone"
    assert status.driver.since == pytest.approx(now - 300.0, abs=0.01)
    assert (status.trials_running, status.trials_unfinished) == (0, 1)
    assert {w.doing for w in status.workers.values()} == {"gone with the driver"}
    # the rate is over the session's time while the driver was there, not falling ever after
    assert status.trials_per_hour == pytest.approx(1 / (300 / 3600), rel=0.01)
    text = shown(status)
    assert (f"driver     gone since {clock(now - 300)} (5 min ago): no trials run; `swarm run "
            "CONFIG --resume` continues the run") in text
    assert "trials     1 done, 0 running (1 unfinished: recorded lost when the run is resumed)" in text


def test_just_before_it_counts_as_gone_the_silence_is_said(tmp_path: Path, now: float) -> None:
    status = load_status(write_run(tmp_path / "run", now, beat=("s2", DRIVER_GONE_AFTER_S - 5)))
    assert (status.driver.phase, status.trials_running) == ("running", 1)
    said = re.search(r"driver     last heard from (\d+) s ago \(taken for gone after (\d+) s\)", shown(status))
    assert said and int(said[2]) == DRIVER_GONE_AFTER_S
    assert DRIVER_GONE_AFTER_S - 5 <= int(said[1]) <= DRIVER_GONE_AFTER_S - 4  # read a moment later


def test_a_session_that_ended_cleanly_is_stopped_whatever_its_heartbeat(tmp_path: Path, now: float) -> None:
    run = write_run(tmp_path / "run", now, TrialFinished(ts=now - 530, trial="00002", status="ok", metric=6.7),
                    SessionEnded(ts=now - 520, session="s2", reason="max_trials reached (2)"),
                    beat=("s2", 521.0))
    status = load_status(run)
    assert (status.driver.phase, status.driver.since, status.driver.reason) == (
        "ended", now - 520, "max_trials reached (2)")
    assert status.trials_per_hour == pytest.approx(2 / (80 / 3600), rel=0.01)
    assert f"driver     stopped at {clock(now - 520)} (9 min ago): max_trials reached (2)" in shown(status)


@pytest.mark.parametrize("beat", [None, ("s1", 1.0)], ids=["no-heartbeat", "an-older-session's"])
def test_without_a_heartbeat_of_the_session_the_ledger_alone_is_shown(
        tmp_path: Path, now: float, beat: tuple[str, float] | None) -> None:
    status = load_status(write_run(tmp_path / "run", now, beat=beat))
    assert (status.driver.phase, status.trials_running) == ("unknown", 1)
    assert "driver     not known: the run directory has no driver.heartbeat of its latest session" in shown(status)


def test_the_heartbeat_names_its_session_and_is_touched_at_most_every_two_seconds(tmp_path: Path, now: float) -> None:
    heartbeat = Heartbeat(tmp_path, "s7")
    assert read_heartbeat(tmp_path) == Beat("s7", (tmp_path / HEARTBEAT).stat().st_mtime)
    os.utime(tmp_path / HEARTBEAT, (now - 100, now - 100))
    heartbeat.beat()  # just written: not touched again yet
    assert read_heartbeat(tmp_path) == Beat("s7", now - 100)
    assert sorted(p.name for p in tmp_path.iterdir()) == [HEARTBEAT]  # no scratch file left


# -- figures for people ----------------------------------------------------------------------

@pytest.mark.parametrize(("value", "signed", "text"), [
    (6.6946200000000005, False, "6.69462"), (0.934117, True, "+0.934117"), (-1.98678150001, True, "-1.98678"),
    (1.23456789e-7, False, "1.23457e-07"), (1234567.8, False, "1.23457e+06"), (0.0, True, "+0"),
    (None, False, "-"),
])
def test_figures_are_shown_to_six_significant_digits(value: float | None, signed: bool, text: str) -> None:
    assert format_metric(value, signed=signed) == text


def test_the_display_shows_no_raw_float(tmp_path: Path, now: float) -> None:
    text = shown(load_status(write_run(tmp_path / "run", now, beat=("s2", 1.0))))
    assert "best       6.69462 over 1 runs" in text
    assert "from       the target as given  [c0]" in text


# -- figures for scripts ---------------------------------------------------------------------

KEYS = {"schema", "run", "metric", "direction", "driver", "best", "baseline", "gain", "accepted",
        "noise", "trials", "latest_failure", "proposals", "workers", "gpus_per_worker", "gpu_hours",
        "worker_hours", "cost_usd", "tokens", "stop_reason"}
NESTED = {"driver": {"state", "since", "reason"},
          "best": {"commit", "trial", "hypothesis", "mean", "spread", "runs", "by_class", "others"},
          "trials": {"done", "running", "unfinished", "evaluations", "per_hour", "by_status"},
          "proposals": {"failed", "latest_failure"}}
WORKER_KEYS = {"worker", "doing", "trials", "per_hour", "host", "node", "gpus", "hardware", "volunteer"}


def keys_of(found: dict[str, Any]) -> tuple[set[str], dict[str, set[str]], set[str]]:
    return (set(found), {k: set(found[k]) for k in NESTED},
            {k for worker in found["workers"] for k in worker})


def test_the_json_keys_are_the_documented_ones(tmp_path: Path, now: float) -> None:
    found = json.loads(status_json(load_status(write_run(tmp_path / "run", now, beat=("s2", 300.0)))))
    assert keys_of(found) == (KEYS, NESTED, WORKER_KEYS)
    assert found["driver"] == {"state": "gone", "since": pytest.approx(now - 300, abs=0.01), "reason": ""}
    assert found["trials"] == {"done": 1, "running": 0, "unfinished": 1, "evaluations": 2,
                               "per_hour": pytest.approx(12.0, rel=0.01), "by_status": {"baseline": 1}}
    best = found["best"]
    assert (best["mean"], best["trial"], found["baseline"]["commit"]) == (6.6946200000000005, None, "c0")
    readme = (ROOT / "README.md").read_text()
    for key in KEYS | {f"{k}.{sub}" for k, subs in NESTED.items() for sub in subs}:
        assert f"`{key}`" in readme, f"README.md's status section does not document {key}"


def test_a_figure_that_is_not_a_number_is_null_in_json(tmp_path: Path, now: float) -> None:
    status = load_status(write_run(tmp_path / "run", now, beat=("s2", 1.0)))
    broken = dataclasses.replace(status, noise=float("nan"), gain=float("inf"))
    found = json.loads(status_json(broken))
    assert (found["noise"], found["gain"]) == (None, None)
    assert status_object(broken)["run"] == "quadratic"


def test_commits_and_hypotheses_are_shown_as_written_not_as_markup(tmp_path: Path, now: float) -> None:
    status = load_status(write_run(tmp_path / "run", now, beat=("s2", 1.0)))
    best = Headline("abcdef1234", "00007", "[link=http://example.com]LR down[/link] [bold]", 1.0, None, 2)
    text = shown(dataclasses.replace(status, best=best))
    assert "from       trial 00007: [link=http://example.com]LR down[/link] [bold]  [abcdef1]" in text
