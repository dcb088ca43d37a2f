"""Perf search: how noisy the perf example's metric is, and what `mutate` makes of it.

The perf target (`configs/perf.yaml`, `examples/perf`): a pure-Python tokenizer whose METHOD
and CHUNK_LINES `mutate` moves, its tests as the guard, harness.py as the score phase (the
median of k fresh, pinned processes, each timing one call per held-out text from outside).
Every evaluation goes through the worker's real path, in the jail where this machine can make
one (else `isolation: none`).

(a) Noise: the shipped commit scored --scorings times (run, guard and score, as a trial) for
    each k in --repeats (PERF_REPEATS, which the harness reads): the mean, sd and relative sd
    of the metric. A k is enough when its sd is under a third of the gain the search found
    (about what the acceptance test needs to accept it in two or three runs).
(b) Search: the Coordinator in-process and --workers WorkerLoop threads, each with the mutate
    proposer (seeded), for --minutes of wall time on the shipped config (its acceptance, k=5):
    the baseline's mean metric, best's at the end, the speed-up (baseline / best), the trials,
    and the accepted changes in order.

    .venv/bin/python bench/perf_search.py     # about 6 minutes on 2 shared cores
    .venv/bin/python bench/perf_search.py [--minutes 3.5] [--scorings 5] [--repeats 1 3 5] [--workers 1]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import git

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coordinator.service import Coordinator  # noqa: E402
from swarm.core.config import SwarmConfig, load_config  # noqa: E402
from swarm.core.values import WorkerSite  # noqa: E402
from workers.classify import classify_trial  # noqa: E402
from workers.evaluation import Evaluator, jail_missing  # noqa: E402
from workers.loop import WorkerLoop  # noqa: E402
from workers.proposers.mutate import MutateProposer  # noqa: E402

EXAMPLE = ROOT / "examples" / "perf"
HARDWARE = "cpu:bench"


def config_for(repo: Path, **more: object) -> SwarmConfig:
    isolation = "namespaces" if jail_missing() is None else "none"
    overrides = {"target.repo": str(repo), "sandbox.isolation": isolation, **more}
    return load_config(ROOT / "configs" / "perf.yaml").with_overrides(overrides)


def score_once(tmp: Path, repeats: int, index: int) -> float:
    """One trial of the shipped code through Evaluator and classify_trial; its metric."""
    checkout = tmp / f"k{repeats}-{index}" / "repo"
    shutil.copytree(EXAMPLE, checkout)
    config = config_for(checkout, **{"target.env": {"PERF_REPEATS": str(repeats)}})
    files = sorted(str(p.relative_to(checkout)) for p in checkout.rglob("*") if p.is_file())
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONUNBUFFERED": "1", **config.target.env}
    run = Evaluator(config, checkout, checkout.parent).evaluate("t1", env, files)
    status, metric, _, reason = classify_trial(run, "seconds")
    if metric is None:
        raise SystemExit(f"the shipped code scored {status}: {reason}")
    return metric


def noise(tmp: Path, ks: list[int], scorings: int) -> dict[int, list[float]]:
    return {k: [score_once(tmp, k, i) for i in range(scorings)] for k in ks}


def make_target(tmp: Path) -> Path:
    repo = tmp / "target"
    shutil.copytree(EXAMPLE, repo)
    git.Repo.init(repo).git.add(all=True)
    git.Repo(repo).git.commit("-qm", "the perf example", author="bench <b@b>")
    return repo


def search(tmp: Path, minutes: float, workers: int, seed: int) -> dict[str, object]:
    """A real in-process run of the shipped config with `workers` mutate workers."""
    config = config_for(make_target(tmp), **{"workers.count": workers, "stop.max_trials": 400,
                                             "stop.hours": minutes / 60})
    coordinator = Coordinator(config, tmp / "run", "s1", resume=False)
    loops = [WorkerLoop(f"w{i}", config, coordinator, tmp / f"w{i}", MutateProposer(seed + i),
                        WorkerSite(hardware=HARDWARE)) for i in range(workers)]
    threads = [threading.Thread(target=loop.run, daemon=True) for loop in loops]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    # the coordinator's stop rule ends it; this is only the wall-clock backstop
    while any(t.is_alive() for t in threads) and time.monotonic() - started < minutes * 60 + 120:
        time.sleep(1)
    coordinator.request_stop()
    for thread in threads:
        thread.join(120)
    coordinator.close()
    return summary(coordinator, time.monotonic() - started)


def summary(coordinator: Coordinator, wall_s: float) -> dict[str, object]:
    state = coordinator.state
    assert state.initial is not None
    baseline = state.samples.get(state.initial.tree, {}).get(HARDWARE, [])
    accepted = [t for t in state.trials.values() if t.kind == "candidate" and t.verdict == "accepted"]
    return {"baseline": statistics.mean(baseline), "best": statistics.mean(state.best_samples(HARDWARE)),
            "trials": state.evaluations, "wall_s": wall_s,
            "accepted": [f"{t.hypothesis} ({t.metric * 1e3:.2f} ms)" for t in accepted if t.metric is not None]}


def report(spreads: dict[int, list[float]], found: dict[str, object], scorings: int) -> None:
    baseline, best = float(found["baseline"]), float(found["best"])  # type: ignore[arg-type]
    gain = baseline - best
    print(f"(a) timing noise: the shipped commit scored {scorings} times per k (ms per call)")
    print(f"{'k':>3} {'mean':>9} {'sd':>8} {'rel sd':>7}  sd < gain/3 ({gain * 1e3:.2f} ms / 3)")
    for k, values in spreads.items():
        mean, sd = statistics.mean(values), statistics.stdev(values)
        print(f"{k:>3} {mean * 1e3:>9.3f} {sd * 1e3:>8.3f} {sd / mean:>7.1%}  {'yes' if sd < gain / 3 else 'no'}")
    print()
    print(f"(b) mutate search: {found['trials']} evaluations in {float(found['wall_s']):.0f} s")  # type: ignore[arg-type]
    print(f"{'baseline':>10} {'best':>10} {'speed-up':>9}")
    print(f"{baseline * 1e3:>8.3f}ms {best * 1e3:>8.3f}ms {baseline / best:>8.2f}x")
    for line in found["accepted"]:  # type: ignore[attr-defined]
        print(f"  accepted: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.5, help="wall time of the search (b)")
    parser.add_argument("--scorings", type=int, default=5, help="scorings of one commit per k (a)")
    parser.add_argument("--repeats", type=int, nargs="+", default=[1, 3, 5], help="the harness's k values (a)")
    parser.add_argument("--workers", type=int, default=1, help="worker loops in the search (b)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="perf-bench-") as tmp:
        spreads = noise(Path(tmp) / "noise", args.repeats, args.scorings)
        found = search(Path(tmp) / "search", args.minutes, args.workers, args.seed)
    report(spreads, found, args.scorings)


if __name__ == "__main__":
    main()
