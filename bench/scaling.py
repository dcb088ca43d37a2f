"""Trials per hour with 1, 2, 4, 8 and 16 workers, as a ratio to 1 worker, in one process run.

The target is examples/quadratic with a fixed experiment that mostly waits (SWARM_BUDGET_S
seconds of sleep), as a GPU-bound run leaves the CPU idle. Each worker count runs for the same
wall-clock window on one local Ray instance; only trials that finish inside the window after a
warm-up count, so Ray and actor start-up are left out. Also printed: the coordinator's time to
handle one result (median and p90, measured inside the coordinator).

Ray gets one logical CPU per worker plus one (workers ask for `cpus_per_worker: 1`), whatever
the machine has: the experiment sleeps, so 16 workers fit on 2 cores as 16 GPU-bound runs
would; what they do share is the CPU for git, Python start-up and the coordinator.

    python bench/scaling.py            # the figures in bench/RESULTS.md (about 7 minutes)
    python bench/scaling.py --quick    # 1 and 2 workers: keeps the benchmark working (about 40 s)
    python bench/scaling.py --workers 1 8 16 --budget-s 8 --window-s 120   # longer trials

On 2 cores, 16 workers with 2 s trials start 8 trials a second, and the git and Python start-up
around each trial need more CPU than there is: the longer-trial run shows the swarm's own
scaling once that per-trial cost is spread over a longer experiment, as on GPU nodes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import ray

from swarm.core.config import load_config
from swarm.core.values import EVALUATED_STATUSES
from swarm.shell.driver import RunOptions, run_swarm

ROOT = Path(__file__).resolve().parents[1]


def measure(workers: int, budget_s: float, warmup_s: float, window_s: float, scratch: Path) -> dict:
    hours = (warmup_s + window_s + budget_s) / 3600
    config = load_config(ROOT / "configs/quadratic.yaml", {
        "target.repo": str(ROOT / "examples/quadratic"), "target.budget_s": budget_s,
        "workers.count": workers, "stop.max_trials": 100_000, "stop.hours": hours,
        "proposer.seed": 1})
    run_dir = scratch / f"w{workers}"
    status = run_swarm(RunOptions(config, run_dir))
    events = [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]
    first = min(e["ts"] for e in events if e["event"] == "trial_started")
    start, end = first + warmup_s, first + warmup_s + window_s
    done = sum(1 for e in events if e["event"] == "trial_finished" and e["status"] in EVALUATED_STATUSES
               and start <= e["ts"] < end)
    return {"workers": workers, "trials": done, "per_hour": done * 3600 / window_s,
            "duty": _time_in_trials(events, start, end) / (workers * window_s),
            "report_ms": status.report_latency}


def _time_in_trials(events: list[dict], start: float, end: float) -> float:
    """Worker-seconds inside the window spent between a trial's start and its finish."""
    began = {e["trial"]: e["ts"] for e in events if e["event"] == "trial_started"}
    total = 0.0
    for e in events:
        if e["event"] == "trial_finished" and e["status"] in EVALUATED_STATUSES:
            total += max(0.0, min(e["ts"], end) - max(began[e["trial"]], start))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep the run directories here (for analysis)")
    parser.add_argument("--workers", type=int, nargs="+", help="worker counts (default 1 2 4 8 16)")
    parser.add_argument("--budget-s", type=float, help="the experiment's wait (default 2)")
    parser.add_argument("--window-s", type=float, help="the counting window (default 60)")
    args = parser.parse_args()
    counts, budget, warmup, window = ([1, 2], 0.5, 2.0, 8.0) if args.quick else \
        ([1, 2, 4, 8, 16], 2.0, 6.0, 60.0)
    counts, budget, window = args.workers or counts, args.budget_s or budget, args.window_s or window
    os.environ.pop("RAY_ADDRESS", None)
    ray.init(address="local", num_cpus=max(counts) + 1, include_dashboard=False,
             namespace="swarm-bench", log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            where = args.keep or Path(scratch)
            rows = [measure(n, budget, warmup, window, where) for n in counts]
    finally:
        ray.shutdown()
    print(f"# scaling: examples/quadratic, {budget:g} s experiment, {window:g} s window after "
          f"{warmup:g} s warm-up; {platform.node()}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d')}")
    print("| workers | trials in window | trials/hour | ratio to 1 worker | ideal | efficiency "
          "| worker time in trials | coordinator ms/result (median, p90) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        ratio = row["per_hour"] / rows[0]["per_hour"]
        ms = row["report_ms"]
        print(f"| {row['workers']} | {row['trials']} | {row['per_hour']:.0f} | {ratio:.2f}x "
              f"| {row['workers']}x | {ratio / row['workers']:.0%} | {row['duty']:.0%} "
              f"| {ms.median_ms:.1f}, {ms.p90_ms:.1f} |")


if __name__ == "__main__":
    main()
