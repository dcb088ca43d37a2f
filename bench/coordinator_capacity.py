"""How many results per second the coordinator handles with many simulated workers.

The coordinator is the real `coordinator.service.Coordinator`, called one call at a time as
the Ray actor is; the workers are threads whose trials return at once: each asks for work,
commits a one-line change to examples/quadratic's train.py, announces it and reports a noisy
score straight away, so the coordinator is the bottleneck. Printed: results per second over
the whole run, and the coordinator's own time per call (median and p90) for `next_work`,
`begin_candidate` and `report` (a report includes verdicts, merges and results.tsv).

    .venv/bin/python bench/coordinator_capacity.py --workers 64 --seconds 60
    .venv/bin/python bench/coordinator_capacity.py --quick
"""

from __future__ import annotations

import argparse
import platform
import random
import re
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coordinator.service import Coordinator  # noqa: E402
from swarm.config import load_config  # noqa: E402
from swarm.types import CandidateInfo, TrialOutcome  # noqa: E402
from workers.workspace import Workspace  # noqa: E402


class Timed:
    """The coordinator behind one lock (the actor runs one call at a time), timing each call."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator, self.lock = coordinator, threading.Lock()
        self.seconds: dict[str, list[float]] = defaultdict(list)

    def call(self, name: str, *args: Any) -> Any:
        with self.lock:
            started = time.perf_counter()
            result = getattr(self.coordinator, name)(*args)
            self.seconds[name].append(time.perf_counter() - started)
            return result


def simulated_worker(worker: str, timed: Timed, space: Workspace, space_lock: threading.Lock,
                     deadline: float, seed: int) -> None:
    rng = random.Random(seed)
    timed.call("hello", worker, {"hardware": "cpu:bench"})
    have = None
    while time.monotonic() < deadline:
        unit = timed.call("next_work", worker, have, {"hardware": "cpu:bench"})
        if unit.action == "stop":
            return
        with space_lock:
            space.receive(unit.bundle)
        have = unit.best_commit
        if unit.action == "wait":
            time.sleep(unit.wait_s)
            continue
        if unit.action == "evaluate":
            timed.call("report", TrialOutcome(unit.trial_id, worker, "ok", rng.gauss(5.0, 0.5),
                                              seconds=0.0, hardware="cpu:bench", log="---\n"))
            continue
        a = round(rng.uniform(0.0, 6.0), 6)
        with space_lock:
            space.start_proposal(unit.commit)
            text = re.sub(r"^A = .*$", f"A = {a}", space.read_text("train.py"), flags=re.M)
            commit, tree = space.commit_on(unit.commit, {"train.py": text}, f"A = {a}")
            bundle = space.bundle(commit, unit.commit)
        trial, refusal = timed.call("begin_candidate", CandidateInfo(worker, unit.commit, commit, tree, f"A = {a}"))
        if refusal:
            continue
        score = (a - 3.0) ** 2 + 4.6 + rng.gauss(0.0, 0.02)  # the quadratic with B, C, sgd as given
        timed.call("report", TrialOutcome(trial, worker, "ok", score, seconds=0.0, hardware="cpu:bench",
                                          log="---\n", bundle=bundle))


def measure(workers: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(ROOT / "configs" / "quadratic.yaml", {
            "target.repo": str(ROOT / "examples" / "quadratic"), "workers.count": workers,
            "stop.max_trials": 10_000_000, "acceptance.baseline_runs": 3})
        coordinator = Coordinator(config, Path(tmp) / "run", "bench", resume=False)
        timed, space, space_lock = Timed(coordinator), Workspace(Path(tmp) / "crafting"), threading.Lock()
        deadline = time.monotonic() + seconds
        started = time.monotonic()
        threads = [threading.Thread(target=simulated_worker,
                                    args=(f"w{i}", timed, space, space_lock, deadline, i), daemon=True)
                   for i in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - started
        reports = len(timed.seconds["report"])
        accepted = len(coordinator.state.history) - 1
        coordinator.close()
    return {"workers": workers, "wall": wall, "reports": reports, "accepted": accepted,
            **{name: timed.seconds[name] for name in ("next_work", "begin_candidate", "report")}}


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    if not ordered:
        return "-"
    return f"{1000 * ordered[len(ordered) // 2]:.1f} / {1000 * ordered[int(len(ordered) * 0.9)]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[64])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="8 workers for 5 s: keeps it working")
    args = parser.parse_args()
    counts, seconds = ([8], 5.0) if args.quick else (args.workers, args.seconds)
    print(f"coordinator_capacity: {platform.node()}, {seconds:g} s per row\n")
    print("| workers | results | results/s | accepted | next_work ms (median / p90) "
          "| begin_candidate ms | report ms |")
    print("|---|---|---|---|---|---|---|")
    for count in counts:
        row = measure(count, seconds)
        print(f"| {count} | {row['reports']} | {row['reports'] / row['wall']:.1f} | {row['accepted']} "
              f"| {_ms(row['next_work'])} | {_ms(row['begin_candidate'])} | {_ms(row['report'])} |")


if __name__ == "__main__":
    main()
