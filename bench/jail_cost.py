"""What the jail costs a trial: start-up and teardown in ms, and trials per hour with and without it.

Runs the same small target through the worker's real Evaluator, alternating jailed and unjailed
trials in one process run (so both see the same machine load): a 1-file checkout plus a 1 MB
file, whose run prints a result block after `--trial-s` seconds. For each mode it reports the
median and p90 wall time a trial took over its own sleep (the overhead), and for the jail the
medians of what PID 1 measured itself: setup (mounts, copy, until the command is exec'd) and
teardown (killing what is left, copying artifacts out). Trials/hour is 3600 / median wall time.

    .venv/bin/python bench/jail_cost.py                   # 40 trials a mode, 0.5 s each (about a minute)
    .venv/bin/python bench/jail_cost.py --trials 10 --trial-s 0.1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from swarm.core.config import SwarmConfig  # noqa: E402
from workers.classify import classify_trial  # noqa: E402
from workers.evaluation import Evaluator, TrialRun, jail_missing  # noqa: E402


def config(repo: Path, trial_s: float, isolation: str) -> SwarmConfig:
    return SwarmConfig.model_validate({
        "name": "jail-cost", "target": {
            "repo": str(repo), "editable": ["train.py"], "readonly": ["data.bin"],
            "run": f"python train.py {trial_s}", "metric": {"name": "loss"}, "budget_s": trial_s + 1,
            "timeout_s": trial_s + 30},
        "sandbox": {"isolation": isolation}})


def make_checkout(root: Path) -> Path:
    checkout = root / "w0" / "repo"
    checkout.mkdir(parents=True)
    (checkout / "train.py").write_text(
        "import sys, time\ntime.sleep(float(sys.argv[1]))\nopen('out.txt', 'w').write('x')\n"
        "print('---'); print('loss: 1.0')\n")
    (checkout / "data.bin").write_bytes(os.urandom(1 << 20))
    return checkout


def one(evaluator: Evaluator, n: int, env: dict[str, str]) -> tuple[float, TrialRun]:
    started = time.monotonic()
    trial = evaluator.evaluate(f"t{n}", env, ["train.py", "data.bin"])
    return time.monotonic() - started, trial


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--trial-s", type=float, default=0.5)
    args = parser.parse_args()
    if missing := jail_missing():
        print(f"error: no jail on this machine: {missing}")
        return 2
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryDirectory(prefix="jail-cost-") as tmp:
        root = Path(tmp)
        checkout = make_checkout(root)
        evaluators = {mode: Evaluator(config(checkout, args.trial_s, mode), checkout, root / "w0")
                      for mode in ("namespaces", "none")}
        walls: dict[str, list[float]] = {mode: [] for mode in evaluators}
        setups: list[float] = []
        teardowns: list[float] = []
        for n in range(args.trials * 2):
            mode = ("namespaces", "none")[n % 2]
            wall, trial = one(evaluators[mode], n, env)
            status = classify_trial(trial, "loss").status
            if status != "ok":
                print(f"error: a {mode} trial ended {status}: {trial.log()[-400:]}")
                return 1
            walls[mode].append(wall - args.trial_s)
            report = trial.run.report if trial.run else None
            if report and report.setup_ms is not None and report.teardown_ms is not None:
                setups.append(report.setup_ms)
                teardowns.append(report.teardown_ms)
    print(f"{args.trials} trials a mode of {args.trial_s:g} s, alternating; overhead = wall time - sleep\n")
    print(f"| {'mode':<14} | {'median overhead ms':>18} | {'p90 ms':>7} | {'trials/hour':>11} |")
    print(f"|{'-' * 16}|{'-' * 20}|{'-' * 9}|{'-' * 13}|")
    for mode, label in (("none", "plain sandbox"), ("namespaces", "jail")):
        over = sorted(walls[mode])
        median, p90 = statistics.median(over), over[int(0.9 * (len(over) - 1))]
        per_hour = 3600 / (args.trial_s + median)
        print(f"| {label:<14} | {median * 1000:>18.1f} | {p90 * 1000:>7.1f} | {per_hour:>11.0f} |")
    extra = statistics.median(walls["namespaces"]) - statistics.median(walls["none"])
    print(f"\nthe jail's extra cost a trial: {extra * 1000:.1f} ms (medians); of it, PID 1's own setup "
          f"{statistics.median(setups):.1f} ms and teardown {statistics.median(teardowns):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
