"""What tracking costs the coordinator per result: tracking off, MLflow (its sqlite store in the
run directory) and W&B (offline), measured side by side in one process.

The coordinator is the real `coordinator.service.Coordinator`, driven as in
bench/coordinator_capacity.py: simulated workers in threads whose trials return at once, so the
coordinator is the bottleneck and any time the tracker's follower thread takes from it (the GIL,
the disk) shows. Per condition and round: results/s; the coordinator's own time per result (the
time of all its calls over the round, divided by the results), and its `report` call's median
and p90; the steps the tracker held when the session ended, and how long the session's end
(the last flush, and finishing the tracker's run) took; the follower thread's own CPU time
per step logged, and apart from it the CPU time of connecting (finding or creating the
tracker run; the library is imported already). Rounds alternate the conditions, so a noisy
machine weighs on all three alike; the ratios are to "off" in the same round. mlflow and wandb
are imported once before the first round (a real run pays that once, at its start), and a
short warm-up round of "off" is run first and not counted.

    .venv/bin/python bench/tracking_cost.py                 # 4 workers, 5 rounds x 12 s each
    .venv/bin/python bench/tracking_cost.py --quick         # 2 workers, 1 round x 5 s
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from coordinator_capacity import Crafter, Timed, simulated_worker  # noqa: E402

from coordinator.service import Coordinator  # noqa: E402
from coordinator.tracking import steps_of  # noqa: E402
from swarm.core.config import SwarmConfig, load_config  # noqa: E402
from swarm.core.ledger import read_events  # noqa: E402

KINDS = ("off", "mlflow", "wandb")


@dataclass
class Round:
    kind: str
    results: int
    wall: float
    coordinator_s: float  # all calls' time inside the coordinator
    report_s: list[float]
    steps: int  # in the ledger
    logged: int  # the steps the tracker held at the session's end
    close_s: float  # end_session + close: the last flush and finishing the tracker's run
    follower_cpu_s: float  # the follower thread's own CPU time
    connect_cpu_s: float  # of which in connecting

    @property
    def per_result_ms(self) -> float:
        return 1000 * self.coordinator_s / max(self.results, 1)


def _config(kind: str, workers: int) -> SwarmConfig:
    tracking = {} if kind == "off" else {"tracking.kind": kind}
    return load_config(ROOT / "configs" / "quadratic.yaml", {
        "target.repo": str(ROOT / "examples" / "quadratic"), "workers.count": workers,
        "stop.max_trials": 10_000_000, "acceptance.baseline_runs": 3, **tracking})


def measure(kind: str, workers: int, seconds: float) -> Round:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        coordinator = Coordinator(_config(kind, workers), run_dir, "bench", resume=False)
        timed, crafter = Timed(coordinator), Crafter(Path(coordinator.pool.repo.working_dir))
        deadline, started = time.monotonic() + seconds, time.monotonic()
        threads = [threading.Thread(target=simulated_worker, args=(f"w{i}", timed, crafter, deadline, i),
                                    daemon=True) for i in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - started
        follower = coordinator._follower
        closing = time.perf_counter()
        coordinator.end_session("bench")
        close_s = time.perf_counter() - closing
        logged = follower.logged if follower is not None else 0
        follower_cpu = follower.cpu_s if follower is not None else 0.0
        connect_cpu = follower.connect_cpu_s if follower is not None else 0.0
        coordinator.close()
        steps = len(steps_of(list(read_events(run_dir / "ledger.jsonl"))))
        return Round(kind, len(timed.seconds["report"]), wall, sum(sum(v) for v in timed.seconds.values()),
                     timed.seconds["report"], steps, logged, close_s, follower_cpu, connect_cpu)


def _ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return 1000 * ordered[min(int(len(ordered) * q), len(ordered) - 1)] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.workers, args.seconds, args.rounds = 2, 5.0, 1
    scratch = Path(tempfile.mkdtemp(prefix="tracking-bench-"))
    for name, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": scratch / "wandb",
                        "WANDB_CACHE_DIR": scratch / "cache", "WANDB_CONFIG_DIR": scratch / "config"}.items():
        os.environ.setdefault(name, str(value))
    import mlflow  # noqa: F401  (once, as a run pays it at its start)
    import wandb  # noqa: F401

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{args.workers} simulated workers, {args.rounds} round(s) x {args.seconds:g} s per condition\n")
    measure("off", args.workers, min(args.seconds, 3.0))  # warm-up, not counted: git's and Python's caches
    rounds: list[Round] = []
    for number in range(args.rounds):
        for kind in KINDS:
            rounds.append(measure(kind, args.workers, args.seconds))
            r = rounds[-1]
            print(f"round {number + 1} {kind}: {r.results} results, {r.per_result_ms:.2f} ms/result, "
                  f"{r.logged}/{r.steps} steps logged", file=sys.stderr)
    print("| tracking | results/s | coordinator ms per result | vs off (same round) | report ms median / p90 "
          "| steps logged at the end / in the ledger | follower CPU ms per step, connecting left out "
          "| connecting: follower CPU s | session end s (last flush) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in KINDS:
        mine = [r for r in rounds if r.kind == kind]
        offs = [r for r in rounds if r.kind == "off"]
        ratios = [m.per_result_ms / o.per_result_ms for m, o in zip(mine, offs, strict=True)]
        reports = [s for r in mine for s in r.report_s]
        steady = sum(r.follower_cpu_s - r.connect_cpu_s for r in mine) / max(sum(r.logged for r in mine), 1)
        print(f"| {kind} | {sum(r.results for r in mine) / sum(r.wall for r in mine):.1f} "
              f"| {statistics.mean(r.per_result_ms for r in mine):.2f} "
              f"| {' / '.join(f'{x:.2f}' for x in ratios)} "
              f"| {_ms(reports, 0.5):.2f} / {_ms(reports, 0.9):.2f} "
              f"| {sum(r.logged for r in mine)} / {sum(r.steps for r in mine)} "
              f"| {1000 * steady:.2f} "
              f"| {statistics.mean(r.connect_cpu_s for r in mine):.2f} "
              f"| {statistics.mean(r.close_s for r in mine):.2f} |")


if __name__ == "__main__":
    main()
