"""How much val_bpb moves when nothing changes: the same commit, seed and machine, run N times.

The budget is wall-clock time, so the number of steps, and with it val_bpb, depends on how busy
the machine is. This is the noise the swarm's baselines estimate; measure it the way the swarm
runs trials: `--parallel 2` runs two trials at once with one thread each, as
configs/ml_target_cpu.yaml does on two cores.

    .venv/bin/python bench/ml_target_spread.py --runs 6 --parallel 2 [--profile cpu] [--budget 45]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from workers.result_block import parse_summary  # noqa: E402

KEYS = ("val_bpb", "num_steps", "training_seconds", "total_seconds", "peak_rss_mb")


def one_trial(target: Path, profile: str, budget: float, threads: int) -> dict[str, float | str]:
    env = {**os.environ, "SWARM_BUDGET_S": f"{budget:g}", "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, "prepare.py", "run", "--profile", profile], cwd=target,
                          env=env, capture_output=True, text=True, timeout=budget + 600)
    summary = parse_summary(done.stdout)
    if done.returncode != 0 or "val_bpb" not in summary:
        raise SystemExit(f"trial failed (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--parallel", type=int, default=2, help="trials at once (one thread each)")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--budget", type=float, default=45.0, help="SWARM_BUDGET_S, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "ml_target"
        shutil.copytree(ROOT / "ml_target", target, ignore=shutil.ignore_patterns("__pycache__"))
        with ThreadPoolExecutor(args.parallel) as pool:
            results = list(pool.map(lambda _: one_trial(target, args.profile, args.budget, 1), range(args.runs)))
    print(f"ml_target {args.profile}, budget {args.budget:g} s, {args.runs} runs, {args.parallel} at a time, "
          f"1 thread each, same commit and seed\n")
    print("| run | " + " | ".join(KEYS) + " |")
    print("|---" * (len(KEYS) + 1) + "|")
    for i, r in enumerate(results, 1):
        print(f"| {i} | " + " | ".join(f"{r.get(k, float('nan')):.4g}" if k != "val_bpb" else f"{r[k]:.4f}"
                                       for k in KEYS) + " |")
    bpb = [float(r["val_bpb"]) for r in results]
    steps = [float(r["num_steps"]) for r in results]
    print(f"\nval_bpb: mean {statistics.mean(bpb):.4f}, std {statistics.stdev(bpb):.4f}, "
          f"range {max(bpb) - min(bpb):.4f}; steps: {min(steps):.0f}-{max(steps):.0f}")


if __name__ == "__main__":
    main()
