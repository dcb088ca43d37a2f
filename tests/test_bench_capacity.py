"""The capacity, scaling and report-rendering benchmarks keep working: their --quick modes run
as a user runs them and print tables of real figures (parsed here, not just an exit code)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run_quick(script: str, home: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"HOME": str(home)}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--quick"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def _table(text: str, header_starts: str) -> list[dict[str, str]]:
    """The markdown table whose header line starts with `header_starts`, as one dict per row."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_starts))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True)))
    return rows


def _number(cell: str) -> float:
    return float(cell.split("/")[0].rstrip("x%").replace(",", ""))


def test_coordinator_capacity_quick_prints_throughput_latency_memory_and_refs(tmp_path: Path) -> None:
    out = _run_quick("coordinator_capacity.py", tmp_path)

    [row] = _table(out, "| workers | results |")
    assert row["workers"] == "16"
    assert _number(row["results"]) > 0 and _number(row["results/s"]) > 0
    assert 0 < _number(row["coordinator busy"]) <= 100
    for column in ("next_work ms (median / p90)", "begin_candidate ms", "report ms"):
        median, p90 = (float(x) for x in row[column].split(" / "))
        assert 0 < median <= p90, (column, row[column])
    assert _number(row["report ms as the worker sees it"]) >= _number(row["report ms"])

    [memory] = _table(out, "| workers | trials in state |")
    assert _number(memory["trials in state"]) >= _number(row["results"])
    assert _number(memory["state KB"]) > 0 and _number(memory["state bytes per trial"]) > 0
    assert _number(memory["ledger KB"]) > 0

    steps = {r["step"]: r for r in _table(out, "| step |")}
    assert "| step | 0 refs ms | 1,000 refs ms | ratio |" in out  # the quick mode's 1,000 refs were made
    fetch = steps["coordinator: fetch the bundle (gitops.read_bundle)"]
    for label in ("worker: Workspace.bundle", "coordinator: fetch the bundle (gitops.read_bundle)",
                  "coordinator: whole report of an accepted candidate (Coordinator.report)",
                  "coordinator: stale winner onto best (Pool.replay: cherry_pick + commit_tree + set_ref)"):
        assert _number(steps[label]["0 refs ms"]) > 0 and _number(steps[label]["1,000 refs ms"]) > 0
    assert _number(fetch["ratio"]) > 0


# Timing-sensitive (two workers must beat one while other tests load the machine): -m slow.
@pytest.mark.slow
@pytest.mark.ray
def test_scaling_quick_prints_trials_per_hour_for_one_and_two_workers(tmp_path: Path) -> None:
    out = _run_quick("scaling.py", tmp_path)

    rows = _table(out, "| workers | trials in window |")
    assert [r["workers"] for r in rows] == ["1", "2"]
    assert rows[0]["ratio to 1 worker"] == "1.00x" and rows[0]["efficiency"] == "100%"
    for row in rows:
        assert _number(row["trials in window"]) > 0 and _number(row["trials/hour"]) > 0
        assert row["ideal"] == f"{row['workers']}x"
        assert 0 < _number(row["worker time in trials"]) <= 100
    assert _number(rows[1]["ratio to 1 worker"]) > 1.0  # two workers finish more than one


def test_report_render_quick_times_a_report_for_each_size(tmp_path: Path) -> None:
    out = _run_quick("report_render.py", tmp_path)

    rows = _table(out, "| trials | ledger KiB |")
    assert [r["trials"] for r in rows] == ["10", "1,000"]
    assert rows[0]["ratio to 10 trials"] == "1.00x"
    for row in rows:
        assert _number(row["swarm report s"]) > 0 and _number(row["swarm status ms"]) > 0
        assert _number(row["progress.png KiB"]) > 20  # two drawn panels
    assert _number(rows[1]["ledger KiB"]) > 50 * _number(rows[0]["ledger KiB"])


def test_coordinator_capacity_profile_splits_a_reports_time(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "coordinator_capacity.py"), "--profile",
                           "--quick"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    rows = {r["part"]: r for r in _table(done.stdout, "| part | seconds | share |")}
    parts = [rows[p] for p in rows if p != "all of report"]
    assert len(parts) == 3 and _number(rows["all of report"]["seconds"]) > 0
    assert all(_number(r["seconds"]) > 0 for r in parts)
    assert sum(_number(r["share"]) for r in parts) <= 101  # parts of the whole (rounded)
